"""The API-key data routes: Sora search, feeds and profiles passed through one token; public stats.

Unlike the reference, an upstream failure is never turned into an empty success: the caller gets
the upstream's reason (404 for an unknown user, 502 with the failure class otherwise).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .. import keys
from ..auth import mask_email
from ..errors import ApiError, BadRequestError, NotFoundError, UpstreamError, json_response
from ..pool import TokenPool, TokenState
from ..store import Store
from ..upstream.errors import Kind, UpstreamFailure
from .common import query_int

INTENTS = ("users", "cameo")
CUTS = ("nf2_latest", "nf2_top")
# Feed pages are at most this long upstream.
_MAX_FEED = 100
_MAX_SEARCH = 50
# Reactions a read-only call may apply to its token. Unexplained errors ("error") are left out on
# purpose: browsing a flaky feed must not count toward disabling a good generation token.
_READ_REACTIONS = frozenset({"invalidate", "expire", "cooldown"})


# -- parsing -----------------------------------------------------------------------------------


def positive_int(raw: str | None, name: str) -> int | None:
    """An optional positive integer id from the query or the path; 400 naming it otherwise."""
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(
            f"{name!r} must be a positive integer, got {raw!r}", param=name
        ) from None
    if not 1 <= value < 2**63:  # SQLite's INTEGER: a larger id would be a 500, not a 404
        raise BadRequestError(f"{name!r} must be a positive integer, got {value}", param=name)
    return value


def _choice(request: web.Request, name: str, choices: tuple[str, ...]) -> str:
    value = request.query.get(name) or choices[0]
    if value not in choices:
        raise BadRequestError(
            f"Query parameter {name!r} must be one of {', '.join(choices)}, got {value!r}",
            param=name,
        )
    return value


# -- calling the upstream with one token -------------------------------------------------------


async def upstream_error(pool: TokenPool, token: TokenState, failure: UpstreamFailure) -> ApiError:
    """The client-facing error for a failed read-only call; token-level failures reach the pool."""
    if failure.token_reaction in _READ_REACTIONS:
        await pool.report_failure(token.id, failure)
    message = f"{failure.describe()} [token {token.id}, {mask_email(token.row.get('email'))}]"
    if failure.kind is Kind.NOT_FOUND:
        return NotFoundError(message)
    if failure.kind is Kind.BAD_REQUEST:
        return BadRequestError(message, code=failure.kind.value)
    return UpstreamError(message, code=failure.kind.value)


async def _fetch(
    request: web.Request,
    token_id: int | None,
    call: Callable[[str, str | None], Awaitable[Any]],
) -> dict[str, Any]:
    """Run one read-only upstream call with the chosen (or first usable) token."""
    pool = request.app[keys.POOL]
    token = pool.first_usable(token_id)
    try:
        data = await call(str(token.row["access_token"]), token.row.get("proxy") or None)
    except UpstreamFailure as failure:
        raise await upstream_error(pool, token, failure) from None
    if not isinstance(data, dict):
        raise UpstreamError(
            f"Unreadable response from Sora: expected an object, got {str(data)[:120]!r}"
        )
    return data


def _items(data: dict[str, Any]) -> list[dict[str, Any]]:
    items = data.get("items")
    if not isinstance(items, list):
        raise UpstreamError(f"Unreadable response from Sora: no items list in {str(data)[:120]!r}")
    return [i for i in items if isinstance(i, dict)]


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# -- shaping (the reference's simplified objects) ----------------------------------------------


def search_result(item: dict[str, Any]) -> dict[str, Any]:
    profile = _obj(item.get("profile"))
    owner = profile.get("owner_profile")
    return {
        "user_id": profile.get("user_id"),
        "username": profile.get("username"),
        "display_name": profile.get("display_name"),
        "profile_picture_url": profile.get("profile_picture_url"),
        "permalink": profile.get("permalink"),
        "can_cameo": bool(profile.get("can_cameo")),
        "verified": bool(profile.get("verified")),
        "follower_count": profile.get("follower_count") or 0,
        "token": item.get("token"),
        "owner": (
            {k: owner.get(k) for k in ("user_id", "username", "display_name")}
            if isinstance(owner, dict)
            else None
        ),
    }


def feed_item(item: dict[str, Any]) -> dict[str, Any]:
    post = _obj(item.get("post"))
    profile = _obj(item.get("profile"))
    attachments = post.get("attachments")
    att = _obj(attachments[0]) if isinstance(attachments, list) and attachments else {}
    n_frames = att.get("n_frames")
    thumbnail = _obj(_obj(att.get("encodings")).get("thumbnail")).get("path")
    return {
        "id": post.get("id"),
        "text": post.get("text"),
        "permalink": post.get("permalink"),
        "preview_image_url": post.get("preview_image_url"),
        "posted_at": post.get("posted_at"),
        "like_count": post.get("like_count") or 0,
        "view_count": post.get("view_count") or 0,
        "remix_count": post.get("remix_count") or 0,
        "attachment": {
            "kind": att.get("kind"),
            "url": att.get("url"),
            "downloadable_url": att.get("downloadable_url"),
            "width": att.get("width"),
            "height": att.get("height"),
            "n_frames": n_frames,
            # The backend counts frames at 30 per second.
            "duration_seconds": round(n_frames / 30, 2)
            if isinstance(n_frames, int | float)
            else None,
            "thumbnail_url": thumbnail,
        },
        "author": {
            "user_id": profile.get("user_id"),
            "username": profile.get("username"),
            "display_name": profile.get("display_name"),
            "profile_picture_url": profile.get("profile_picture_url"),
            "permalink": profile.get("permalink"),
            "verified": bool(profile.get("verified")),
            "follower_count": profile.get("follower_count") or 0,
        },
    }


# -- stats -------------------------------------------------------------------------------------


def start_of_today(now: float) -> float:
    """Local midnight: "today" in the counters means the server's calendar day."""
    t = time.localtime(now)
    return time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))


