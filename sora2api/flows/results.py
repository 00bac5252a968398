"""The final result objects (the README's content JSON) and their markdown rendering."""

from __future__ import annotations

from html import escape
from typing import Any

import orjson


def image_result(urls: list[str]) -> dict[str, Any]:
    return {"type": "image", "urls": urls, "count": len(urls), "data": [{"url": u} for u in urls]}


def video_result(url: str, *, watermark_free: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "video",
        "url": url,
        "data": [{"url": url, "revised_prompt": None}],
    }
    if watermark_free:
        out["watermark_free"] = True
    return out


def character_result(
    username: str, display_name: str, cameo_id: str, character_id: str
) -> dict[str, Any]:
    data = {
        "username": username,
        "display_name": display_name,
        "cameo_id": cameo_id,
        "character_id": character_id,
    }
    return {"type": "character", **data, "data": dict(data)}


def error_result(message: str) -> dict[str, Any]:
    return {"type": "error", "error": message, "data": {"error": message}}


def render_content(result: dict[str, Any], content_format: str) -> str:
    """The chat message content: the JSON string (default) or markdown for chat UIs."""
    if content_format != "markdown":
        return orjson.dumps(result).decode()
    kind = result.get("type")
    if kind == "image":
        return "\n".join(f"![Generated Image]({u})" for u in result["urls"])
    if kind == "video":
        url = result["url"]
        return f'<video src="{escape(url)}" controls></video>\n\n[Download video]({url})'
    if kind == "character":
        return f"Character created: @{result['username']} ({result['display_name']})"
    return f"Generation failed: {result.get('error', '')}"
