// API keys page (create with a one-time reveal, list, enable/disable, delete) and the Usage page
// with a per-key chart: an SVG drawn here from the usage report, no library and no CDN.

import { api, listOf } from "./api.js";
import { act, badge, button, clear, confirmDialog, emptyRow, field, h, modal, submitForm, table, when } from "./dom.js";

const LIMITS = ["concurrency", "rpm", "video_seconds_per_day", "images_per_day"];
const SVG = "http://www.w3.org/2000/svg";

// -- keys -----------------------------------------------------------------------------------

export function renderKeys(root) {
  const tbody = h("tbody", { id: "key-rows" });
  async function load() {
    try {
      const rows = listOf(await api("GET", "/api/admin/keys"));
      clear(tbody);
      if (!rows.length) tbody.append(emptyRow(8, "No API keys yet. The bootstrap key (Settings) keeps working."));
      for (const key of rows) tbody.append(keyRow(key, load));
    } catch (err) {
      clear(tbody).append(emptyRow(8, `Could not load keys: ${err.message}`));
    }
  }
  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "API keys")),
    h("div", { class: "toolbar" }, button("Create key", () => createDialog(load), "btn btn-primary", { id: "create-key" }), button("Reload", load, "btn btn-ghost")),
    table(["Status", "Name", "", "Key", "Models", "Limits", "Expires", "ID"], tbody, "keys"),
  );
  tbody.append(emptyRow(8, "Loading…"));
  load();
  return null;
}

function limitsText(limits) {
  const set = LIMITS.filter((name) => limits && limits[name] !== null && limits[name] !== undefined);
  return set.length ? set.map((name) => `${name} ${limits[name]}`).join(", ") : "none";
}

function keyRow(key, reload) {
  const expired = key.expires_at !== null && key.expires_at * 1000 <= Date.now();
  const status = !key.enabled ? badge("disabled", "bad") : expired ? badge("expired", "warn") : badge("active", "ok");
  const toggle = button(
    key.enabled ? "Disable" : "Enable",
    (ev) =>
      act(ev.currentTarget, () => api("PUT", `/api/admin/keys/${key.id}`, { enabled: !key.enabled }), `Key ${key.name} ${key.enabled ? "disabled" : "enabled"}`).then(
        (r) => r !== undefined && reload(),
      ),
    "btn btn-small",
  );
  const remove = button(
    "Delete",
    async (ev) => {
      const target = ev.currentTarget;
      if (!(await confirmDialog(`Delete key ${key.name}? Clients using it get 401 at once; its usage stays.`, "Delete"))) return;
      const r = await act(target, () => api("DELETE", `/api/admin/keys/${key.id}`), `Key ${key.name} deleted`);
      if (r !== undefined) reload();
    },
    "btn btn-small btn-danger",
  );
  return h(
    "tr",
    { dataset: { keyId: String(key.id) } },
    h("td", { class: "status" }, status),
    h("td", { class: "strong" }, key.name),
    h("td", { class: "actions-cell" }, h("div", { class: "row-actions" }, toggle, remove)),
    h("td", { class: "mono nowrap" }, key.key_hint),
    h("td", { class: "small" }, key.models ? key.models.join(", ") : "all"),
    h("td", { class: "small" }, limitsText(key.limits)),
    h("td", { class: "small" }, key.expires_at === null ? "never" : when(key.expires_at)),
    h("td", { class: "num" }, key.id),
  );
}

function createDialog(reload) {
  const name = h("input", { name: "name", required: true, maxlength: 100 });
  const models = h("input", { name: "models", placeholder: "all models" });
  const expires = h("input", { name: "expires_at", type: "datetime-local" });
  const limitInputs = Object.fromEntries(LIMITS.map((n) => [n, h("input", { name: n, type: "number", min: 1, step: 1, placeholder: "no limit" })]));
  const hooks = h("textarea", { name: "webhook_urls", rows: 2, placeholder: "one https:// URL a line" });
  const choice = (n, values) => h("select", { name: n }, h("option", { value: "" }, "server default"), values.map((v) => h("option", { value: v }, v)));
  const progress = choice("progress_format", ["object", "text"]);
  const content = choice("content_format", ["json", "markdown"]);
  const error = h("p", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, "Create");
  const form = h(
    "form",
    { id: "create-key-form" },
    field("Name", name),
    field("Models", models, "Comma-separated model ids; empty for all"),
    field("Expires", expires, "Empty for never"),
    h("div", { class: "field-row" }, LIMITS.map((n) => field(n, limitInputs[n]))),
    field("Webhook URLs", hooks),
    h("div", { class: "field-row" }, field("Progress format", progress), field("Content format", content)),
    error,
    h("div", { class: "actions" }, submit),
  );
  const dialog = modal("Create API key", form);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    error.textContent = "";
    submitForm(submit, error, async () => {
      const body = { name: name.value };
      const list = models.value.split(",").map((m) => m.trim()).filter(Boolean);
      if (list.length) body.models = list;
      if (expires.value) body.expires_at = Math.floor(new Date(expires.value).getTime() / 1000);
      body.limits = {};
      for (const n of LIMITS) if (limitInputs[n].value !== "") body.limits[n] = Number(limitInputs[n].value);
      const urls = hooks.value.split("\n").map((u) => u.trim()).filter(Boolean);
      if (urls.length) body.webhook_urls = urls;
      if (progress.value) body.progress_format = progress.value;
      if (content.value) body.content_format = content.value;
      const created = await api("POST", "/api/admin/keys", body);
      dialog.close();
      reveal(created);
      reload();
    });
  });
}

