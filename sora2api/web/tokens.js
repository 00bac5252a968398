// Tokens page: the pool (Sora tokens and other providers' accounts) with each one's status and
// reason, add / import / export, tests, enable / disable, edit limits, proxy and models, delete.

export { guessKind } from "./accounts.js";

import { limitInput, limitValue, modelList, openAdd } from "./accounts.js";
import { api, listOf } from "./api.js";
import {
  act, badge, button, clear, confirmDialog, emptyRow, field, fmtTime, fmtValue, h, modal, notify, submitForm, table, when,
} from "./dom.js";

const REFRESH_MS = 10000;
const STATUS_TONE = { active: "ok", disabled: "neutral", expired: "bad", invalid: "bad", cooldown: "warn" };

export function render(root) {
  const stats = h("div", { class: "stats", id: "stats" });
  const tbody = h("tbody", { id: "token-rows" });
  const counter = h("span", { class: "muted" });
  const state = { tokens: [] };

  async function load() {
    try {
      const data = await api("GET", "/api/tokens");
      state.tokens = listOf(data, "tokens");
      renderRows(tbody, state.tokens, load);
      counter.textContent = `${state.tokens.length} token${state.tokens.length === 1 ? "" : "s"}`;
    } catch (err) {
      clear(tbody).append(emptyRow(7, `Could not load tokens: ${err.message}`));
    }
    loadStats(stats);
  }

  const testAll = button("Test all", async (ev) => {
    const data = await act(ev.currentTarget, () => api("POST", "/api/tokens/test-all"));
    if (data) {
      const results = listOf(data, "results");
      const ok = data.ok ?? results.filter((r) => r.ok).length;
      notify(`Tested ${data.total ?? results.length} token(s): ${ok} OK`, ok === results.length ? "ok" : "error");
      for (const r of results.filter((x) => !x.ok)) notify(`Token ${r.id} (${r.email || "no email"}): ${r.reason}`, "error");
      load();
    }
  });

  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Tokens"), counter),
    stats,
    h(
      "div",
      { class: "toolbar" },
      button("Add token", () => openAdd(load), "btn btn-primary", { id: "add-token" }),
      button("Bulk import", () => openImport(load), "btn", { id: "import-tokens" }),
      button("Export JSON", (ev) => exportTokens(ev.currentTarget, "json")),
      button("Export text", (ev) => exportTokens(ev.currentTarget, "text")),
      testAll,
      button("Reload", () => load(), "btn btn-ghost"),
    ),
    table(["Status", "Account", "", "Models", "Limits", "Credential", "Usage"], tbody, "tokens"),
  );
  tbody.append(emptyRow(7, "Loading…"));
  load();
  // Busy counts and cooldowns change on their own; skip a refresh while a dialog is open.
  const timer = setInterval(() => {
    if (!document.querySelector("dialog[open]")) load();
  }, REFRESH_MS);
  return () => clearInterval(timer);
}

async function loadStats(box) {
  let data;
  try {
    data = await api("GET", "/api/stats", undefined, { noAuthRedirect: true });
  } catch {
    box.hidden = true; // statistics are optional; the page works without them
    return;
  }
  box.hidden = false;
  clear(box);
  for (const [label, value] of pickStats(data)) {
    box.append(h("div", { class: "stat" }, h("span", { class: "stat-value" }, fmtValue(value)), h("span", { class: "stat-label" }, label)));
  }
}

// The counters worth a glance, by their path in GET /api/stats; anything else is left out.
const STAT_PICKS = [
  ["tokens", ["tokens", "total"]],
  ["available for images", ["tokens", "available", "image"]],
  ["available for videos", ["tokens", "available", "video"]],
  ["cooling down", ["tokens", "cooling_down"]],
  ["jobs running", ["jobs", "running"]],
  ["jobs queued", ["jobs", "queued"]],
  ["images today", ["images", "today"]],
  ["videos today", ["videos", "today"]],
  ["errors today", ["errors", "today"]],
  ["requests today", ["requests", "today"]],
];

export function pickStats(data) {
  const dig = (path) => path.reduce((o, k) => (o && typeof o === "object" ? o[k] : undefined), data);
  const picked = STAT_PICKS.map(([label, path]) => [label, dig(path)]).filter(([, v]) => v !== undefined && v !== null);
  return picked.length ? picked : flattenStats(data).slice(0, 10);
}

/** {"tokens": {"active": 2}, "jobs_today": 5} → [["tokens active", 2], ["jobs today", 5]] (scalars only). */
export function flattenStats(data, prefix = "") {
  const out = [];
  if (!data || typeof data !== "object") return out;
  for (const [key, value] of Object.entries(data)) {
    const label = `${prefix}${key}`.replace(/_/g, " ");
    if (value && typeof value === "object" && !Array.isArray(value)) out.push(...flattenStats(value, `${label} `));
    else if (typeof value === "number" || typeof value === "string" || typeof value === "boolean") out.push([label, value]);
  }
  return out;
}

