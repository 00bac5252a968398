"""Publishing, feeds, profiles, search and characters (contract 2.6-2.8, L1, L3, L4)."""

from __future__ import annotations

import base64
import binascii

import orjson
from aiohttp import web

from .common import (
    authenticate,
    backend_of,
    incoming,
    json_object,
    query_int,
    renderer,
    require_sentinel,
    require_sora2,
    state_of,
)
from .errors import SimError, invalid, not_found
from .faults import json_response
from .media import sniff_video
from .records import Post
from .routes_tasks import checked_file

CUTS = ("nf2", "nf2_latest", "nf2_top")

# -- publishing --------------------------------------------------------------------------------


async def post_create(request: web.Request) -> web.Response:
    """POST /backend/project_y/post: publish one draft."""
    account = authenticate(request)
    require_sentinel(request)
    body = json_object(request)
    attachments = body.get("attachments_to_create")
    text = body.get("post_text", "")
    if not isinstance(attachments, list) or len(attachments) != 1 or not isinstance(text, str):
        raise invalid()
    first = attachments[0]
    generation_id = first.get("generation_id") if isinstance(first, dict) else None
    if not isinstance(generation_id, str):
        raise invalid(param="attachments_to_create")
    post = backend_of(request).publish(account, generation_id, text)
    render = renderer(request)
    return json_response({"post": render.post(post), "profile": render.account_profile(account)})


async def post_get(request: web.Request) -> web.Response:
    """GET /backend/project_y/post/{post_id}: detail with encodings.source.path."""
    authenticate(request)
    post = backend_of(request).live_post(request.match_info["post_id"])
    render = renderer(request)
    return json_response({"post": render.post(post), "profile": render.author(post.user_id)})


async def post_delete(request: web.Request) -> web.Response:
    """DELETE /backend/project_y/post/{post_id}: 204, or 404 when unknown or gone."""
    account = authenticate(request)
    backend_of(request).delete_post(account, request.match_info["post_id"])
    return web.Response(status=204)


# -- feeds -------------------------------------------------------------------------------------


def _encode_cursor(scope: str, offset: int) -> str:
    # URL-safe without padding: clients paste cursors into query strings unencoded.
    raw = orjson.dumps({"s": scope, "o": offset})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_cursor(cursor: str, scope: str) -> int:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset = data["o"]
        same_scope = data["s"] == scope
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise invalid("Invalid cursor", param="cursor") from exc
    if not same_scope or not isinstance(offset, int) or offset < 0:
        raise invalid("Invalid cursor", param="cursor")
    return offset


def _page(request: web.Request, posts: list[Post], scope: str, default_limit: int) -> web.Response:
    limit = query_int(request, "limit", default_limit, 1, 100)
    cursor = request.query.get("cursor")
    offset = _decode_cursor(cursor, scope) if cursor else 0
    chunk = posts[offset : offset + limit]
    next_offset = offset + len(chunk)
    next_cursor = _encode_cursor(scope, next_offset) if next_offset < len(posts) else None
    render = renderer(request)
    return json_response({"items": [render.feed_item(p) for p in chunk], "cursor": next_cursor})


def _live_posts(request: web.Request) -> list[Post]:
    return [p for p in state_of(request).posts.values() if not p.deleted]


async def feed(request: web.Request) -> web.Response:
    """GET /backend/project_y/feed?limit=N&cut=nf2_latest|nf2_top|nf2[&cursor=C]."""
    authenticate(request)
    cut = request.query.get("cut") or "nf2"
    if cut not in CUTS:
        raise invalid(param="cut")
    posts = _live_posts(request)
    if cut == "nf2_latest":
        posts.sort(key=lambda p: p.posted_at, reverse=True)
    elif cut == "nf2_top":
        posts.sort(key=lambda p: (p.like_count, p.posted_at), reverse=True)
    else:
        posts.sort(key=lambda p: (p.view_count, p.posted_at), reverse=True)
    return _page(request, posts, cut, 8)


async def profile_feed_me(request: web.Request) -> web.Response:
    """GET /backend/project_y/profile_feed/me: the account's own published posts."""
    account = authenticate(request)
    posts = [p for p in _live_posts(request) if p.email == account.email]
    posts.sort(key=lambda p: p.posted_at, reverse=True)
    return _page(request, posts, "me:" + account.user_id, 8)