def token_counts(pool: TokenPool) -> dict[str, Any]:
    now = time.time()
    tokens = pool.tokens()
    by_status = Counter(str(t.row["status"]) for t in tokens)
    return {
        "total": len(tokens),
        "by_status": dict(by_status),
        "cooling_down": sum(1 for t in tokens if t.ineligible("image", now) == "cooling down"),
        "available": {
            k: sum(1 for t in tokens if t.ineligible(k, now) is None) for k in ("image", "video")
        },
    }


async def collect_stats(store: Store, pool: TokenPool) -> dict[str, Any]:
    """Working counters: tokens by status; images, videos, characters and errors, total and today."""
    today = start_of_today(time.time())
    # Totals from job_counts (kept by triggers: a few rows, however many jobs there are), today's
    # counts from the jobs(created_at, status, kind) index: neither reads the whole table.
    rows = await store.fetchall("SELECT status, kind, n FROM job_counts WHERE n > 0")
    recent = await store.fetchall(
        # Named: without statistics the planner would walk jobs(status, ...) for the GROUP BY.
        "SELECT status, kind, COUNT(*) AS n FROM jobs INDEXED BY jobs_created"
        " WHERE created_at >= ? GROUP BY status, kind",
        (today,),
    )
    today_n = {(r["status"], r["kind"]): r["n"] for r in recent}
    for r in rows:
        r["today"] = today_n.get((r["status"], r["kind"]), 0)
    done = {"image": "images", "video": "videos", "character": "characters"}
    out: dict[str, Any] = {name: {"total": 0, "today": 0} for name in (*done.values(), "errors")}
    jobs = {"running": 0, "queued": 0, "cancelled": 0}
    for r in rows:
        name = None
        if r["status"] == "completed":
            name = done.get(r["kind"])
        elif r["status"] == "failed":
            name = "errors"
        elif r["status"] == "in_progress":
            jobs["running"] += r["n"]
        elif r["status"] in ("queued", "cancelled"):
            jobs[r["status"]] += r["n"]
        if name:
            out[name]["total"] += r["n"]
            out[name]["today"] += r["today"]
    out["tokens"] = token_counts(pool)
    out["jobs"] = jobs
    return out


# -- handlers ----------------------------------------------------------------------------------


