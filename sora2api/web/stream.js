// Reading /v1/chat/completions with stream:true: SSE frames split on blank lines, ":" comments
// ignored (keep-alives), stop at [DONE] - the same rules as the OpenAI SDK.

/**
 * Feed text chunks in, get parsed events out. Each event is one of
 * {type:"chunk", data}, {type:"error", error}, {type:"done"}.
 */
export class SseParser {
  constructor() {
    this.buffer = "";
    this.done = false;
  }

  push(text) {
    this.buffer += text.replace(/\r\n/g, "\n");
    const events = [];
    let cut;
    while (!this.done && (cut = this.buffer.indexOf("\n\n")) >= 0) {
      const block = this.buffer.slice(0, cut);
      this.buffer = this.buffer.slice(cut + 2);
      const event = parseBlock(block);
      if (!event) continue;
      events.push(event);
      if (event.type === "done") this.done = true;
    }
    return events;
  }
}

function parseBlock(block) {
  const data = block
    .split("\n")
    .filter((line) => line.startsWith("data:"))
    .map((line) => line.slice(5).replace(/^ /, ""))
    .join("\n");
  if (!data) return null;
  if (data === "[DONE]") return { type: "done" };
  let parsed;
  try {
    parsed = JSON.parse(data);
  } catch {
    return { type: "error", error: { message: `Unreadable stream frame: ${data.slice(0, 200)}` } };
  }
  if (parsed && parsed.error) return { type: "error", error: parsed.error };
  return { type: "chunk", data: parsed };
}

/**
 * The final content as a result object: the JSON mode's {type, urls|url|...}, or, for the
 * markdown mode, the image and video links found in the text.
 */
export function parseResult(content) {
  if (typeof content !== "string" || content === "") return null;
  try {
    const obj = JSON.parse(content);
    if (obj && typeof obj === "object" && obj.type) return obj;
  } catch {
    /* markdown or plain text */
  }
  const images = [...content.matchAll(/!\[[^\]]*\]\(([^)\s]+)\)/g)].map((m) => m[1]);
  if (images.length) return { type: "image", urls: images, markdown: true };
  const video = /<video[^>]*\ssrc="([^"]+)"/.exec(content);
  if (video) return { type: "video", url: video[1].replace(/&amp;/g, "&"), markdown: true };
  if (/^Generation failed:/.test(content)) return { type: "error", error: content.replace(/^Generation failed:\s*/, "") };
  return { type: "text", text: content };
}