// -- the table ----------------------------------------------------------------------------

function renderRows(tbody, tokens, reload) {
  clear(tbody);
  if (!tokens.length) {
    tbody.append(emptyRow(7, "No tokens yet. Add an access, session or refresh token to start."));
    return;
  }
  for (const t of tokens) tbody.append(tokenRow(t, reload));
}

function statusCell(t) {
  const now = Date.now() / 1000;
  const cooling = t.cooldown_until && t.cooldown_until > now;
  const tone = cooling && t.status === "active" ? "warn" : STATUS_TONE[t.status] || "neutral";
  // The same words often arrive as the status reason, the last error and the refresh error
  // (an expired token says it in all three): each text is printed once.
  const seen = new Set();
  const once = (text, make) => {
    const key = String(text || "").trim();
    if (!key || seen.has(key)) return null;
    seen.add(key);
    return make(key);
  };
  return h(
    "td",
    { class: "status token-status" },
    badge(t.status || "unknown", tone),
    once(t.status_reason, (r) => h("div", { class: "reason" }, r)),
    t.status_at ? h("div", { class: "muted small" }, when(t.status_at, "since ")) : null,
    cooling
      ? h("div", { class: "reason warn" }, "Cooling down until ", when(t.cooldown_until), t.cooldown_reason ? `: ${t.cooldown_reason}` : "")
      : null,
    availability(t),
    once(t.last_error, (r) => h("div", { class: "muted small", title: fmtTime(t.last_error_at) }, `Last error: ${r}`)),
    // A failed refresh outlives later errors: the token serves on until its access token expires.
    once(t.refresh_error, (r) => h("div", { class: "reason warn", title: fmtTime(t.refresh_error_at) }, r)),
  );
}

function availability(t) {
  if (!t.available || typeof t.available !== "object") return null;
  // "video: expired" under an expired badge says nothing new.
  const notes = Object.entries(t.available).filter(([, v]) => v && v !== "available" && v !== t.status);
  if (!notes.length) return null;
  return h("div", { class: "muted small" }, notes.map(([k, v]) => `${k}: ${v}`).join("; "));
}

const isSora = (t) => !t.provider || t.provider === "sora";

/** Which models an account serves (and, when the admin restricted it, which it may use). */
function modelsCell(t) {
  if (isSora(t)) {
    return h(
      "td",
      { class: "small models" },
      h("div", { class: "tags" }, t.sora2_supported ? badge("Sora 2", "ok") : badge("no Sora 2", "neutral")),
      h("div", {}, "sora-image*, sora-video*"),
      h("div", { class: "muted" }, t.plan_title || t.plan_type || ""),
    );
  }
  const served = t.served_models || [];
  return h(
    "td",
    { class: "small models provider-notes" },
    h("div", {}, `serves: ${served.length ? served.join(", ") : "no models reported"}`),
    t.models ? h("div", { class: "warn" }, `restricted to: ${t.models.join(", ")}`) : null,
  );
}

function tokenRow(t, reload) {
  const limits = t.limits || {};
  const busy = t.busy || {};
  const lim = (v) => (v === 0 || v === null || v === undefined ? "∞" : v);
  return h(
    "tr",
    { dataset: { tokenId: String(t.id), provider: t.provider || "sora" } },
    statusCell(t),
    h(
      "td",
      { class: "account" },
      h("div", { class: "tags" }, badge(t.provider || "sora", "info"), h("span", { class: "muted small num" }, `#${t.id}`)),
      h("div", { class: "strong" }, t.email || t.name || (isSora(t) ? "(no email)" : t.provider)),
      isSora(t) ? null : h("div", { class: "mono small" }, t.base_url || ""),
      t.username ? h("div", { class: "muted small" }, `@${t.username}`) : null,
      t.remark ? h("div", { class: "remark" }, t.remark) : null,
    ),
    h("td", { class: "actions-cell" }, rowActions(t, reload)),
    modelsCell(t),
    h(
      "td",
      { class: "small limits" },
      h("div", { class: t.image_enabled === false ? "muted strike" : "" }, `image ${busy.image ?? 0}/${lim(limits.image)}`),
      h("div", { class: t.video_enabled === false ? "muted strike" : "" }, `video ${busy.video ?? 0}/${lim(limits.video)}`),
      t.quota_remaining === null || t.quota_remaining === undefined ? null : h("div", {}, `quota ${t.quota_remaining} left`),
      t.quota_resets_at ? h("div", { class: "muted" }, when(t.quota_resets_at, "resets ")) : null,
    ),
    h(
      "td",
      { class: "small" },
      h("div", { class: "mono nowrap" }, t.access_token || "—"),
      isSora(t) ? h("div", {}, t.at_expires ? when(t.at_expires, "expires ") : "no expiry known") : null,
      h("div", { class: "muted" }, isSora(t) ? [t.has_session_token ? "ST" : null, t.has_refresh_token ? "RT" : null].filter(Boolean).join(" + ") || "AT only" : "API key"),
      t.proxy ? h("div", { class: "mono" }, `proxy ${t.proxy}`) : null,
    ),
    h(
      "td",
      { class: "small" },
      h("div", {}, `images ${t.image_count ?? 0}`),
      h("div", {}, `videos ${t.video_count ?? 0}`),
      h("div", { class: t.error_count ? "warn" : "" }, `errors ${t.error_count ?? 0}`),
    ),
  );
}