async def profile_feed_user(request: web.Request) -> web.Response:
    """GET /backend/project_y/profile_feed/{user_id}."""
    authenticate(request)
    state = state_of(request)
    user_id = request.match_info["user_id"]
    known = user_id in state.profiles or any(a.user_id == user_id for a in state.accounts.values())
    if not known:
        raise not_found("User not found")
    posts = [p for p in _live_posts(request) if p.user_id == user_id]
    posts.sort(key=lambda p: p.posted_at, reverse=True)
    return _page(request, posts, user_id, 8)


async def profile_by_username(request: web.Request) -> web.Response:
    """GET /backend/project_y/profile/username/{username}: a profile or 404."""
    authenticate(request)
    state = state_of(request)
    render = renderer(request)
    wanted = request.match_info["username"].lower()
    for profile in state.profiles.values():
        if profile.username.lower() == wanted:
            return json_response(render.profile(profile))
    for account in state.accounts.values():
        if (account.username or "").lower() == wanted:
            return json_response(render.account_profile(account))
    for character in state.characters.values():
        if character.username.lower() == wanted and not character.deleted:
            return json_response(render.character_profile(character))
    raise not_found("Profile not found")


async def search_mentions(request: web.Request) -> web.Response:
    """GET /backend/project_y/profile/search_mentions?username=U&intent=users|cameo&limit=N."""
    account = authenticate(request)
    state = state_of(request)
    render = renderer(request)
    query = request.query.get("username", "").lower()
    intent = request.query.get("intent") or "users"
    if intent not in ("users", "cameo"):
        raise invalid(param="intent")
    limit = query_int(request, "limit", 10, 1, 50)
    items: list[dict[str, object]] = []
    for profile in state.profiles.values():
        if query not in profile.username.lower() and query not in profile.display_name.lower():
            continue
        if intent == "cameo" and not profile.can_cameo:
            continue
        token = f"<@{profile.character_id}>" if intent == "cameo" else f"<@{profile.user_id}>"
        items.append({"profile": render.profile(profile), "token": token})
    for character in state.characters.values():
        if character.deleted or query not in character.username.lower():
            continue
        cameo = state.cameos.get(character.cameo_id)
        public = cameo is not None and cameo.visibility == "public"
        if character.email == account.email or public:
            token = f"<@{character.character_id}>"
            items.append({"profile": render.character_profile(character), "token": token})
    if intent == "users":
        for other in state.accounts.values():
            if other.username and query in other.username.lower():
                token = f"<@{other.user_id}>"
                items.append({"profile": render.account_profile(other), "token": token})
    return json_response({"items": items[:limit]})


# -- characters --------------------------------------------------------------------------------


async def character_upload(request: web.Request) -> web.Response:
    """POST /backend/characters/upload: parts `file` (video) and `timestamps` ("a,b")."""
    account = authenticate(request)
    require_sora2(account)
    state = state_of(request)
    body = incoming(request)
    part = checked_file(state, body.part("file"), kind="video")
    if state.settings.sniff_uploads and sniff_video(part.data) is None:
        raise invalid("Unsupported video type", param="file")
    stamps = body.part("timestamps")
    text = (stamps.text() if stamps else None) or ""
    try:
        start, end = (float(x) for x in text.split(","))
    except ValueError as exc:
        raise invalid('timestamps must be "start,end"', param="timestamps") from exc
    if not 0 <= start < end:
        raise invalid('timestamps must be "start,end"', param="timestamps")
    cameo = backend_of(request).create_cameo(account, text)
    return json_response({"id": cameo.id})


async def character_from_generation(request: web.Request) -> web.Response:
    """POST /backend/characters/from-generation (later clients): a cameo from a draft."""
    account = authenticate(request)
    require_sora2(account)
    state = state_of(request)
    generation_id = json_object(request).get("generation_id")
    draft = state.drafts.get(generation_id) if isinstance(generation_id, str) else None
    if draft is None or draft.email != account.email or draft.violation is not None:
        raise invalid(param="generation_id")
    cameo = backend_of(request).create_cameo(account, "0,3")
    return json_response({"id": cameo.id, "cameo_id": cameo.id})


