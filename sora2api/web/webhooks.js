// Webhooks page: every delivery of the outbox with its attempts and status (filter by key and
// status, page with "Older"), and the signing secret of the bootstrap key's jobs (masked; Reveal).

import { api, listOf } from "./api.js";
import { badge, button, clear, emptyRow, field, fmtRelative, fmtTime, h, table } from "./dom.js";

const TONES = { delivered: "ok", pending: "warn", failed: "bad" };
const COLUMNS = ["Event", "Job", "Key", "URL", "Status", "Attempts", "Last answer", "Next retry", "Created"];

export function render(root) {
  const tbody = h("tbody", { id: "webhook-rows" });
  const status = h("select", { name: "status", "aria-label": "Status" },
    ["", "pending", "delivered", "failed"].map((s) => h("option", { value: s }, s || "any status")));
  const keyId = h("input", { name: "key_id", inputmode: "numeric", placeholder: "key id", size: 8, "aria-label": "Key id" });
  const backlog = h("span", { class: "muted", id: "webhook-backlog" });
  const older = button("Older", () => load(last), "btn btn-ghost", { id: "webhook-older", hidden: true });
  let last = null;

  async function load(after = null) {
    const query = new URLSearchParams({ limit: "50" });
    if (status.value) query.set("status", status.value);
    if (keyId.value.trim()) query.set("key_id", keyId.value.trim());
    if (after) query.set("after", after);
    try {
      const data = await api("GET", `/api/admin/webhooks/deliveries?${query}`);
      const rows = listOf(data);
      if (!after) clear(tbody);
      if (!after && !rows.length) tbody.append(emptyRow(COLUMNS.length, "No webhook deliveries yet."));
      for (const d of rows) tbody.append(deliveryRow(d));
      last = rows.length ? rows[rows.length - 1].id : last;
      older.hidden = !data.has_more;
      backlog.textContent = `${data.backlog} waiting to be delivered`;
    } catch (err) {
      clear(tbody).append(emptyRow(COLUMNS.length, `Could not load deliveries: ${err.message}`));
    }
  }
  status.addEventListener("change", () => load());
  keyId.addEventListener("change", () => load());

  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Webhooks")),
    secretCard(),
    h("div", { class: "toolbar" }, status, keyId, button("Reload", () => load(), "btn btn-ghost"), backlog),
    table(COLUMNS, tbody),
    h("div", { class: "toolbar" }, older),
  );
  tbody.append(emptyRow(COLUMNS.length, "Loading…"));
  load();
  return null;
}

function deliveryRow(d) {
  const answer = d.last_error || (d.last_status ? `HTTP ${d.last_status}` : "—");
  return h("tr", {},
    h("td", {}, d.event),
    h("td", { class: "mono" }, d.job_id),
    h("td", {}, d.key_id === null ? "bootstrap" : String(d.key_id)),
    h("td", { class: "mono" }, d.url),
    h("td", {}, badge(d.status, TONES[d.status])),
    h("td", {}, String(d.attempts)),
    h("td", { title: answer }, answer.length > 80 ? `${answer.slice(0, 77)}…` : answer),
    h("td", {}, d.next_retry_at ? fmtRelative(d.next_retry_at) : "—"),
    h("td", {}, fmtTime(d.created_at)),
  );
}

// The bootstrap key's signing secret: jobs made with [auth] api_key (or the panel) are signed with it.
function secretCard() {
  const shown = h("input", { readonly: true, class: "mono", id: "webhook-secret", "aria-label": "Webhook signing secret" });
  let revealed = false;
  async function show(reveal) {
    try {
      const data = await api("GET", `/api/admin/webhooks/secret${reveal ? "?reveal=1" : ""}`);
      shown.value = data.webhook_secret || "";
      revealed = reveal;
      toggle.textContent = reveal ? "Hide" : "Reveal";
    } catch (err) {
      shown.value = `(${err.message})`;
    }
  }
  const toggle = button("Reveal", () => show(!revealed), "btn btn-small", { id: "reveal-webhook-secret" });
  show(false);
  return h("div", { class: "card" },
    field("Signing secret of the bootstrap key's jobs", h("div", { class: "inline" }, shown, toggle),
      "Each created API key has its own secret, shown once when the key is made."));
}
