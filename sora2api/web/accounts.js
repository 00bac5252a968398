// The Add dialog for an account of any provider: Sora takes an AT, ST or RT; a live provider
// (an OpenAI-shaped gateway, Seedance, Gemini) takes an API key, its base URL and optionally the
// models to use. Shared by the tokens page.

import { api, listOf } from "./api.js";
import { field, h, modal, notify, submitForm } from "./dom.js";

/** Mirror of the server's classify_credential, only to tell the admin what they pasted. */
export function guessKind(text) {
  const raw = text.trim();
  const prefix = /^(at|st|rt)\s*[:=]\s*/i.exec(raw);
  if (prefix) return prefix[1].toLowerCase();
  if (!raw) return "";
  const parts = raw.split(".");
  if (parts.length === 3 && parts.every(Boolean)) return "at";
  if (parts.length === 5 || (parts.length >= 3 && !parts[1])) return "st";
  if (raw.startsWith("rt_") || raw.startsWith("v1.")) return "rt";
  if (parts.length === 1) return raw.length >= 200 ? "st" : "rt";
  return "";
}

const KIND_NAMES = { at: "access token (AT)", st: "session token (ST)", rt: "refresh token (RT)" };
const PROVIDER_LABELS = { sora: "Sora (AT / ST / RT)", openai: "OpenAI-Videos gateway", seedance: "Seedance (Ark)", gemini: "Gemini" };

/** "a, b ,c" → ["a", "b", "c"]; empty → null (every model the account serves). */
export function modelList(text) {
  const names = text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
  return names.length ? names : null;
}

export function limitInput(name, value) {
  return h("input", { name, type: "number", min: 0, step: 1, inputmode: "numeric", placeholder: "default", value: value ?? "" });
}

export function limitValue(input) {
  return input.value.trim() === "" ? null : Number(input.value);
}

function soraFields() {
  const credential = h("textarea", { name: "credential", rows: 4, required: true, spellcheck: "false", autocomplete: "off", placeholder: "eyJhbGciOi… (AT), a session token (ST) or rt_… (RT)" });
  const kind = h(
    "select",
    { name: "kind" },
    h("option", { value: "auto" }, "Detect automatically"),
    h("option", { value: "at" }, "Access token (AT)"),
    h("option", { value: "st" }, "Session token (ST)"),
    h("option", { value: "rt" }, "Refresh token (RT)"),
  );
  const detected = h("small", { class: "hint" }, "");
  credential.addEventListener("input", () => {
    const k = guessKind(credential.value);
    detected.textContent = credential.value.trim() ? (k ? `Detected: ${KIND_NAMES[k]}` : "Not recognised; pick the kind below") : "";
  });
  const box = h("div", { class: "provider-fields", id: "sora-fields" }, field("Credential", credential), detected, field("Kind", kind));
  const body = () => {
    const raw = credential.value.trim().replace(/^(at|st|rt)\s*[:=]\s*/i, "");
    const k = kind.value === "auto" ? guessKind(credential.value) || "at" : kind.value;
    return { [k === "at" ? "token" : k]: raw };
  };
  return { box, body, focus: () => credential.focus(), required: [credential] };
}

function keyFields(defaults) {
  const key = h("input", { name: "api_key", type: "password", autocomplete: "off", spellcheck: "false", placeholder: "sk-…" });
  const baseUrl = h("input", { name: "base_url", type: "url", autocomplete: "off", spellcheck: "false" });
  const models = h("input", { name: "models", autocomplete: "off", spellcheck: "false", placeholder: "all the models the key serves" });
  let edited = false;
  baseUrl.addEventListener("input", () => (edited = true));
  const box = h(
    "div",
    { class: "provider-fields", id: "key-fields", hidden: true },
    field("API key", key),
    field("Base URL", baseUrl, "What the vendor's SDK takes as its base URL, e.g. https://gateway.example/v1"),
    field("Models (optional)", models, "Comma-separated upstream model names to use; empty: every model the key serves."),
  );
  return {
    box,
    required: [key, baseUrl],
    focus: () => key.focus(),
    /** A new provider picked: prefill its default base URL unless the admin typed one. */
    pick(provider) {
      if (!edited) baseUrl.value = defaults[provider] || "";
    },
    body(provider) {
      const out = { provider, token: key.value.trim(), base_url: baseUrl.value.trim() };
      const restriction = modelList(models.value);
      if (restriction) out.models = restriction;
      return out;
    },
  };
}

export function openAdd(reload) {
  const provider = h("select", { name: "provider" }, h("option", { value: "sora" }, PROVIDER_LABELS.sora));
  const defaults = {};
  const sora = soraFields();
  const keyed = keyFields(defaults);
  const remark = h("input", { name: "remark", maxlength: 500 });
  const proxy = h("input", { name: "proxy", placeholder: "http://host:port or socks5://user:pass@host:port", autocomplete: "off" });
  const imageLimit = limitInput("image_concurrency");
  const videoLimit = limitInput("video_concurrency");
  const error = h("p", { class: "form-error", role: "alert" });
  const submit = h("button", { type: "submit", class: "btn btn-primary" }, "Add token");
  const form = h(
    "form",
    { class: "form", id: "add-token-form" },
    field("Provider", provider),
    sora.box,
    keyed.box,
    field("Remark", remark),
    field("Proxy (optional)", proxy),
    h("div", { class: "field-row" }, field("Image concurrency", imageLimit), field("Video concurrency", videoLimit)),
    error,
    h("div", { class: "actions" }, submit),
  );
  const dialog = modal("Add a token", form);

  function show() {
    const isSora = provider.value === "sora";
    sora.box.hidden = !isSora;
    keyed.box.hidden = isSora;
    // A hidden required field would block the submit: only the visible ones are required.
    for (const el of sora.required) el.required = isSora;
    for (const el of keyed.required) el.required = !isSora;
    if (!isSora) keyed.pick(provider.value);
  }
  provider.addEventListener("change", () => {
    show();
    (provider.value === "sora" ? sora : keyed).focus();
  });
  show();
  // Only the providers this server serves; Sora alone if the list cannot be read.
  api("GET", "/api/providers", undefined, { noAuthRedirect: true })
    .then((data) => {
      for (const p of listOf(data)) {
        defaults[p.name] = p.default_base_url || "";
        if (p.name === "sora" || !p.available) continue;
        provider.append(h("option", { value: p.name }, PROVIDER_LABELS[p.name] || p.name));
      }
    })
    .catch(() => {});

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    const body = provider.value === "sora" ? sora.body() : keyed.body(provider.value);
    body.remark = remark.value;
    if (proxy.value.trim()) body.proxy = proxy.value.trim();
    if (limitValue(imageLimit) !== null) body.image_concurrency = limitValue(imageLimit);
    if (limitValue(videoLimit) !== null) body.video_concurrency = limitValue(videoLimit);
    await submitForm(submit, error, async () => {
      const data = await api("POST", "/api/tokens", body);
      notify(data.message || "Token added", "ok");
      if (data.warning) notify(`Warning: ${data.warning}`, "error");
      dialog.close();
      reload();
    });
  });
  sora.focus();
}
