"""The Sora backend's behaviour: tasks, drafts, quota, uploads, cameos, characters, posts."""

from __future__ import annotations

import math
from typing import TypeVar

from .errors import SimError, invalid, not_found
from .faults import concurrency_message
from .payloads import ImageRequest, VideoRequest
from .records import Account, Cameo, Character, Draft, MediaSpec, Post, Scenario, Task
from .state import SimState
from .tasks import Phase, phase

MAX_RECENT_TASKS = 20  # the most one /v2/recent_tasks page holds
_Item = TypeVar("_Item", Task, Draft)
MAX_POST_TEXT = 2000
_FRAME_SIZES = {
    ("portrait", "small"): (720, 1280),
    ("landscape", "small"): (1280, 720),
    ("square", "small"): (720, 720),
    ("portrait", "large"): (1024, 1792),
    ("landscape", "large"): (1792, 1024),
    ("square", "large"): (1024, 1024),
}
VIOLATION_TEXT = (
    "This content may violate our guardrails concerning similarity to third-party content."
)
IMAGE_VIOLATION_TEXT = "Your request was flagged as potentially violating our content policies."
FAIL_TEXT = "Generation failed"
CAMEO_FAIL_TEXT = "We couldn't create a cameo from this video. Please try another one."
_HINTS = (("Kitty", "likes fish"), ("Rex", "a friendly dinosaur"), ("Nova", "speaks softly"))


