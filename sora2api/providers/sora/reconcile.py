"""Whether a create reached Sora when its answer does not say, and undoing a job's side effects.

A create answered 5xx, garbage, a timeout or a reset may still have created the task (and spent
the user's quota). Such a create is never sent again: the account's own task lists are searched
for it instead. A task with the same prompt, created after the job's create was sent and held by
no other job, is adopted; when there is none, the job fails with the reason.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from ...errors import NotFoundError
from ...jobs import JobContext, JobFailed
from ...upstream.errors import Kind, UpstreamFailure

log = logging.getLogger(__name__)

# Answers that do not prove the create was refused (anything else came before any task existed).
# Looks at the lists: a task created an instant ago may take a poll or two to be listed.
_LOOKS = 3
# Upstream and local clocks differ; a listed creation time this much before the send still counts.
_CLOCK_SLACK = 120.0
# The drafts asked for in one look: enough that a burst of finished tasks cannot hide ours.
_DRAFTS = 100


def _created_at(item: dict[str, Any]) -> float | None:
    value = item.get("created_at")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


async def _candidates(
    ctx: JobContext, token_id: int, kind: str, prompt: str, since: float
) -> list[str]:
    """Task ids in the account's lists whose prompt is ours and that are not older than the send."""
    tok = ctx.pool.state(token_id)
    at, proxy = str(tok.row["access_token"]), tok.row.get("proxy") or None
    if kind == "image":
        listed = [(str(x.get("id") or ""), x) for x in await ctx.client.recent_tasks(at, proxy)]
        return await _unowned(ctx, _matching(listed, prompt, since))
    running = [(str(x.get("id") or ""), x) for x in await ctx.client.pending(at, proxy)]
    found = await _unowned(ctx, _matching(running, prompt, since))
    if found:
        return found
    # Not running (any more): a task that already finished is among the drafts.
    drafts = await ctx.client.drafts(at, proxy, limit=_DRAFTS)
    listed = [(str(d.get("task_id") or ""), d) for d in drafts]
    return await _unowned(ctx, _matching(listed, prompt, since))


def _matching(listed: list[tuple[str, dict[str, Any]]], prompt: str, since: float) -> list[str]:
    found: list[str] = []
    for task_id, item in listed:
        created = _created_at(item)
        if not task_id or str(item.get("prompt") or "").strip() != prompt.strip():
            continue
        if created is not None and created < since - _CLOCK_SLACK:
            continue
        if task_id not in found:
            found.append(task_id)
    return found


async def _unowned(ctx: JobContext, found: list[str]) -> list[str]:
    owned = await ctx.engine.owned_task_ids(found)
    return [t for t in found if t not in owned]


async def find_task(
    ctx: JobContext, token_id: int, kind: str, prompt: str, since: float, why: str, code: str
) -> str:
    """The task an uncertain create made, or JobFailed(code) naming `why` when the lists lack
    it. The caller holds the engine's create lock for (token, prompt) and records the id under it."""
    last_error: UpstreamFailure | None = None
    interval = max(ctx.settings.current.upstream.poll_interval, 0.05)
    await ctx.emit(
        "generation",
        "processing",
        f"The create call's outcome is unknown ({why}); looking for the task upstream "
        "instead of sending it again",
    )
    for look in range(_LOOKS):
        if look:
            await asyncio.sleep(interval * look)
        try:
            found = await _candidates(ctx, token_id, kind, prompt, since)
        except UpstreamFailure as exc:
            last_error = exc
            continue
        except NotFoundError:
            raise JobFailed(
                code,
                f"The create call's outcome is unknown ({why}) and its token was deleted, so "
                "the account's task lists cannot be read. It was not sent again.",
            ) from None
        last_error = None
        if found:
            await ctx.emit(
                "generation",
                "processing",
                "Found the task upstream; following it",
                details={"task_id": found[0], "reconciled": True},
            )
            return found[0]
    if last_error is not None:
        raise JobFailed(
            code,
            f"The create call's outcome is unknown ({why}) and the account's task lists could "
            f"not be read ({last_error.describe()}). It was not sent again (that could spend "
            "quota twice); check the account before resubmitting.",
        )
    raise JobFailed(
        code,
        f"The create call's outcome was unknown ({why}) and no matching task appears in the "
        "account's task lists, so none was created. It was not sent again (that could spend "
        "quota twice); submit it again.",
    )


async def undo_side_effects(ctx: JobContext) -> None:
    """Delete what the job left upstream (temporary character, published post); forget each
    one that is gone. What cannot be deleted now stays recorded for the next start."""
    for entry in list(ctx.cleanup):
        kind, ident = str(entry.get("kind")), str(entry.get("id"))
        try:
            tok = ctx.pool.state(int(entry["token_id"]))
        except NotFoundError:
            log.warning("job %s: token of %s %s is gone; cannot delete it", ctx.job_id, kind, ident)
            await ctx.cleaned(entry)
            continue
        at, proxy = str(tok.row["access_token"]), tok.row.get("proxy") or None
        try:
            if kind == "character":
                await ctx.client.delete_character(at, ident, proxy)
            elif kind == "post":
                await ctx.client.delete_post(at, ident, proxy)
        except UpstreamFailure as exc:
            if exc.kind is not Kind.NOT_FOUND:  # already gone is done
                log.warning(
                    "job %s: could not delete %s %s: %s", ctx.job_id, kind, ident, exc.describe()
                )
                continue
        if kind == "character":
            await ctx.engine.store.characters.mark_deleted_upstream_id(ident)
            await ctx.emit("character_creation", "completed", "Temporary character cleaned up")
        elif kind == "post":
            await ctx.emit(
                "watermark_free", "processing", "Published post deleted", details={"post_id": ident}
            )
        await ctx.cleaned(entry)
