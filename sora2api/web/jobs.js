// Jobs page (live progress, cancel) and Logs page.

import { api, listOf } from "./api.js";
import { act, badge, button, clear, confirmDialog, emptyRow, fmtRelative, fmtTime, fmtValue, h, table } from "./dom.js";

const JOB_POLL_MS = 2000;
const ACTIVE = new Set(["queued", "in_progress", "running", "pending"]);
const JOB_TONE = { completed: "ok", failed: "bad", cancelled: "neutral", queued: "warn", in_progress: "info" };

export function renderJobs(root) {
  const status = h(
    "select",
    { name: "status", "aria-label": "Status filter" },
    ["", "active", "queued", "in_progress", "completed", "failed", "cancelled"].map((s) => h("option", { value: s }, s ? s.replace("_", " ") : "all statuses")),
  );
  const limit = h("select", { name: "limit", "aria-label": "Rows" }, [20, 50, 100, 200].map((n) => h("option", { value: n }, `${n} rows`)));
  const tbody = h("tbody", { id: "job-rows" });
  const updated = h("span", { class: "muted small", "aria-live": "off" });
  let busy = false;

  async function load() {
    if (busy) return; // a slow answer must not pile up requests every 2 s
    busy = true;
    try {
      const q = new URLSearchParams({ limit: limit.value });
      if (status.value) q.set("status", status.value);
      const data = await api("GET", `/api/jobs?${q}`);
      renderJobRows(tbody, listOf(data, "jobs"), load);
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      clear(tbody).append(emptyRow(9, `Could not load jobs: ${err.message}`));
    } finally {
      busy = false;
    }
  }
  status.addEventListener("change", load);
  limit.addEventListener("change", load);

  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Jobs"), updated),
    h("div", { class: "toolbar" }, status, limit, button("Reload", load, "btn btn-ghost")),
    table(["Job", "Kind", "Status", "Progress", "Prompt", "Token", "Created", "Result / error", ""], tbody, "jobs"),
  );
  tbody.append(emptyRow(9, "Loading…"));
  load();
  const timer = setInterval(load, JOB_POLL_MS);
  return () => clearInterval(timer);
}

function progressBar(job) {
  const pct = Math.max(0, Math.min(100, Number(job.progress) || 0));
  return h(
    "div",
    { class: "progress-cell" },
    h("progress", { max: 100, value: pct, "aria-label": "Progress" }),
    h("div", { class: "muted small" }, `${Math.round(pct)}%${job.stage ? ` · ${job.stage}` : ""}`),
  );
}

function resultCell(job) {
  const error = job.error && typeof job.error === "object" ? job.error.message || job.error.code : job.error || job.error_message;
  if (error) return h("td", { class: "small bad-text" }, fmtValue(error));
  const urls = Array.isArray(job.result_urls) ? job.result_urls : resultUrls(job.result);
  if (!urls.length) return h("td", { class: "muted small" }, "—");
  return h(
    "td",
    { class: "small" },
    urls.map((u, i) => h("a", { href: u, target: "_blank", rel: "noopener noreferrer" }, urls.length > 1 ? `result ${i + 1} ` : "result")),
  );
}

/** The media URLs of a job result, whether it came as an object or as its JSON text. */
export function resultUrls(result) {
  let r = result;
  if (typeof r === "string") {
    try {
      r = JSON.parse(r);
    } catch {
      return [];
    }
  }
  if (!r || typeof r !== "object") return [];
  if (Array.isArray(r.urls)) return r.urls.filter((u) => typeof u === "string");
  if (typeof r.url === "string") return [r.url];
  return [];
}

function renderJobRows(tbody, jobs, reload) {
  clear(tbody);
  if (!jobs.length) {
    tbody.append(emptyRow(9, "No jobs."));
    return;
  }
  for (const job of jobs) {
    const id = job.id || job.job_id;
    const cancel = ACTIVE.has(job.status)
      ? button(
          "Cancel",
          async (ev) => {
            const target = ev.currentTarget;
            if (!(await confirmDialog(`Cancel job ${id}? The quota already spent is not returned.`, "Cancel job", "Keep running"))) return;
            const r = await act(target, () => api("POST", `/api/jobs/${encodeURIComponent(id)}/cancel`), `Job ${id} cancelled`);
            if (r !== undefined) reload();
          },
          "btn btn-small btn-danger",
        )
      : null;
    tbody.append(
      h(
        "tr",
        { dataset: { jobId: id, status: job.status || "" } },
        h("td", { class: "mono small" }, id),
        h("td", {}, job.kind || "", h("div", { class: "muted small nowrap" }, job.model || "")),
        h("td", { class: "job-status" }, badge((job.status || "").replace("_", " "), JOB_TONE[job.status])),
        h("td", {}, progressBar(job)),
        h("td", { class: "prompt small" }, job.prompt || ""),
        h("td", { class: "small" }, h("span", { class: "num" }, job.token_id ?? "—"), job.token_email ? h("div", { class: "muted" }, job.token_email) : null),
        h("td", { class: "small", title: fmtTime(job.created_at) }, fmtRelative(job.created_at)),
        resultCell(job),
        h("td", {}, cancel),
      ),
    );
  }
}

// -- logs -------------------------------------------------------------------------------------

// Preferred column order; any other scalar field a log row has is shown after these.
const LOG_COLUMNS = [
  "ts", "method", "path", "status", "duration_ms", "model", "job_id", "job_status", "job_error",
  "token_id", "token_email", "outcome", "key_hint", "client",
];
const LOG_LABELS = { ts: "time", duration_ms: "ms", token_id: "token", token_email: "account", job_id: "job", job_status: "job status", job_error: "job error", key_hint: "key" };
const LOG_HIDDEN = new Set(["id", "job_error_code"]);

export function logColumns(rows) {
  const present = new Set();
  for (const row of rows) for (const [k, v] of Object.entries(row)) if (v === null || typeof v !== "object") present.add(k);
  for (const name of LOG_HIDDEN) present.delete(name);
  const ordered = LOG_COLUMNS.filter((c) => present.has(c));
  return [...ordered, ...[...present].filter((c) => !LOG_COLUMNS.includes(c))];
}

export function renderLogs(root) {
  const limit = h("select", { name: "limit", "aria-label": "Rows" }, [100, 200, 500].map((n) => h("option", { value: n }, `last ${n}`)));
  const box = h("div", {});
  async function load() {
    try {
      const data = await api("GET", `/api/logs?limit=${limit.value}`);
      const rows = listOf(data, "logs");
      const cols = logColumns(rows);
      const tbody = h("tbody", {});
      if (!rows.length) tbody.append(emptyRow(Math.max(cols.length, 1), "No requests logged yet."));
      for (const row of rows) {
        tbody.append(
          h(
            "tr",
            { class: Number(row.status) >= 400 ? "row-error" : "" },
            cols.map((c) => h("td", { class: c === "path" || c === "job_id" ? "mono small" : "small" }, c === "ts" ? fmtTime(row[c]) : fmtValue(row[c]))),
          ),
        );
      }
      clear(box).append(table(cols.map((c) => LOG_LABELS[c] || c.replace(/_/g, " ")), tbody, "logs"));
    } catch (err) {
      clear(box).append(h("p", { class: "form-error" }, `Could not load logs: ${err.message}`));
    }
  }
  limit.addEventListener("change", load);
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Logs")), h("div", { class: "toolbar" }, limit, button("Reload", load, "btn btn-ghost")), box);
  load();
  const timer = setInterval(load, 10000);
  return () => clearInterval(timer);
}
