// Playground: a streamed chat completion as any client would send it, with the API key.

import { ApiError, api, apiKey, listOf, readBody } from "./api.js";
import { button, clear, field, h, notify, safeUrl } from "./dom.js";
import { SseParser, parseResult } from "./stream.js";

const MAX_IMAGE_BYTES = 15 * 1024 * 1024;

export function render(root) {
  const keyBox = h("section", { class: "card", id: "playground-key" });
  const formBox = h("div", {});
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Playground")), keyBox, formBox);
  const state = { controller: null };
  const refresh = () => {
    renderKey(keyBox, refresh);
    clear(formBox);
    if (apiKey.get()) formBox.append(playgroundForm(state));
  };
  refresh();
  return () => state.controller?.abort();
}

function renderKey(box, refresh) {
  clear(box);
  const current = apiKey.get();
  if (current) {
    box.append(
      h(
        "div",
        { class: "cred-row" },
        h("span", {}, "Using the API key ", h("span", { class: "mono" }, `…${current.slice(-4)}`), " for this browser tab."),
        button("Forget", () => {
          apiKey.clear();
          refresh();
        }, "btn btn-small"),
      ),
    );
    return;
  }
  const input = h("input", { type: "password", autocomplete: "off", class: "mono", placeholder: "paste the API key", "aria-label": "API key" });
  const use = button("Use this key", () => {
    if (!input.value.trim()) return notify("Paste an API key first.", "error");
    apiKey.set(input.value.trim());
    refresh();
  }, "btn btn-small");
  const fromServer = button("Use the server's API key", async () => {
    fromServer.disabled = true;
    try {
      const data = await api("GET", "/api/admin/apikey?reveal=1");
      apiKey.set(data.api_key);
      refresh();
    } catch (err) {
      notify(err.message, "error");
      fromServer.disabled = false;
    }
  }, "btn btn-primary btn-small", { id: "use-server-key" });
  box.append(
    h("p", {}, "The playground calls /v1/chat/completions like any client, so it needs the API key. It is kept in this tab only (sessionStorage)."),
    h("div", { class: "inline" }, input, use, fromServer),
  );
}

function playgroundForm(state) {
  const model = h("select", { name: "model", id: "pg-model", required: true }, h("option", { value: "" }, "Loading models…"));
  const prompt = h("textarea", { name: "prompt", id: "pg-prompt", rows: 3, required: true, placeholder: "A cat playing the piano" });
  const image = h("input", { type: "file", name: "image", id: "pg-image", accept: "image/png,image/jpeg,image/webp,image/gif" });
  const send = h("button", { type: "submit", class: "btn btn-primary", id: "pg-send" }, "Generate");
  const stop = button("Stop", () => state.controller?.abort(), "btn", { disabled: true, id: "pg-stop" });
  const out = output();
  const form = h(
    "form",
    { class: "card form", id: "playground-form" },
    h("div", { class: "field-row" }, field("Model", model), field("Image (optional)", image, "Sent as a data URL (image-to-image or image-to-video).")),
    field("Prompt", prompt),
    h("div", { class: "actions" }, stop, send),
  );
  loadModels(model);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    out.reset();
    let content = prompt.value;
    try {
      const file = image.files[0];
      if (file) {
        if (file.size > MAX_IMAGE_BYTES) throw new Error("The image is larger than 15 MB");
        content = [{ type: "text", text: prompt.value }, { type: "image_url", image_url: { url: await readDataUrl(file) } }];
      }
    } catch (err) {
      out.error(err.message);
      return;
    }
    state.controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    try {
      // The object format feeds the progress bar, whatever [generation] progress_format says.
      const body = { model: model.value, messages: [{ role: "user", content }], stream: true, progress_format: "object" };
      await runStream(body, state.controller.signal, out);
    } catch (err) {
      if (err.name === "AbortError") out.note("Stopped. The job goes on on the server; cancel it on the Jobs page.");
      else out.error(err.message);
    } finally {
      send.disabled = false;
      stop.disabled = true;
      state.controller = null;
      out.finish();
    }
  });
  return h("div", {}, form, out.el);
}

async function loadModels(select) {
  try {
    const data = await api("GET", "/v1/models", undefined, { key: true });
    clear(select);
    for (const m of listOf(data)) select.append(h("option", { value: m.id, title: m.description || "" }, m.id));
  } catch (err) {
    clear(select).append(h("option", { value: "" }, "(no models)"));
    notify(`Could not load models: ${err.message}`, "error");
    if (err.status === 401) apiKey.clear();
  }
}

function readDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error(`Could not read ${file.name}`));
    reader.readAsDataURL(file);
  });
}

/** POST the request and feed every frame of the answer to the output panel. */
async function runStream(body, signal, out) {
  const resp = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream", Authorization: `Bearer ${apiKey.get()}` },
    body: JSON.stringify(body),
    signal,
  });
  if (!resp.ok) {
    const err = ApiError.from(resp.status, await readBody(resp));
    if (resp.status === 401) apiKey.clear();
    throw err;
  }
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  for (;;) {
    const { done, value } = await reader.read();
    const events = parser.push(done ? decoder.decode() + "\n\n" : decoder.decode(value, { stream: true }));
    for (const event of events) out.event(event);
    if (done || parser.done) break;
  }
  if (!parser.done) out.error("The stream ended before [DONE]: the connection was cut.");
}

/** The output panel: job id, progress bar, reasoning lines, the result. */
function output() {
  const jobId = h("span", { class: "mono", id: "pg-job" });
  const bar = h("progress", { max: 100, value: 0, id: "pg-progress", "aria-label": "Progress" });
  const lines = h("ol", { class: "reasoning", id: "pg-log" });
  const result = h("div", { class: "result", id: "pg-result" });
  const status = h("span", { class: "muted", id: "pg-status" }, "Idle");
  const el = h("section", { class: "card output", hidden: true }, h("div", { class: "output-head" }, status, jobId), bar, lines, result);
  const addLine = (text, cls = "") => {
    lines.append(h("li", { class: cls }, text));
    lines.scrollTop = lines.scrollHeight;
  };
  return {
    el,
    reset() {
      el.hidden = false;
      clear(lines);
      clear(result);
      jobId.textContent = "";
      bar.value = 0;
      status.textContent = "Sending…";
    },
    note: (text) => addLine(text, "muted"),
    error(message) {
      status.textContent = "Failed";
      errorBox(result, message);
    },
    finish() {
      if (status.textContent === "Sending…" || status.textContent === "Running…") status.textContent = "Finished";
    },
    event(ev) {
      if (ev.type === "done") return;
      if (ev.type === "error") {
        this.error(ev.error?.message || "The server reported an error");
        return;
      }
      const chunk = ev.data;
      if (chunk.job_id && !jobId.textContent) jobId.textContent = chunk.job_id;
      status.textContent = "Running…";
      const delta = chunk.choices?.[0]?.delta || {};
      const r = delta.reasoning_content;
      if (r && typeof r === "object") {
        if (typeof r.progress === "number") bar.value = r.progress;
        const pct = typeof r.progress === "number" ? ` (${Math.round(r.progress)}%)` : "";
        addLine(`[${r.stage || "?"}] ${r.status || ""}: ${r.message || ""}${pct}`, r.status === "error" ? "bad-text" : "");
      } else if (typeof r === "string" && r) {
        addLine(r);
      }
      if (typeof delta.content === "string" && delta.content) showResult(result, parseResult(delta.content), bar, status);
    },
  };
}

function showResult(box, res, bar, status) {
  if (!res) return;
  if (res.type === "image") {
    bar.value = 100;
    status.textContent = "Done";
    for (const url of res.urls || []) {
      const safe = safeUrl(url);
      if (!safe) continue;
      box.append(h("a", { href: safe, target: "_blank", rel: "noopener noreferrer" }, h("img", { src: safe, alt: "Generated image", class: "result-image" })));
    }
  } else if (res.type === "video") {
    bar.value = 100;
    status.textContent = "Done";
    const safe = safeUrl(res.url);
    if (safe) {
      box.append(
        h("video", { src: safe, controls: true, preload: "metadata", class: "result-video", playsinline: true }),
        h("a", { href: safe, target: "_blank", rel: "noopener noreferrer", download: "" }, "Download video"),
      );
    }
  } else if (res.type === "character") {
    status.textContent = "Done";
    box.append(h("p", { class: "strong" }, `Character created: @${res.username || "?"} (${res.display_name || ""})`));
  } else if (res.type === "error") {
    status.textContent = "Failed";
    errorBox(box, res.error || "Generation failed");
  } else {
    box.append(h("pre", { class: "result-text" }, res.text || JSON.stringify(res)));
  }
}

/** Show an error once: a failed stream sends a readable line and then the error frame. */
function errorBox(box, message) {
  const seen = [...box.querySelectorAll(".error-box")].some((el) => el.textContent === message);
  if (!seen) box.append(h("div", { class: "error-box", role: "alert" }, message));
}
