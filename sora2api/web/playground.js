// Playground: a streamed chat completion as any client would send it, with the API key. The
// model's own listing (GET /v1/models) says which choices it takes: seconds, size, style, an
// image, a storyboard, a character clip; a finished video can be remixed (POST /v1/videos/{id}/remix).

import { ApiError, api, apiKey, listOf, readBody } from "./api.js";
import { button, clear, field, h, maskKey, notify, safeUrl } from "./dom.js";
import { SseParser, parseResult } from "./stream.js";

const MAX_IMAGE_BYTES = 15 * 1024 * 1024;
const MAX_CLIP_BYTES = 30 * 1024 * 1024;
// The README's styles (style_id); the server answers 400 to any other.
const STYLES = ["festive", "retro", "news", "selfie", "handheld", "anime", "kakalaka", "golden", "nostalgic", "comic", "vintage"];
const SHOT_SECONDS = [5, 10, 15, 20];
const REMIX_POLL_MS = 1000;

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
  return () => {
    state.controller?.abort();
    state.stopRemix?.();
  };
}

function renderKey(box, refresh) {
  clear(box);
  const current = apiKey.get();
  if (current) {
    box.append(
      h(
        "div",
        { class: "cred-row" },
        h("span", {}, "Using the API key ", h("span", { class: "mono", id: "pg-key-hint" }, maskKey(current)), " for this browser tab."),
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

/** The storyboard helper: shots of 5/10/15/20 s, written into the prompt as "[10.0s]scene". */
export function storyboardPrompt(shots) {
  return shots
    .filter((shot) => shot.text.trim())
    .map((shot) => `[${Number(shot.seconds).toFixed(1)}s]${shot.text.trim()}`)
    .join("\n");
}

function storyboardHelper(prompt) {
  const list = h("div", { class: "shots" });
  const addShot = () => {
    const seconds = h("select", { name: "shot_seconds", "aria-label": "Shot length" }, SHOT_SECONDS.map((n) => h("option", { value: n, selected: n === 10 }, `${n} s`)));
    const text = h("input", { name: "shot_text", placeholder: "what happens in this shot", "aria-label": "Shot" });
    const row = h("div", { class: "inline shot" }, seconds, text, button("Remove", () => row.remove(), "btn btn-small btn-ghost"));
    list.append(row);
  };
  addShot();
  addShot();
  const use = button("Write into the prompt", () => {
    const shots = [...list.querySelectorAll(".shot")].map((row) => ({ seconds: row.querySelector("select").value, text: row.querySelector("input").value }));
    const text = storyboardPrompt(shots);
    if (!text) return notify("Describe at least one shot.", "error");
    prompt.value = text;
  }, "btn btn-small", { id: "pg-storyboard-use" });
  return h(
    "details",
    { class: "storyboard", id: "pg-storyboard" },
    h("summary", {}, "Storyboard helper"),
    h("p", { class: "hint" }, "Each shot becomes a line [10.0s]scene; the server renders them as one video."),
    list,
    h("div", { class: "actions" }, button("Add shot", addShot, "btn btn-small"), use),
  );
}

function playgroundForm(state) {
  const model = h("select", { name: "model", id: "pg-model", required: true }, h("option", { value: "" }, "Loading models…"));
  const info = h("small", { class: "hint", id: "pg-model-info" });
  const seconds = h("select", { name: "seconds", id: "pg-seconds" });
  const size = h("select", { name: "size", id: "pg-size" });
  const style = h("select", { name: "style_id", id: "pg-style" }, h("option", { value: "" }, "none"), STYLES.map((st) => h("option", { value: st }, st)));
  const prompt = h("textarea", { name: "prompt", id: "pg-prompt", rows: 3, placeholder: "A cat playing the piano" });
  const image = h("input", { type: "file", name: "image", id: "pg-image", accept: "image/png,image/jpeg,image/webp,image/gif" });
  const clip = h("input", { type: "file", name: "clip", id: "pg-clip", accept: "video/mp4,video/quicktime,video/webm" });
  const send = h("button", { type: "submit", class: "btn btn-primary", id: "pg-send" }, "Generate");
  const stop = button("Stop", () => state.controller?.abort(), "btn", { disabled: true, id: "pg-stop" });
  const out = output(state);
  const secondsField = field("Seconds", seconds);
  const sizeField = field("Size", size);
  const styleField = field("Style", style);
  const imageField = field("Image (optional)", image, "Sent as a data URL (image-to-image or image-to-video).");
  const clipField = field("Character from a clip (optional)", clip, "A short video of a person: alone it creates a character; with a prompt, a video starring it.");
  const board = storyboardHelper(prompt);
  const form = h(
    "form",
    { class: "card form", id: "playground-form" },
    h("div", { class: "field-row" }, field("Model", model, info), secondsField, sizeField, styleField),
    h("div", { class: "field-row" }, imageField, clipField),
    field("Prompt", prompt),
    board,
    h("div", { class: "actions" }, stop, send),
  );
  const models = new Map();
  const choose = (select, values, preferred) => {
    clear(select);
    for (const v of values) select.append(h("option", { value: v, selected: String(v) === String(preferred) }, String(v)));
  };
  // Show only the choices the picked model takes; a fixed value is stated, not offered.
  const fit = () => {
    const m = models.get(model.value) || {};
    const video = m.kind === "video";
    const secs = m.seconds || [];
    const sizes = m.sizes || [];
    choose(seconds, secs, m.default_seconds ?? secs[0]);
    choose(size, sizes, m.default_size ?? sizes[0]);
    secondsField.hidden = secs.length < 2;
    sizeField.hidden = sizes.length < 2;
    styleField.hidden = !m.styles;
    imageField.hidden = m.image_input === false;
    clipField.hidden = !m.characters;
    board.hidden = !m.storyboard;
    if (!m.styles) style.value = "";
    if (!m.characters) clip.value = "";
    const facts = [m.provider && `by ${m.provider}`, video && secs.length === 1 ? `${secs[0]} s` : null, m.orientation].filter(Boolean);
    info.textContent = [m.description, facts.join(", ")].filter(Boolean).join(" · ");
  };
  model.addEventListener("change", fit);
  loadModels(model, models).then(fit);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    out.reset();
    const m = models.get(model.value) || {};
    const text = prompt.value.trim();
    const parts = [];
    try {
      const file = imageField.hidden ? null : image.files[0];
      const video = clipField.hidden ? null : clip.files[0];
      if (!text && !video) throw new Error("Write a prompt (or pick a clip to make a character).");
      if (text) parts.push({ type: "text", text });
      if (file) {
        if (file.size > MAX_IMAGE_BYTES) throw new Error("The image is larger than 15 MB");
        parts.push({ type: "image_url", image_url: { url: await readDataUrl(file) } });
      }
      if (video) {
        if (video.size > MAX_CLIP_BYTES) throw new Error("The clip is larger than 30 MB");
        parts.push({ type: "video_url", video_url: { url: await readDataUrl(video) } });
      }
    } catch (err) {
      out.error(err.message);
      return;
    }
    const content = parts.length === 1 && parts[0].type === "text" ? text : parts;
    state.controller = new AbortController();
    send.disabled = true;
    stop.disabled = false;
    try {
      // The object format feeds the progress bar, whatever [generation] progress_format says.
      const body = { model: model.value, messages: [{ role: "user", content }], stream: true, progress_format: "object" };
      if (!secondsField.hidden && seconds.value) body.seconds = seconds.value;
      if (!sizeField.hidden && size.value) body.size = size.value;
      if (!styleField.hidden && style.value) body.style_id = style.value;
      out.setRemixable(Boolean(m.remix));
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

async function loadModels(select, models) {
  try {
    const data = await api("GET", "/v1/models", undefined, { key: true });
    clear(select);
    for (const m of listOf(data)) {
      models.set(m.id, m);
      const by = m.provider && m.provider !== "sora" ? ` (${m.provider})` : "";
      select.append(h("option", { value: m.id, title: m.description || "", dataset: { provider: m.provider || "" } }, `${m.id}${by}`));
    }
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

/** Play a finished video: the player and a download link. */
function videoPlayer(url) {
  const safe = safeUrl(url);
  if (!safe) return [];
  return [
    h("video", { src: safe, controls: true, preload: "metadata", class: "result-video", playsinline: true }),
    h("a", { href: safe, target: "_blank", rel: "noopener noreferrer", download: "" }, "Download video"),
  ];
}

/** Remix a finished video: POST /v1/videos/{id}/remix, then follow the new job to its video. */
function remixForm(state, sourceId) {
  const prompt = h("input", { name: "remix_prompt", id: "pg-remix-prompt", placeholder: "Make it snow", "aria-label": "Remix prompt" });
  const bar = h("progress", { max: 100, value: 0, id: "pg-remix-progress", hidden: true, "aria-label": "Remix progress" });
  const status = h("span", { class: "muted", id: "pg-remix-status" });
  const result = h("div", { class: "result", id: "pg-remix-result" });
  const send = button("Remix", async () => {
    if (!prompt.value.trim()) return notify("Say what to change first.", "error");
    state.stopRemix?.();
    send.disabled = true;
    clear(result);
    try {
      const video = await api("POST", `/v1/videos/${encodeURIComponent(sourceId)}/remix`, { prompt: prompt.value.trim() }, { key: true });
      bar.hidden = false;
      bar.value = 0;
      status.textContent = `Remixing as ${video.id}…`;
      await followJob(state, video.id, bar, status, result);
    } catch (err) {
      status.textContent = "Failed";
      errorBox(result, err.message);
    } finally {
      send.disabled = false;
    }
  }, "btn btn-small", { id: "pg-remix-send" });
  return h(
    "div",
    { class: "remix", id: "pg-remix" },
    h("h2", {}, "Remix this video"),
    h("div", { class: "inline" }, prompt, send),
    h("div", { class: "output-head" }, status),
    bar,
    result,
  );
}

/** Poll the job (admin API: progress and the cached result link) until it ends. */
function followJob(state, jobId, bar, status, result) {
  return new Promise((resolve) => {
    let timer = null;
    state.stopRemix = () => {
      clearTimeout(timer);
      resolve();
    };
    const tick = async () => {
      try {
        const job = await api("GET", `/api/jobs/${encodeURIComponent(jobId)}`);
        bar.value = Number(job.progress) || 0;
        if (job.status === "completed") {
          bar.value = 100;
          status.textContent = "Done";
          result.append(...videoPlayer((job.result_urls || [])[0]));
          return resolve();
        }
        if (job.status === "failed" || job.status === "cancelled") {
          status.textContent = "Failed";
          errorBox(result, job.error?.message || `The remix was ${job.status}`);
          return resolve();
        }
        status.textContent = `Remixing… ${Math.round(bar.value)}%`;
      } catch (err) {
        status.textContent = `Could not read the job: ${err.message}`;
      }
      timer = setTimeout(tick, REMIX_POLL_MS);
    };
    tick();
  });
}

/** The output panel: job id, progress bar, reasoning lines, the result. */
function output(state) {
  const jobId = h("span", { class: "mono", id: "pg-job" });
  const bar = h("progress", { max: 100, value: 0, id: "pg-progress", "aria-label": "Progress" });
  const lines = h("ol", { class: "reasoning", id: "pg-log" });
  const result = h("div", { class: "result", id: "pg-result" });
  const remixBox = h("div", {});
  const status = h("span", { class: "muted", id: "pg-status" }, "Idle");
  const el = h("section", { class: "card output", hidden: true }, h("div", { class: "output-head" }, status, jobId), bar, lines, result, remixBox);
  let remixable = false;
  const addLine = (text, cls = "") => {
    lines.append(h("li", { class: cls }, text));
    lines.scrollTop = lines.scrollHeight;
  };
  return {
    el,
    setRemixable(value) {
      remixable = value;
    },
    reset() {
      el.hidden = false;
      clear(lines);
      clear(result);
      clear(remixBox);
      state.stopRemix?.();
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
      if (typeof delta.content === "string" && delta.content) {
        const res = parseResult(delta.content);
        showResult(result, res, bar, status);
        if (res?.type === "video" && remixable && jobId.textContent) remixBox.append(remixForm(state, jobId.textContent));
      }
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
    box.append(...videoPlayer(res.url));
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
