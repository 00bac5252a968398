// Settings page: the live settings grouped by section, where each value comes from, and the
// credentials (admin password, API key).

import { api, apiKey, listOf } from "./api.js";
import { act, badge, button, clear, field, fmtValue, h, notify } from "./dom.js";

const SOURCE_TONE = { config: "neutral", panel: "info", env: "warn" };
const SOURCE_TEXT = { config: "config.toml", panel: "saved in panel", env: "environment (locked)" };

export function render(root, app) {
  const groups = h("div", { class: "settings-groups" });
  const precedence = h("p", { class: "muted" });
  async function load() {
    try {
      const data = await api("GET", "/api/admin/settings");
      if (data.precedence) precedence.textContent = `Precedence: ${fmtPrecedence(data.precedence)}`;
      renderGroups(groups, listOf(data, "settings"), load);
    } catch (err) {
      clear(groups).append(h("p", { class: "form-error" }, `Could not load settings: ${err.message}`));
    }
  }
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Settings")), credentials(app), precedence, groups);
  load();
  return null;
}

function fmtPrecedence(p) {
  if (Array.isArray(p)) return p.join(" > ");
  if (typeof p === "string") return p;
  return fmtValue(p);
}

/** Group rows by the section before the dot, keeping the server's order. */
export function groupSettings(rows) {
  const groups = new Map();
  for (const row of rows) {
    const section = String(row.key).split(".")[0];
    if (!groups.has(section)) groups.set(section, []);
    groups.get(section).push(row);
  }
  return groups;
}

function renderGroups(box, rows, reload) {
  clear(box);
  for (const [section, items] of groupSettings(rows)) box.append(sectionCard(section, items, reload));
}

function control(row) {
  const choices = row.choices;
  const common = { name: row.key, id: `setting-${row.key}`, disabled: Boolean(row.locked), dataset: { key: row.key } };
  if (row.type === "bool") return h("input", { ...common, type: "checkbox", checked: Boolean(row.value) });
  if (choices) {
    return h("select", common, choices.map((c) => h("option", { value: c, selected: c === row.value }, c)));
  }
  if (row.type === "int" || row.type === "float") {
    return h("input", { ...common, type: "number", step: row.type === "int" ? 1 : "any", inputmode: "decimal", value: row.value ?? "" });
  }
  if (row.secret) {
    // The server only sends a masked value: empty means "keep", anything typed replaces it.
    return h("input", { ...common, type: "password", autocomplete: "off", placeholder: row.value ? `${row.value} (unchanged)` : "not set", value: "" });
  }
  return h("input", { ...common, type: "text", autocomplete: "off", value: row.value ?? "" });
}

/** The value an input holds now, typed like the setting; undefined when unchanged. */
export function changedValue(row, input) {
  let value;
  if (row.type === "bool") value = input.checked;
  else if (row.type === "int" || row.type === "float") {
    if (input.value.trim() === "") return { error: "a number is required" };
    value = Number(input.value);
    if (!Number.isFinite(value)) return { error: "not a number" };
  } else value = input.value;
  if (row.secret) return value === "" ? undefined : { value };
  return value === row.value ? undefined : { value };
}