function rowActions(t, reload) {
  const id = t.id;
  const post = (path, okText) => (ev) =>
    act(ev.currentTarget, () => api("POST", `/api/tokens/${id}/${path}`), okText).then((r) => r !== undefined && reload());
  const test = async (ev) => {
    const r = await act(ev.currentTarget, () => api("POST", `/api/tokens/${id}/test`));
    if (r) {
      notify(r.ok === false ? `Token ${id} test failed: ${r.reason}` : `Token ${id} OK${r.reason ? ` (${r.reason})` : ""}`, r.ok === false ? "error" : "ok");
      reload();
    }
  };
  const disabled = t.status === "disabled";
  return h(
    "div",
    { class: "row-actions" },
    button("Test", test, "btn btn-small"),
    disabled
      ? button("Enable", post("enable", `Token ${id} enabled`), "btn btn-small")
      : button("Disable", post("disable", `Token ${id} disabled`), "btn btn-small"),
    t.has_session_token || t.has_refresh_token ? button("Refresh", post("refresh", `Token ${id} refreshed`), "btn btn-small") : null,
    t.sora2_supported || !isSora(t) ? null : button("Activate", () => openActivate(t, reload), "btn btn-small"),
    button("Edit", () => openEdit(t, reload), "btn btn-small"),
    button(
      "Delete",
      async (ev) => {
        const target = ev.currentTarget;
        if (!(await confirmDialog(`Delete token ${id} (${t.email || "no email"})? This cannot be undone.`, "Delete"))) return;
        const r = await act(target, () => api("DELETE", `/api/tokens/${id}`), `Token ${id} deleted`);
        if (r !== undefined) reload();
      },
      "btn btn-small btn-danger",
    ),
  );
}

// -- import / export -------------------------------------------------------------------------

function openImport(reload) {
  const format = h(
    "select",
    { name: "format" },
    h("option", { value: "text" }, "Text: one credential per line"),
    h("option", { value: "json" }, "JSON: a list of token objects (an export)"),
  );
  const data = h("textarea", { name: "data", rows: 8, spellcheck: "false", autocomplete: "off", placeholder: "One AT / ST / RT per line" });
  const file = h("input", { type: "file", accept: ".txt,.json,text/plain,application/json" });
  file.addEventListener("change", async () => {
    const f = file.files[0];
    if (!f) return;
    data.value = await f.text();
    if (f.name.endsWith(".json")) format.value = "json";
  });
  const results = h("div", { class: "import-results" });
  const error = h("p", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, "Import");
  const form = h(
    "form",
    { class: "form", id: "import-form" },
    field("Format", format),
    field("Tokens", data),
    field("…or load a file", file),
    error,
    h("div", { class: "actions" }, submit),
    results,
  );
  modal("Bulk import", form);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    let payload = data.value;
    if (format.value === "json") {
      try {
        payload = JSON.parse(data.value);
      } catch (err) {
        error.textContent = `Not valid JSON: ${err.message}`;
        return;
      }
    }
    await submitForm(submit, error, async () => {
      const out = await api("POST", "/api/tokens/import", { format: format.value, data: payload });
      showImportResults(results, out);
      reload();
    });
  });
}

const RESULT_TONE = { created: "ok", updated: "ok", duplicate: "warn", error: "bad" };

function showImportResults(box, out) {
  clear(box);
  const summary = out.summary || {};
  box.append(h("p", { class: "strong" }, Object.entries(summary).map(([k, v]) => `${v} ${k}`).join(", ") || "Done"));
  const tbody = h("tbody", {});
  for (const r of listOf(out, "results")) {
    tbody.append(
      h(
        "tr",
        {},
        h("td", { class: "num" }, r.line ?? ""),
        h("td", {}, badge(r.result || (r.ok ? "ok" : "error"), RESULT_TONE[r.result] || "neutral")),
        h("td", {}, r.email || "—"),
        h("td", {}, r.kind || ""),
        h("td", { class: "small" }, r.message || r.error || ""),
      ),
    );
  }
  box.append(table(["Line", "Result", "Email", "Kind", "Message"], tbody));
}

