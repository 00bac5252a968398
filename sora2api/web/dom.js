// DOM helpers. Every server value reaches the page through text nodes or setAttribute, never
// through HTML parsing, so a token remark or an upstream message cannot inject markup.

/** The URL if its scheme is http(s) (relative URLs resolve against the page), else null. */
export function safeUrl(value) {
  if (typeof value !== "string" || value === "") return null;
  try {
    const url = new URL(value, window.location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/** Create an element: h("td", {class: "x", onclick: fn}, "text", childNode, [more]). */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "src" || key === "href") {
      const url = safeUrl(value);
      if (url) el.setAttribute(key, url);
    } else if (key === "value" || key === "checked" || key === "disabled" || key === "selected") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append children (nodes, strings, numbers, nested arrays; null/false skipped). */
export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

// -- notices ------------------------------------------------------------------------------

/** Show a short notice; kind "ok" | "error" | "info". Errors stay longer and can be dismissed. */
export function notify(message, kind = "ok") {
  const box = document.getElementById("toasts");
  const toast = h(
    "div",
    { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", {}, message),
    h("button", { type: "button", class: "toast-close", "aria-label": "Dismiss", onclick: () => toast.remove() }, "×"),
  );
  box.append(toast);
  setTimeout(() => toast.remove(), kind === "error" ? 12000 : 5000);
  return toast;
}

/** Run an async action from a button: disable it meanwhile, report success or the error. */
export async function act(button, action, success) {
  if (button) button.disabled = true;
  try {
    const result = await action();
    const text = typeof success === "function" ? success(result) : success;
    if (text) notify(text, "ok");
    return result;
  } catch (err) {
    notify(err.message || String(err), "error");
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/** Submit a form's work: the button is disabled meanwhile, a failure's message shown in `error`. */
export async function submitForm(submit, error, work) {
  submit.disabled = true;
  try {
    await work();
  } catch (err) {
    error.textContent = err.message;
  } finally {
    submit.disabled = false;
  }
}

/** A modal confirmation (native <dialog>); resolves true when the admin confirms. */
export function confirmDialog(message, confirmLabel = "Confirm", cancelLabel = "Cancel") {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "modal confirm" },
      h("p", {}, message),
      h(
        "div",
        { class: "actions" },
        h("button", { type: "button", class: "btn", onclick: () => dialog.close("cancel") }, cancelLabel),
        h("button", { type: "button", class: "btn btn-danger", onclick: () => dialog.close("ok") }, confirmLabel),
      ),
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(dialog.returnValue === "ok");
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A modal with arbitrary content; returns {dialog, close}. */
export function modal(title, ...content) {
  const dialog = h(
    "dialog",
    { class: "modal" },
    h(
      "div",
      { class: "modal-head" },
      h("h2", {}, title),
      h("button", { type: "button", class: "btn btn-ghost", "aria-label": "Close", onclick: () => dialog.close() }, "×"),
    ),
    ...content,
  );
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

// -- forms --------------------------------------------------------------------------------

/** A labelled field: label text, the control, an optional hint under it. */
export function field(label, control, hint) {
  const note = hint instanceof Node ? hint : hint ? h("small", { class: "hint" }, hint) : null;
  return h("label", { class: "field" }, h("span", { class: "field-label" }, label), control, note);
}

export function button(label, onclick, cls = "btn", extra = {}) {
  return h("button", { type: "button", class: cls, onclick, ...extra }, label);
}

// -- formatting ---------------------------------------------------------------------------

const pad = (n) => String(n).padStart(2, "0");

/** Unix seconds → "2025-01-31 14:05:09" in local time; "—" when missing. */
export function fmtTime(ts) {
  if (ts === null || ts === undefined || ts === "" || Number.isNaN(Number(ts))) return "—";
  const d = new Date(Number(ts) * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Unix seconds → "in 3 h" / "5 min ago". */
export function fmtRelative(ts) {
  if (ts === null || ts === undefined || ts === "" || Number.isNaN(Number(ts))) return "—";
  const diff = Number(ts) - Date.now() / 1000;
  const abs = Math.abs(diff);
  if (abs < 5) return "just now";
  let text;
  if (abs < 60) text = `${Math.round(abs)} s`;
  else if (abs < 3600) text = `${Math.round(abs / 60)} min`;
  else if (abs < 86400 * 2) text = `${Math.round(abs / 3600)} h`;
  else text = `${Math.round(abs / 86400)} d`;
  return diff >= 0 ? `in ${text}` : `${text} ago`;
}

/** The one way the panel shows a moment: relative text, the absolute time on hover. */
export function when(ts, prefix = "") {
  const missing = ts === null || ts === undefined || ts === "";
  return h("time", { class: "when nowrap", title: missing ? null : fmtTime(ts) }, missing ? "—" : `${prefix}${fmtRelative(ts)}`);
}

/** A secret as the server masks it (sora2api/mask.py): all but the last 4 characters hidden. */
export function maskKey(secret) {
  if (!secret) return "";
  const text = String(secret);
  return text.length > 8 ? `…${text.slice(-4)}` : "…";
}

/** A long id shortened to its first 8 characters; a click shows it whole and copies it. */
export function shortId(id) {
  const full = id === null || id === undefined ? "" : String(id);
  if (full.length <= 10) return h("span", { class: "mono id" }, full || "—");
  const short = `${full.slice(0, 8)}…`;
  const el = h("button", { type: "button", class: "id-chip mono", title: `${full} (click to show and copy)`, dataset: { full } }, short);
  el.addEventListener("click", () => {
    const open = el.classList.toggle("open");
    el.textContent = open ? full : short;
    // Clipboard access needs a secure context; showing the id whole is the fallback.
    navigator.clipboard?.writeText(full).then(() => notify(`Copied ${full}`, "info"), () => {});
  });
  return el;
}

export function fmtValue(value) {
  if (value === null || value === undefined || value === "") return "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** A coloured status pill. */
export function badge(text, tone) {
  return h("span", { class: `badge badge-${tone || "neutral"}` }, text);
}

/** An empty-state row spanning a table. */
export function emptyRow(columns, text) {
  return h("tr", { class: "empty" }, h("td", { colspan: columns }, text));
}

/**
 * A table that fits its box: wide screens lay it out as a grid, phones as one card per row.
 * Each cell gets its column's name as data-label (the card's caption), whenever rows are drawn.
 */
export function table(headers, tbody, cls = "") {
  const label = () => {
    for (const tr of tbody.children) {
      [...tr.children].forEach((td, i) => {
        if (td.dataset.label === undefined && !td.hasAttribute("colspan")) td.dataset.label = headers[i] || "";
      });
    }
  };
  new MutationObserver(label).observe(tbody, { childList: true });
  label();
  return h(
    "div",
    { class: "table-wrap" },
    h("table", { class: `grid ${cls}` }, h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))), tbody),
  );
}