function sectionCard(section, items, reload) {
  const inputs = [];
  const list = h("div", { class: "settings-list" });
  for (const row of items) {
    const input = control(row);
    inputs.push([row, input]);
    const name = row.key.split(".").slice(1).join(".");
    const meta = h(
      "div",
      { class: "setting-meta" },
      badge(SOURCE_TEXT[row.source] || row.source, SOURCE_TONE[row.source]),
      row.source !== "config" && !row.secret && row.file_value !== undefined
        ? h("small", { class: "muted" }, `config.toml: ${fmtValue(row.file_value)}`)
        : null,
      row.locked ? h("small", { class: "muted" }, `set by SORA2API_${row.key.replace(".", "_").toUpperCase()}`) : null,
    );
    list.append(
      h(
        "div",
        { class: `setting${row.locked ? " locked" : ""}`, dataset: { key: row.key, source: row.source } },
        h("label", { class: "setting-name", for: `setting-${row.key}` }, name.replace(/_/g, " "), h("small", { class: "mono muted" }, row.key)),
        h("div", { class: "setting-control" }, input),
        meta,
      ),
    );
  }
  const error = h("p", { class: "form-error", role: "alert" });
  const save = button("Save", async (ev) => {
    error.textContent = "";
    for (const [, input] of inputs) input.classList.remove("invalid");
    const values = {};
    for (const [row, input] of inputs) {
      if (row.locked) continue;
      const change = changedValue(row, input);
      if (change?.error) {
        input.classList.add("invalid");
        error.textContent = `${row.key}: ${change.error}`;
        return;
      }
      if (change) values[row.key] = change.value;
    }
    if (!Object.keys(values).length) {
      notify(`Nothing changed in ${section}`, "info");
      return;
    }
    const btn = ev.currentTarget;
    btn.disabled = true;
    try {
      await api("PUT", "/api/admin/settings", { values });
      notify(`Saved ${Object.keys(values).join(", ")}`, "ok");
      reload();
    } catch (err) {
      error.textContent = err.message;
      notify(err.message, "error");
      const bad = inputs.find(([row]) => row.key === err.param);
      if (bad) bad[1].classList.add("invalid");
    } finally {
      btn.disabled = false;
    }
  }, "btn btn-primary", { dataset: { section } });
  return h("section", { class: "card settings-card", dataset: { section } }, h("h2", {}, section), list, error, h("div", { class: "actions" }, save));
}

// -- credentials ------------------------------------------------------------------------------

function credentials(app) {
  const shown = h("input", { id: "api-key-value", readonly: true, class: "mono", value: "", placeholder: "loading…", "aria-label": "API key" });
  let revealed = false;
  const revealBtn = button("Reveal", async (ev) => {
    if (revealed) {
      revealed = false;
      ev.currentTarget.textContent = "Reveal";
      return loadKey(false);
    }
    const r = await act(ev.currentTarget, () => loadKey(true));
    if (r) {
      revealed = true;
      revealBtn.textContent = "Hide";
    }
  }, "btn btn-small", { id: "reveal-api-key" });
  const keyNote = h("small", { class: "hint" });
  async function loadKey(reveal) {
    const data = await api("GET", `/api/admin/apikey${reveal ? "?reveal=1" : ""}`);
    shown.value = data.api_key || "";
    keyNote.textContent = data.locked
      ? "Set by SORA2API_AUTH_API_KEY: change it in the environment."
      : data.is_default
        ? "This is the well-known default key 'han1234': set your own before exposing the server."
        : "";
    keyNote.classList.toggle("warn", Boolean(data.is_default));
    newKey.disabled = saveKey.disabled = generate.disabled = Boolean(data.locked);
    return data;
  }
  const newKey = h("input", { name: "api_key", autocomplete: "off", class: "mono", placeholder: "at least 8 characters, no spaces", minlength: 8 });
  const generate = button("Generate", () => {
    const bytes = crypto.getRandomValues(new Uint8Array(24));
    newKey.value = `sk-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  }, "btn btn-small");
  const saveKey = button("Set API key", async (ev) => {
    const value = newKey.value.trim();
    const r = await act(ev.currentTarget, () => api("POST", "/api/admin/apikey", { api_key: value }), "API key changed; clients must use the new key");
    if (r !== undefined) {
      if (apiKey.get()) apiKey.set(value); // keep the playground working
      newKey.value = "";
      revealed = false;
      revealBtn.textContent = "Reveal";
      loadKey(false).catch(() => {});
    }
  }, "btn btn-primary btn-small");

  loadKey(false).catch((err) => {
    shown.value = `(unavailable: ${err.message})`;
  });

  return h(
    "section",
    { class: "card credentials" },
    h("h2", {}, "Credentials"),
    h(
      "div",
      { class: "cred-row" },
      h("div", {}, h("div", { class: "strong" }, "Admin password"), h("small", { class: "muted" }, "Changing it signs out every session.")),
      button("Change password", () => app.showPasswordChange(false), "btn btn-small", { id: "change-password" }),
    ),
    h("div", { class: "cred-row" }, field("API key", h("div", { class: "inline" }, shown, revealBtn), keyNote)),
    h("div", { class: "cred-row" }, field("New API key", h("div", { class: "inline" }, newKey, generate, saveKey))),
  );
}
