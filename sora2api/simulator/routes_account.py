"""Account endpoints: /me, billing, invites, bootstrap, quota, usernames (contract 2.2)."""

from __future__ import annotations

from aiohttp import web

from .common import authenticate, backend_of, json_object, renderer, require_sora2, state_of
from .errors import SimError
from .faults import json_response
from .render import iso
from .state import PLAN_TITLES


async def me(request: web.Request) -> web.Response:
    """GET /backend/me."""
    account = authenticate(request, region_check=False)
    return json_response(renderer(request).me(account))


async def billing(request: web.Request) -> web.Response:
    """GET /backend/billing/subscriptions; a free account has an empty `data`."""
    account = authenticate(request, region_check=False)
    title = PLAN_TITLES.get(account.plan, account.plan)
    if title is None:
        return json_response({"data": []})
    plan = {"id": account.plan, "title": title}
    return json_response(
        {"data": [{"plan": plan, "end_ts": iso(account.plan_end), "status": "active"}]}
    )


async def invite_mine(request: web.Request) -> web.Response:
    """GET /backend/project_y/invite/mine: 401 "Unauthorized" until Sora 2 is activated."""
    account = authenticate(request)
    require_sora2(account)
    return json_response(
        {
            "invite_code": account.invite_code,
            "redeemed_count": account.redeemed_count,
            "total_count": account.total_count,
        }
    )


async def bootstrap(request: web.Request) -> web.Response:
    """GET /backend/m/bootstrap: the activation nudge (whether it activates is a setting)."""
    account = authenticate(request)
    if state_of(request).settings.bootstrap_activates:
        account.sora2 = True
    return json_response({"ok": True, "sora2_enabled": account.sora2})


async def invite_accept(request: web.Request) -> web.Response:
    """POST /backend/project_y/invite/accept with `{"invite_code"}`."""
    account = authenticate(request)
    state = state_of(request)
    code = json_object(request).get("invite_code")
    if account.sora2:
        return json_response({"success": True, "already_accepted": True})
    inviter = next(
        (a for a in state.accounts.values() if a.invite_code == code and a is not account), None
    )
    valid = isinstance(code, str) and (code in state.settings.invite_codes or inviter is not None)
    if not valid or (inviter is not None and inviter.redeemed_count >= inviter.total_count):
        raise SimError(400, "Invalid invite code", code="invalid_invite_code", param="invite_code")
    if inviter is not None:
        inviter.redeemed_count += 1
    account.sora2 = True
    return json_response({"success": True, "already_accepted": False})


async def nf_check(request: web.Request) -> web.Response:
    """GET /backend/nf/check: the video quota."""
    account = authenticate(request)
    remaining, reached, resets_in = backend_of(request).quota(account)
    return json_response(
        {
            "rate_limit_and_credit_balance": {
                "estimated_num_videos_remaining": remaining,
                "rate_limit_reached": reached,
                "access_resets_in_seconds": resets_in,
            }
        }
    )


async def username_check(request: web.Request) -> web.Response:
    """POST /backend/project_y/profile/username/check."""
    authenticate(request)
    username = json_object(request).get("username")
    taken = not isinstance(username, str) or state_of(request).username_taken(username)
    return json_response({"username": username, "available": not taken})


async def username_set(request: web.Request) -> web.Response:
    """POST /backend/project_y/profile/username/set."""
    account = authenticate(request)
    username = json_object(request).get("username")
    if not isinstance(username, str):
        raise SimError(400, "Username is required", code="invalid_request", param="username")
    if username != account.username and state_of(request).username_taken(username):
        raise SimError(400, "Username is not available", code="username_taken", param="username")
    account.username = username
    return json_response(renderer(request).account_profile(account))