async def search_characters(request: web.Request) -> web.Response:
    """GET /api/characters/search?username=&intent=users|cameo&limit=10&token_id="""
    username = request.query.get("username", "")
    intent = _choice(request, "intent", INTENTS)
    limit = query_int(request, "limit", 10, 1, _MAX_SEARCH)
    token_id = positive_int(request.query.get("token_id"), "token_id")
    client = request.app[keys.CLIENT]
    data = await _fetch(
        request,
        token_id,
        lambda at, proxy: client.search_mentions(at, username, intent, limit, proxy),
    )
    results = [search_result(i) for i in _items(data)]
    return json_response(
        {"success": True, "query": username, "count": len(results), "results": results}
    )


async def public_feed(request: web.Request) -> web.Response:
    """GET /api/feed?limit=8&cut=nf2_latest|nf2_top&cursor=&token_id="""
    limit = query_int(request, "limit", 8, 1, _MAX_FEED)
    cut = _choice(request, "cut", CUTS)
    cursor = request.query.get("cursor") or None
    token_id = positive_int(request.query.get("token_id"), "token_id")
    client = request.app[keys.CLIENT]
    data = await _fetch(
        request, token_id, lambda at, proxy: client.feed(at, limit, cut, cursor, proxy)
    )
    items = [feed_item(i) for i in _items(data)]
    return json_response(
        {
            "success": True,
            "cut": cut,
            "count": len(items),
            "cursor": data.get("cursor"),
            "items": items,
        }
    )


async def token_profile_feed(request: web.Request) -> web.Response:
    """GET /api/tokens/{id}/profile-feed?limit=12&cursor= : that account's own posts."""
    token_id = positive_int(request.match_info["id"], "id")
    limit = query_int(request, "limit", 12, 1, _MAX_FEED)
    cursor = request.query.get("cursor") or None
    client = request.app[keys.CLIENT]
    data = await _fetch(
        request, token_id, lambda at, proxy: client.profile_feed(at, "me", limit, cursor, proxy)
    )
    return json_response({"success": True, "token_id": token_id, "feed": data})


async def profile(request: web.Request) -> web.Response:
    """GET /api/profile/{username}?token_id="""
    username = request.match_info["username"]
    token_id = positive_int(request.query.get("token_id"), "token_id")
    client = request.app[keys.CLIENT]
    data = await _fetch(request, token_id, lambda at, proxy: client.profile(at, username, proxy))
    return json_response({"success": True, "profile": data})


async def user_feed(request: web.Request) -> web.Response:
    """GET /api/user/{user_id}/feed?limit=8&cursor=&token_id="""
    user_id = request.match_info["user_id"]
    limit = query_int(request, "limit", 8, 1, _MAX_FEED)
    cursor = request.query.get("cursor") or None
    token_id = positive_int(request.query.get("token_id"), "token_id")
    client = request.app[keys.CLIENT]
    data = await _fetch(
        request, token_id, lambda at, proxy: client.profile_feed(at, user_id, limit, cursor, proxy)
    )
    return json_response({"success": True, "user_id": user_id, "feed": data})


async def public_stats(request: web.Request) -> web.Response:
    """GET /api/public/stats: counters only, nothing secret."""
    stats = await collect_stats(request.app[keys.STORE], request.app[keys.POOL])
    return json_response({"success": True, **stats})


def invite_candidates(pool: TokenPool) -> list[TokenState]:
    """Active Sora-2 tokens whose stored invite code still has uses left."""
    now = time.time()
    return [
        t
        for t in pool.tokens()
        if t.row["status"] == "active"
        and t.ineligible("image", now) in (None, "image disabled", "cooling down")
        and t.row.get("sora2_supported")
        and t.row.get("sora2_invite_code")
        and int(t.row.get("sora2_total") or 0) > int(t.row.get("sora2_redeemed") or 0)
    ]


async def invite_code(request: web.Request) -> web.Response:
    """GET /api/public/invite-code: one Sora-2 invite code with uses left, from any active token."""
    candidates = invite_candidates(request.app[keys.POOL])
    if not candidates:
        return json_response(
            {"success": False, "message": "No active Sora-2 token has invite codes left"}
        )
    row = random.choice(candidates).row  # spread the invites over the accounts
    total = int(row.get("sora2_total") or 0)
    return json_response(
        {
            "success": True,
            "invite_code": row["sora2_invite_code"],
            "remaining_count": total - int(row.get("sora2_redeemed") or 0),
            "total_count": total,
            "email": mask_email(row.get("email")),
        }
    )
