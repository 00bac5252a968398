// Characters page: the cameos created through the proxy; public/private and delete.

import { api, listOf } from "./api.js";
import { act, badge, button, clear, confirmDialog, emptyRow, h, shortId, table, when } from "./dom.js";

export function render(root) {
  const tbody = h("tbody", { id: "character-rows" });
  async function load() {
    try {
      const data = await api("GET", "/api/characters");
      const rows = listOf(data, "characters");
      clear(tbody);
      if (!rows.length) tbody.append(emptyRow(7, "No characters yet. Create one in the Playground or through the API."));
      for (const c of rows) tbody.append(characterRow(c, load));
    } catch (err) {
      clear(tbody).append(emptyRow(7, `Could not load characters: ${err.message}`));
    }
  }
  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Characters")),
    h("div", { class: "toolbar" }, button("Reload", load, "btn btn-ghost")),
    table(["Character", "Visibility", "", "ID", "Cameo", "Token", "Created"], tbody, "characters"),
  );
  tbody.append(emptyRow(7, "Loading…"));
  load();
  return null;
}

function characterRow(c, reload) {
  const id = c.id ?? c.character_id;
  const isPublic = c.visibility === "public";
  const toggle = button(
    isPublic ? "Make private" : "Make public",
    (ev) =>
      act(
        ev.currentTarget,
        () => api("POST", `/api/characters/${encodeURIComponent(id)}/visibility`, { visibility: isPublic ? "private" : "public" }),
        `Character ${c.username || id} is now ${isPublic ? "private" : "public"}`,
      ).then((r) => r !== undefined && reload()),
    "btn btn-small",
  );
  const remove = button(
    "Delete",
    async (ev) => {
      const target = ev.currentTarget;
      if (!(await confirmDialog(`Delete character @${c.username || id}? It is removed from Sora too.`, "Delete"))) return;
      const r = await act(target, () => api("DELETE", `/api/characters/${encodeURIComponent(id)}`), (out) => out?.message || "Character deleted");
      if (r !== undefined) reload();
    },
    "btn btn-small btn-danger",
  );
  return h(
    "tr",
    {},
    h("td", {}, h("div", { class: "strong" }, c.display_name || "—"), c.username ? h("div", { class: "muted small" }, `@${c.username}`) : null),
    h("td", { class: "status" }, badge(c.visibility || "private", isPublic ? "ok" : "neutral")),
    h("td", { class: "actions-cell" }, h("div", { class: "row-actions" }, toggle, remove)),
    h("td", { class: "small" }, shortId(id)),
    h("td", { class: "small" }, c.cameo_id ? shortId(c.cameo_id) : "—"),
    h("td", { class: "num" }, c.token_id ?? "—"),
    h("td", { class: "small" }, when(c.created_at)),
  );
}