function reveal(created) {
  const shown = (label, value, id) => field(label, h("input", { id, class: "mono", readonly: true, value }));
  modal(
    `Key ${created.name} created`,
    h("div", { id: "key-reveal" },
      h("p", { class: "notice notice-warn" }, "Copy the key and the webhook secret now: they are shown only this once."),
      shown("API key", created.key, "new-key"),
      shown("Webhook signing secret", created.webhook_secret, "new-webhook-secret"),
    ),
  );
}

// -- usage ----------------------------------------------------------------------------------

export function renderUsage(root) {
  const picker = h("select", { id: "usage-key", "aria-label": "Key" }, h("option", { value: "" }, "All keys"));
  const days = h("select", { id: "usage-days", "aria-label": "Period" }, [7, 30, 90].map((d) => h("option", { value: d, selected: d === 30 }, `Last ${d} days`)));
  const chart = h("div", { id: "usage-chart", class: "card chart" });
  const tbody = h("tbody", { id: "usage-rows" });
  async function load() {
    const since = Math.floor(Date.now() / 1000) - Number(days.value) * 86400;
    const query = new URLSearchParams({ group_by: "day", from: String(since) });
    if (picker.value) query.set("key", picker.value);
    try {
      const report = await api("GET", `/api/admin/usage?${query}`);
      clear(chart).append(...drawChart(report.groups, Number(days.value)));
      clear(tbody);
      const t = report.totals;
      tbody.append(
        ...["completed", "failed", "cancelled"].map((state) =>
          h("tr", {}, h("td", { class: "status" }, badge(state, state === "completed" ? "ok" : state === "failed" ? "bad" : "neutral")), h("td", { class: "num" }, t[state].jobs), h("td", { class: "num" }, t[state].video_seconds), h("td", { class: "num" }, t[state].images)),
        ),
      );
    } catch (err) {
      clear(chart).append(h("p", { class: "form-error" }, `Could not load usage: ${err.message}`));
    }
  }
  picker.addEventListener("change", load);
  days.addEventListener("change", load);
  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Usage")),
    h("div", { class: "toolbar" }, picker, days, button("Reload", load, "btn btn-ghost")),
    chart,
    h("p", { class: "hint" }, "Only completed jobs count toward a key's caps; failed and cancelled ones cost nothing."),
    table(["State", "Jobs", "Video seconds", "Images"], tbody, "usage"),
  );
  api("GET", "/api/admin/keys")
    .then((data) => {
      for (const key of listOf(data)) picker.append(h("option", { value: key.id }, `${key.name} (${key.key_hint})`));
      const wanted = new URLSearchParams(window.location.hash.split("?")[1] || "").get("key");
      if (wanted) picker.value = wanted;
    })
    .catch(() => {})
    .finally(load);
  return null;
}

function svg(tag, attrs, ...children) {
  // Presentation attributes only (no style attribute): the CSP allows no inline styles.
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const child of children) el.append(child);
  return el;
}

/** Completed video seconds and images per UTC day, as two bars per day. */
function drawChart(groups, span) {
  const byDay = new Map(groups.map((g) => [g.group, g.completed]));
  const daysList = [];
  const today = new Date();
  for (let i = span - 1; i >= 0; i--) {
    const d = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - i));
    daysList.push(d.toISOString().slice(0, 10));
  }
  const width = 720, height = 220, left = 44, bottom = 28, top = 12;
  const plotH = height - bottom - top;
  const slot = (width - left) / daysList.length;
  const max = Math.max(1, ...daysList.map((d) => Math.max(byDay.get(d)?.video_seconds || 0, byDay.get(d)?.images || 0)));
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Completed usage per day", class: "usage-svg" });
  root.append(svg("line", { x1: left, y1: top + plotH, x2: width, y2: top + plotH, class: "axis" }));
  root.append(svg("text", { x: left - 6, y: top + 8, "text-anchor": "end", class: "tick" }, document.createTextNode(String(max))));
  root.append(svg("text", { x: left - 6, y: top + plotH, "text-anchor": "end", class: "tick" }, document.createTextNode("0")));
  daysList.forEach((day, i) => {
    const value = byDay.get(day) || { video_seconds: 0, images: 0, jobs: 0 };
    const x = left + i * slot;
    const bar = (v, offset, cls, label) => {
      const hgt = (v / max) * plotH;
      const rect = svg("rect", { x: x + offset, y: top + plotH - hgt, width: Math.max(1, slot / 2 - 1), height: hgt, class: cls, "data-day": day });
      rect.append(svg("title", {}, document.createTextNode(`${day}: ${v} ${label}`)));
      return rect;
    };
    root.append(bar(value.video_seconds, 0, "bar-video", "video seconds"), bar(value.images, slot / 2, "bar-images", "images"));
    if (i % Math.ceil(daysList.length / 7) === 0) {
      root.append(svg("text", { x: x + slot / 2, y: height - 8, "text-anchor": "middle", class: "tick" }, document.createTextNode(day.slice(5))));
    }
  });
  const legend = h("div", { class: "legend small" }, h("span", { class: "swatch swatch-video" }), " video seconds ", h("span", { class: "swatch swatch-images" }), " images (completed jobs, UTC days)");
  return [root, legend];
}
