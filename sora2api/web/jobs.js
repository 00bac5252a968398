// Jobs page (live progress, cancel) and Logs page.

import { api, listOf } from "./api.js";
import { act, badge, button, clear, confirmDialog, emptyRow, fmtValue, h, shortId, table, when } from "./dom.js";

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
    table(["Status", "Progress", "Result / error", "", "Job", "Model", "Prompt", "Account", "Created"], tbody, "jobs"),
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
  if (error) return h("td", { class: "small bad-text error-cell job-error" }, fmtValue(error));
  const urls = Array.isArray(job.result_urls) ? job.result_urls : resultUrls(job.result);
  if (!urls.length) return h("td", { class: "muted small error-cell" }, "—");
  return h(
    "td",
    { class: "small error-cell" },
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
        h("td", { class: "job-status status" }, badge((job.status || "").replace("_", " "), JOB_TONE[job.status])),
        h("td", { class: "progress" }, progressBar(job)),
        resultCell(job),
        h("td", { class: "actions-cell" }, cancel ? h("div", { class: "row-actions" }, cancel) : null),
        h("td", { class: "small" }, shortId(id)),
        h("td", { class: "small" }, job.kind || "", h("div", { class: "muted" }, job.model || "")),
        h("td", { class: "prompt small" }, job.prompt || ""),
        h("td", { class: "small" }, h("span", { class: "num" }, job.token_id ?? "—"), job.token_email ? h("div", { class: "muted" }, job.token_email) : null),
        h("td", { class: "small" }, when(job.created_at)),
      ),
    );
  }
}

// -- logs -------------------------------------------------------------------------------------

const LOG_HEADERS = ["Time", "Status", "Job", "Account", "Key", "Client", "Request", "Model"];

/** One logged call as a row: what happened first (status, job outcome), then who and what. */
function logRow(row) {
  const status = Number(row.status);
  const tone = status >= 500 ? "bad" : status >= 400 ? "warn" : "ok";
  const jobTone = JOB_TONE[row.job_status] || "neutral";
  return h(
    "tr",
    { class: status >= 400 ? "row-error" : "" },
    h("td", { class: "small time" }, when(row.ts)),
    h("td", { class: "status log-status" }, badge(String(row.status ?? "—"), tone), row.count > 1 ? h("div", { class: "muted small" }, `×${row.count}`) : null),
    h(
      "td",
      { class: "small error-cell" },
      row.job_id ? shortId(row.job_id) : "—",
      row.job_status ? h("div", { class: "log-job-status" }, badge(row.job_status.replace("_", " "), jobTone)) : null,
      row.job_error ? h("div", { class: "bad-text log-job-error" }, row.job_error) : null,
    ),
    h("td", { class: "small" }, row.token_id ?? "—", row.token_email ? h("div", { class: "muted" }, row.token_email) : null),
    h("td", { class: "small mono nowrap" }, row.key_hint || "—"),
    h("td", { class: "small mono nowrap" }, row.client || "—"),
    h("td", { class: "small" }, h("span", { class: "mono" }, `${row.method || ""} ${row.path || ""}`), h("div", { class: "muted nowrap" }, `${Math.round(Number(row.duration_ms) || 0)} ms`)),
    h("td", { class: "small" }, fmtValue(row.model)),
  );
}

export function renderLogs(root) {
  const limit = h("select", { name: "limit", "aria-label": "Rows" }, [100, 200, 500].map((n) => h("option", { value: n }, `last ${n}`)));
  const box = h("div", {});
  async function load() {
    try {
      const data = await api("GET", `/api/logs?limit=${limit.value}`);
      const rows = listOf(data, "logs");
      const tbody = h("tbody", { id: "log-rows" });
      if (!rows.length) tbody.append(emptyRow(LOG_HEADERS.length, "No requests logged yet."));
      for (const row of rows) tbody.append(logRow(row));
      clear(box).append(table(LOG_HEADERS, tbody, "logs"));
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