async def cameo_in_progress(request: web.Request) -> web.Response:
    """GET /backend/project_y/cameos/in_progress/{cameo_id}."""
    account = authenticate(request)
    backend = backend_of(request)
    cameo = backend.cameo(account, request.match_info["cameo_id"])
    status, message, progress = backend.cameo_status(cameo)
    return json_response(renderer(request).cameo_progress(cameo, status, message, progress))


async def file_upload(request: web.Request) -> web.Response:
    """POST /backend/project_y/file/upload: parts `file` and `use_case` -> asset_pointer."""
    account = authenticate(request)
    state = state_of(request)
    body = incoming(request)
    checked_file(state, body.part("file"), kind="image")
    use_case = body.part("use_case")
    if use_case is None or not (use_case.text() or "").strip():
        raise invalid("use_case is required", param="use_case")
    pointer = state.ids.asset_pointer()
    state.asset_pointers[pointer] = account.email
    return json_response({"asset_pointer": pointer, "use_case": use_case.text()})


def _text(value: object, fallback: str) -> str:
    return value if isinstance(value, str) and value.strip() else fallback


async def character_finalize(request: web.Request) -> web.Response:
    """POST /backend/characters/finalize -> `{"character": {"character_id", …}}`."""
    account = authenticate(request)
    backend = backend_of(request)
    body = json_object(request)
    cameo_id, username = body.get("cameo_id"), body.get("username")
    if not isinstance(cameo_id, str) or not isinstance(username, str):
        raise invalid()
    pointer = body.get("profile_asset_pointer")
    if pointer is not None and not isinstance(pointer, str):
        raise invalid(param="profile_asset_pointer")
    cameo = backend.cameo(account, cameo_id)
    display_name = _text(body.get("display_name"), cameo.display_name_hint)
    character = backend.finalize(account, cameo_id, username, display_name, pointer)
    cameo.instruction_set = body.get("instruction_set")
    cameo.safety_instruction_set = body.get("safety_instruction_set")
    return json_response({"character": renderer(request).character(character, cameo)})


async def cameo_update(request: web.Request) -> web.Response:
    """POST /backend/project_y/cameos/by_id/{cameo_id}/update_v2: echoes the new state."""
    account = authenticate(request)
    state = state_of(request)
    cameo = backend_of(request).cameo(account, request.match_info["cameo_id"])
    body = json_object(request)
    visibility = body.get("visibility", cameo.visibility)
    if visibility not in ("public", "private"):
        raise invalid(param="visibility")
    cameo.visibility = visibility
    if "instruction_set" in body:
        cameo.instruction_set = body["instruction_set"]
    if "safety_instruction_set" in body:
        cameo.safety_instruction_set = body["safety_instruction_set"]
    character = state.characters.get(cameo.character_id or "")
    status = backend_of(request).cameo_status(cameo)[0]
    echoed: dict[str, object] = {
        "id": cameo.id,
        "status": status,
        "visibility": cameo.visibility,
        "instruction_set": cameo.instruction_set,
        "safety_instruction_set": cameo.safety_instruction_set,
    }
    if character is not None:
        echoed["character"] = renderer(request).character(character, cameo)
    return json_response(echoed)


async def character_delete(request: web.Request) -> web.Response:
    """DELETE /backend/project_y/characters/{character_id}: 204, then 404."""
    account = authenticate(request)
    backend_of(request).delete_character(account, request.match_info["character_id"])
    return web.Response(status=204)


async def enhance_prompt(request: web.Request) -> web.Response:
    """POST /backend/editor/enhance_prompt (later clients)."""
    authenticate(request)
    body = json_object(request)
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise SimError(400, "Unable to process request", code="invalid_request", param="prompt")
    level = body.get("expansion_level", "medium")
    extra = {
        "short": "",
        "medium": ", cinematic lighting",
        "long": ", cinematic lighting, 35mm film",
    }
    return json_response({"enhanced_prompt": prompt.strip() + extra.get(str(level), "")})