class Backend:
    """Operations on SimState's data; handlers call these and render the result."""

    __slots__ = ("_s",)

    def __init__(self, state: SimState) -> None:
        self._s = state

    # -- tasks -------------------------------------------------------------------------------

    def _new_task(
        self, account: Account, kind: str, prompt: str, seconds: float, scenario: Scenario
    ) -> Task:
        settings = self._s.settings
        duration = settings.scaled(scenario.seconds if scenario.seconds is not None else seconds)
        queued = settings.scaled(settings.video_queue_seconds) if kind == "video" else 0.0
        plateau = (
            scenario.plateau if math.isinf(scenario.plateau) else settings.scaled(scenario.plateau)
        )
        return Task(
            id=self._s.ids.task(),
            kind=kind,
            email=account.email,
            prompt=prompt,
            payload={},
            created=self._s.now(),
            queued=queued,
            duration=duration,
            scenario=scenario,
            plateau=plateau,
            width=0,
            height=0,
            n_frames=0,
        )

    def _check_media_ids(self, media_ids: tuple[str, ...]) -> None:
        for media_id in media_ids:
            if media_id not in self._s.uploads:
                raise invalid(param="inpaint_items")

    def create_image(self, account: Account, req: ImageRequest) -> Task:
        """Start an image task (POST /video_gen)."""
        self._check_media_ids(req.media_ids)
        scenario = self._s.take_scenario(account.email, "image")
        task = self._new_task(
            account, "image", req.prompt, self._s.settings.image_seconds, scenario
        )
        task.width, task.height, task.n_frames, task.n_variants = (
            req.width,
            req.height,
            1,
            req.n_variants,
        )
        task.generation_ids = [self._s.ids.generation() for _ in range(req.n_variants)]
        for gen_id in task.generation_ids:
            self._s.media[gen_id] = MediaSpec(kind="png", width=req.width, height=req.height)
        self._s.tasks[task.id] = task
        return task

    def create_video(self, account: Account, req: VideoRequest, *, storyboard: bool) -> Task:
        """Start a video task (POST /nf/create or /nf/create/storyboard)."""
        self._check_media_ids(req.media_ids)
        self.settle(account)
        running = self.running_videos(account)
        if running >= account.max_concurrent_videos:
            raise SimError(
                429,
                concurrency_message(account.max_concurrent_videos),
                code="too_many_concurrent_tasks",
                type_="rate_limit_error",
            )
        self._s.refresh_quota(account)
        if account.quota - running <= 0:
            raise SimError(
                429,
                "You have reached your video generation limit. Please try again later.",
                code="rate_limit_exceeded",  # assumption: the real code is unrecorded
                type_="rate_limit_error",
            )
        scenario = self._s.take_scenario(account.email, "video")
        task = self._new_task(
            account, "video", req.prompt, self._s.settings.video_seconds, scenario
        )
        task.width, task.height = _FRAME_SIZES[(req.orientation, req.size)]
        task.n_frames = req.n_frames
        task.title = req.title
        task.storyboard = storyboard
        self._s.tasks[task.id] = task
        return task

    def _tasks_of(self, account: Account, kind: str) -> list[Task]:
        """Newest first."""
        found = [t for t in self._s.tasks.values() if t.email == account.email and t.kind == kind]
        return found[::-1]

    def running_videos(self, account: Account) -> int:
        """Video tasks holding a concurrency slot."""
        return sum(1 for t in self._tasks_of(account, "video") if not t.settled)

    def settle(self, account: Account) -> None:
        """Apply the effects of every task that finished since the last look."""
        now = self._s.now()
        for task in self._tasks_of(account, "video")[::-1]:
            if task.settled or now < task.ends_at:
                continue
            task.settled = True
            outcome = task.scenario.outcome
            if outcome in ("success", "violation"):
                self._add_draft(account, task)
            if outcome == "success":
                self._s.refresh_quota(account)
                account.quota = max(0, account.quota - 1)

    def _add_draft(self, account: Account, task: Task) -> None:
        gen_id = self._s.ids.generation()
        task.generation_ids = [gen_id]
        violation = None
        if task.scenario.outcome == "violation":
            violation = task.scenario.message or VIOLATION_TEXT
        else:
            settings = self._s.settings
            size = task.scenario.video_bytes or settings.video_bytes
            rate = task.scenario.rate or settings.media_rate
            self._s.media[gen_id] = MediaSpec(
                kind="mp4",
                size=size,
                rate=rate,
                duration_ms=task.n_frames * 1000 // 30,
                width=task.width,
                height=task.height,
            )
        self._s.drafts[gen_id] = Draft(
            id=gen_id,
            task_id=task.id,
            email=account.email,
            created_wall=self._s.wall(),
            prompt=task.prompt,
            title=task.title,
            width=task.width,
            height=task.height,
            n_frames=task.n_frames,
            violation=violation,
            lag_polls=task.scenario.draft_lag,
            null_url_polls=task.scenario.draft_null_urls_polls,
        )

    def pending(self, account: Account) -> list[tuple[Task, Phase]]:
        """The account's video tasks as nf/pending lists them (one poll)."""
        self.settle(account)
        now = self._s.now()
        shown: list[tuple[Task, Phase]] = []
        for task in self._tasks_of(account, "video"):
            if not task.settled:
                shown.append((task, phase(task, now)))
            elif task.scenario.outcome == "fail":
                # A failed task lingers in pending for a few polls, then it is gone for good.
                if task.failed_polls_seen < self._s.settings.failed_pending_polls:
                    task.failed_polls_seen += 1
                    shown.append((task, phase(task, now)))
        return shown

    def recent_images(
        self, account: Account, limit: int, after: str | None = None
    ) -> tuple[list[tuple[Task, Phase]], bool]:
        """One page of /v2/recent_tasks, newest first, from just past task `after`; and "more"."""
        now = self._s.now()
        shown: list[tuple[Task, Phase]] = []
        for task in _past(self._tasks_of(account, "image"), after, "task"):
            current = phase(task, now)
            if task.scenario.outcome == "vanish" and current.status == "done":
                continue
            if len(shown) == limit:
                return shown, True
            shown.append((task, current))
        return shown, False

    def drafts(
        self, account: Account, limit: int, after: str | None = None
    ) -> tuple[list[tuple[Draft, bool]], bool]:
        """One page of visible drafts, newest first, each with "urls still null"; and "more".

        Only a first page (no cursor) counts as a poll for draft lag and null urls, so paging
        deeper does not make a lagging draft appear sooner.
        """
        self.settle(account)
        mine = [d for d in list(self._s.drafts.values())[::-1] if d.email == account.email]
        shown: list[tuple[Draft, bool]] = []
        for draft in _past(mine, after, "draft"):
            if after is None and draft.lag_polls > 0:
                draft.lag_polls -= 1
                continue
            if draft.lag_polls > 0:
                continue
            if len(shown) == limit:
                return shown, True
            null_urls = draft.null_url_polls > 0
            if null_urls and after is None:
                draft.null_url_polls -= 1
            shown.append((draft, null_urls))
        return shown, False

    def quota(self, account: Account) -> tuple[int, bool, int]:
        """(estimated videos remaining, rate limit reached, seconds until the quota resets)."""
        self.settle(account)
        self._s.refresh_quota(account)
        resets_in = max(0, math.ceil(account.quota_resets_at - self._s.now()))
        return account.quota, account.quota <= 0, resets_in

    # -- cameos and characters ---------------------------------------------------------------

    def create_cameo(self, account: Account, timestamps: str) -> Cameo:
        """Start processing a cameo video (POST /characters/upload)."""
        scenario = self._s.take_scenario(account.email, "cameo")
        name, hint = self._s.rng.choice(_HINTS)
        seconds = (
            scenario.seconds if scenario.seconds is not None else self._s.settings.cameo_seconds
        )
        cameo = Cameo(
            id=self._s.ids.cameo(),
            email=account.email,
            created=self._s.now(),
            duration=self._s.settings.scaled(seconds),
            outcome="fail" if scenario.outcome in ("fail", "violation", "vanish") else "success",
            message=scenario.message,
            display_name_hint=name,
            username_hint=f"owner.{name.lower()}",
            instruction_set_hint=hint,
            timestamps=timestamps,
        )
        self._s.cameos[cameo.id] = cameo
        self._s.media[cameo.id] = MediaSpec(kind="png")
        return cameo

    def cameo(self, account: Account, cameo_id: str) -> Cameo:
        """One of the account's cameos, or 404."""
        cameo = self._s.cameos.get(cameo_id)
        if cameo is None or cameo.email != account.email:
            raise not_found("Cameo not found")
        return cameo

    def cameo_status(self, cameo: Cameo) -> tuple[str, str, float]:
        """(status, status_message, progress) of a cameo now."""
        elapsed = self._s.now() - cameo.created
        if elapsed < cameo.duration:
            return "processing", "Processing", round(elapsed / cameo.duration, 4)
        if cameo.outcome == "fail":
            return "failed", cameo.message or CAMEO_FAIL_TEXT, 1.0
        return "finalized", "Completed", 1.0

    def finalize(
        self,
        account: Account,
        cameo_id: str,
        username: str,
        display_name: str,
        asset_pointer: str | None,
    ) -> Character:
        """Turn a processed cameo into a character (POST /characters/finalize)."""
        cameo = self.cameo(account, cameo_id)
        if self.cameo_status(cameo)[0] != "finalized" or cameo.character_id is not None:
            raise invalid("Cameo is not ready to be finalized")
        if asset_pointer is not None and asset_pointer not in self._s.asset_pointers:
            raise invalid(param="profile_asset_pointer")
        if self._s.username_taken(username):
            raise SimError(
                400, "Username is not available", code="username_taken", param="username"
            )
        character = Character(
            character_id=self._s.ids.character(),
            cameo_id=cameo.id,
            email=account.email,
            username=username,
            display_name=display_name,
            profile_asset_pointer=asset_pointer,
        )
        cameo.character_id = character.character_id
        self._s.characters[character.character_id] = character
        return character

    def delete_character(self, account: Account, character_id: str) -> None:
        """DELETE /project_y/characters/{id}: 404 when unknown or already deleted."""
        character = self._s.characters.get(character_id)
        if character is None or character.deleted or character.email != account.email:
            raise not_found("Character not found")
        character.deleted = True

    # -- posts -------------------------------------------------------------------------------

    def publish(self, account: Account, generation_id: str, text: str) -> Post:
        """POST /project_y/post for one of the account's finished drafts."""
        if len(text) > MAX_POST_TEXT:
            raise invalid(param="post_text")
        draft = self._s.drafts.get(generation_id)
        if draft is None or draft.email != account.email or draft.violation is not None:
            raise invalid(param="attachments_to_create")
        post = Post(
            id=self._s.ids.post(),
            user_id=account.user_id,
            generation_id=generation_id,
            text=text,
            posted_at=round(self._s.wall(), 3),
            width=draft.width,
            height=draft.height,
            n_frames=draft.n_frames,
            email=account.email,
        )
        self._s.posts[post.id] = post
        return post

    def live_post(self, post_id: str) -> Post:
        """A published, not deleted post, or 404."""
        post = self._s.posts.get(post_id)
        if post is None or post.deleted:
            raise not_found("Post not found")
        return post

    def delete_post(self, account: Account, post_id: str) -> None:
        """DELETE /project_y/post/{id}: 404 when unknown or already deleted."""
        post = self.live_post(post_id)
        if post.email != account.email:
            raise SimError(403, "You cannot delete this post", code="forbidden")
        post.deleted = True
        post.deleted_at = self._s.wall()


def _past(items: list[_Item], after: str | None, what: str) -> list[_Item]:
    """The items that follow the one with id `after` (all of them when None)."""
    if after is None:
        return items
    for i, item in enumerate(items):
        if item.id == after:
            return items[i + 1 :]
    raise invalid(f"Invalid cursor: unknown {what}", param="cursor")