async function exportTokens(btn, format) {
  const ok = await confirmDialog("The export contains every token's full secrets. Download it?", "Download");
  if (!ok) return;
  await act(btn, async () => {
    const resp = await api("GET", `/api/tokens/export?format=${format}`, undefined, { raw: true });
    const blob = await resp.blob();
    // Our own blob URL (not server data), so it bypasses the http(s)-only check of h().
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = `sora2api-tokens.${format === "text" ? "txt" : "json"}`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }, "Export downloaded");
}

// -- activate Sora 2 ---------------------------------------------------------------------------

function openActivate(t, reload) {
  const code = h("input", { name: "invite_code", autocomplete: "off", required: true, class: "mono" });
  const error = h("p", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, "Activate");
  const form = h(
    "form",
    { class: "form", id: "activate-form" },
    h("p", {}, `Token ${t.id} (${t.email || "no email"}) cannot use Sora 2 yet. Redeem an invite code for it.`),
    field("Invite code", code),
    error,
    h("div", { class: "actions" }, submit),
  );
  const dialog = modal("Activate Sora 2", form);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    await submitForm(submit, error, async () => {
      const r = await api("POST", `/api/tokens/${t.id}/activate`, { invite_code: code.value.trim() });
      notify(r.already_accepted ? `Token ${t.id} was already activated` : `Token ${t.id} activated for Sora 2`, "ok");
      if (r.reason) notify(`Warning: ${r.reason}`, "error");
      dialog.close();
      reload();
    });
  });
  code.focus();
}

// -- edit -----------------------------------------------------------------------------------

function openEdit(t, reload) {
  const remark = h("input", { name: "remark", maxlength: 500, value: t.remark || "" });
  const proxy = h("input", { name: "proxy", autocomplete: "off", placeholder: t.proxy ? `keep ${t.proxy}` : "none" });
  const clearProxy = h("input", { type: "checkbox", name: "clear_proxy" });
  const imageLimit = limitInput("image_concurrency", t.image_concurrency);
  const videoLimit = limitInput("video_concurrency", t.video_concurrency);
  const imageOn = h("input", { type: "checkbox", name: "image_enabled", checked: t.image_enabled !== false });
  const videoOn = h("input", { type: "checkbox", name: "video_enabled", checked: t.video_enabled !== false });
  const models = isSora(t) ? null : h("input", { name: "models", autocomplete: "off", value: (t.models || []).join(", "), placeholder: "every served model" });
  const error = h("p", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, "Save");
  const testProxy = button("Test proxy", async (ev) => {
    const value = proxy.value.trim();
    if (!value) {
      notify("Type the proxy URL to test (the stored one is masked).", "error");
      return;
    }
    const r = await act(ev.currentTarget, () => api("POST", "/api/tokens/test-proxy", { proxy: value }));
    if (r) notify(r.ok ? `Proxy reachable (${r.latency_ms} ms)` : `Proxy failed: ${r.error}`, r.ok ? "ok" : "error");
  });
  const form = h(
    "form",
    { class: "form", id: "edit-token-form" },
    field("Remark", remark),
    field("Proxy", proxy, "Leave empty to keep the current proxy."),
    h("label", { class: "check" }, clearProxy, " Remove the proxy"),
    testProxy,
    h(
      "div",
      { class: "field-row" },
      field("Image concurrency", imageLimit, `Empty: default (${t.limits?.image ?? "?"}). 0: no limit.`),
      field("Video concurrency", videoLimit, `Empty: default (${t.limits?.video ?? "?"}). 0: no limit.`),
    ),
    h("label", { class: "check" }, imageOn, " Use for images"),
    h("label", { class: "check" }, videoOn, " Use for videos"),
    models ? field("Models", models, `Comma-separated; empty: every served model (${(t.served_models || []).join(", ") || "none reported"}).`) : null,
    error,
    h("div", { class: "actions" }, submit),
  );
  const dialog = modal(`Edit token ${t.id}`, form);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    const body = {
      remark: remark.value,
      image_concurrency: limitValue(imageLimit),
      video_concurrency: limitValue(videoLimit),
      image_enabled: imageOn.checked,
      video_enabled: videoOn.checked,
    };
    // The listed proxy is masked: send one only when the admin typed a new one or cleared it.
    if (models) body.models = modelList(models.value);
    if (clearProxy.checked) body.proxy = "";
    else if (proxy.value.trim()) body.proxy = proxy.value.trim();
    await submitForm(submit, error, async () => {
      await api("PUT", `/api/tokens/${t.id}`, body);
      notify(`Token ${t.id} saved`, "ok");
      dialog.close();
      reload();
    });
  });
}

