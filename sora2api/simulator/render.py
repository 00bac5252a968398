"""Records -> the JSON shapes of the contract (field names are what matters most here)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .backend import FAIL_TEXT, IMAGE_VIOLATION_TEXT
from .records import Account, Cameo, Character, Draft, Post, Profile, Task
from .tasks import Phase

if TYPE_CHECKING:
    from .state import SimState

SORA_ORIGIN = "https://sora.chatgpt.com"


def iso(ts: float, *, millis: bool = False) -> str:
    """Unix time -> `2026-02-01T00:00:00Z` (or `.000Z` style, as next-auth writes it)."""
    moment = datetime.fromtimestamp(ts, UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def permalink(post_id: str) -> str:
    """The public share URL of a post."""
    return f"{SORA_ORIGIN}/p/{post_id}"


class Renderer:
    """Builds wire dicts; needs the request origin because every media URL is absolute."""

    __slots__ = ("_s", "origin")

    def __init__(self, state: SimState, origin: str) -> None:
        self._s = state
        self.origin = origin

    def media(self, key: str, filename: str) -> str:
        """A signed absolute URL of one of the simulator's files."""
        return self._s.media_url(self.origin, f"/media/{key}/{filename}")

    # -- account -----------------------------------------------------------------------------

    def me(self, account: Account) -> dict[str, Any]:
        """GET /me."""
        return {
            "id": account.user_id,
            "email": account.email,
            "name": account.name,
            "username": account.username,
            "profile_picture_url": self.media(account.user_id, "avatar.png"),
            "plan_type": account.plan,
            "created_at": iso(self._s.wall() - 86400 * 90),
        }

    def account_profile(self, account: Account) -> dict[str, Any]:
        """An account seen as a public profile."""
        posts = [p for p in self._s.posts.values() if p.email == account.email and not p.deleted]
        username = account.username or ""
        return {
            "user_id": account.user_id,
            "username": account.username,
            "display_name": account.name,
            "profile_picture_url": self.media(account.user_id, "avatar.png"),
            "permalink": f"{SORA_ORIGIN}/profile/{username}",
            "description": "",
            "follower_count": 0,
            "following_count": 0,
            "post_count": len(posts),
            "likes_received_count": 0,
            "remix_count": 0,
            "cameo_count": sum(
                1 for c in self._s.characters.values() if c.email == account.email and not c.deleted
            ),
            "can_cameo": False,
            "verified": False,
            "owner_profile": None,
        }

    def profile(self, profile: Profile) -> dict[str, Any]:
        """A seeded user's profile (section 2.8 fields)."""
        posts = sum(1 for p in self._s.posts.values() if p.user_id == profile.user_id)
        return {
            "user_id": profile.user_id,
            "username": profile.username,
            "display_name": profile.display_name,
            "profile_picture_url": self.media(profile.user_id, "avatar.png"),
            "permalink": f"{SORA_ORIGIN}/profile/{profile.username}",
            "description": profile.description,
            "follower_count": profile.follower_count,
            "following_count": profile.following_count,
            "post_count": posts,
            "likes_received_count": profile.likes_received_count,
            "remix_count": profile.remix_count,
            "cameo_count": profile.cameo_count,
            "can_cameo": profile.can_cameo,
            "verified": profile.verified,
            "owner_profile": None,
        }

    def character_profile(self, character: Character) -> dict[str, Any]:
        """A character as a cameo search result's profile."""
        owner = self._s.accounts[character.email]
        return {
            "user_id": character.character_id,
            "username": character.username,
            "display_name": character.display_name,
            "profile_picture_url": self.media(character.cameo_id, "avatar.png"),
            "permalink": f"{SORA_ORIGIN}/profile/{character.username}",
            "description": "",
            "follower_count": 0,
            "following_count": 0,
            "post_count": 0,
            "likes_received_count": 0,
            "remix_count": 0,
            "cameo_count": 0,
            "can_cameo": True,
            "verified": False,
            "owner_profile": {
                "user_id": owner.user_id,
                "username": owner.username,
                "display_name": owner.name,
            },
        }

    def author(self, user_id: str) -> dict[str, Any]:
        """The profile object of whoever owns `user_id`."""
        profile = self._s.profiles.get(user_id)
        if profile is not None:
            return self.profile(profile)
        for account in self._s.accounts.values():
            if account.user_id == user_id:
                return self.account_profile(account)
        return {"user_id": user_id, "username": None, "display_name": None}

    # -- tasks and drafts --------------------------------------------------------------------

    def image_task(self, task: Task, now_phase: Phase) -> dict[str, Any]:
        """One entry of /v2/recent_tasks."""
        status = "succeeded" if now_phase.status == "done" else now_phase.status
        body: dict[str, Any] = {
            "id": task.id,
            "type": "image_gen",
            "status": status,
            "progress_pct": now_phase.progress,
            "prompt": task.prompt,
            "n_variants": task.n_variants,
            "generations": [],
        }
        if status == "succeeded":
            body["generations"] = [
                {
                    "id": gen_id,
                    "task_id": task.id,
                    "url": self.media(gen_id, "image.png"),
                    "width": task.width,
                    "height": task.height,
                }
                for gen_id in task.generation_ids
            ]
        elif status == "failed":
            violation = task.scenario.outcome == "violation"
            default = IMAGE_VIOLATION_TEXT if violation else FAIL_TEXT
            body["error_message"] = task.scenario.message or default
            body["failure_reason"] = (
                "content_policy_violation" if violation else "generation_failed"
            )
        return body

    def pending_task(self, task: Task, now_phase: Phase) -> dict[str, Any]:
        """One element of the bare array /nf/pending returns."""
        body: dict[str, Any] = {
            "id": task.id,
            "status": now_phase.status,
            "progress_pct": now_phase.progress,
            "prompt": task.prompt,
            "title": task.title,
            "type": "storyboard" if task.storyboard else "video_gen",
            "n_frames": task.n_frames,
            "width": task.width,
            "height": task.height,
            "generations": [],
        }
        if now_phase.status == "failed":
            body["error_message"] = task.scenario.message or FAIL_TEXT
            body["failure_reason"] = "generation_failed"
        return body

    def draft(self, draft: Draft, null_urls: bool) -> dict[str, Any]:
        """One item of /project_y/profile/drafts."""
        has_files = draft.violation is None and not null_urls
        return {
            "id": draft.id,
            "generation_id": draft.id,
            "task_id": draft.task_id,
            "kind": "sora_draft" if draft.violation is None else "sora_content_violation",
            "url": self.media(draft.id, "wm.mp4") if has_files else None,
            "downloadable_url": self.media(draft.id, "dl.mp4") if has_files else None,
            "reason_str": draft.violation,
            "markdown_reason_str": f"**{draft.violation}**" if draft.violation else None,
            "prompt": draft.prompt,
            "title": draft.title,
            "width": draft.width,
            "height": draft.height,
            "n_frames": draft.n_frames,
            "created_at": round(draft.created_wall, 3),
            "encodings": self._encodings(draft.id) if has_files else None,
        }

    def _encodings(self, gen_id: str) -> dict[str, Any]:
        return {
            "source": {"path": self.media(gen_id, "source.mp4")},
            "md": {"path": self.media(gen_id, "dl.mp4")},
            "thumbnail": {"path": self.media(gen_id, "thumb.png")},
        }

    # -- posts -------------------------------------------------------------------------------

    def post(self, post: Post) -> dict[str, Any]:
        """A post object (feed, profile feed, publish and post detail)."""
        gen = post.generation_id
        return {
            "id": post.id,
            "text": post.text,
            "permalink": permalink(post.id),
            "preview_image_url": self.media(gen, "thumb.png"),
            "posted_at": post.posted_at,
            "updated_at": post.posted_at,
            "like_count": post.like_count,
            "view_count": post.view_count,
            "remix_count": post.remix_count,
            "shared_by": post.user_id,
            "attachments": [
                {
                    "id": f"{post.id}-attachment-0",
                    "generation_id": gen,
                    "kind": "sora",
                    "url": self.media(gen, "wm.mp4"),
                    "downloadable_url": self.media(gen, "dl.mp4"),
                    "width": post.width,
                    "height": post.height,
                    "n_frames": post.n_frames,
                    "encodings": self._encodings(gen),
                }
            ],
        }

    def feed_item(self, post: Post) -> dict[str, Any]:
        """`{"post", "profile"}` as feeds list them."""
        return {"post": self.post(post), "profile": self.author(post.user_id)}

    # -- cameos ------------------------------------------------------------------------------

    def cameo_progress(
        self, cameo: Cameo, status: str, message: str, progress: float
    ) -> dict[str, Any]:
        """GET /project_y/cameos/in_progress/{id}."""
        return {
            "id": cameo.id,
            "status": status,
            "status_message": message,
            "progress_pct": progress,
            "display_name_hint": cameo.display_name_hint,
            "username_hint": cameo.username_hint,
            "instruction_set_hint": cameo.instruction_set_hint,
            "profile_asset_url": self.media(cameo.id, "avatar.png")
            if status == "finalized"
            else None,
        }

    def character(self, character: Character, cameo: Cameo | None) -> dict[str, Any]:
        """A character as finalize and update_v2 return it."""
        return {
            "character_id": character.character_id,
            "cameo_id": character.cameo_id,
            "username": character.username,
            "display_name": character.display_name,
            "profile_asset_pointer": character.profile_asset_pointer,
            "profile_picture_url": self.media(character.cameo_id, "avatar.png"),
            "visibility": cameo.visibility if cameo else "private",
            "instruction_set": cameo.instruction_set if cameo else None,
            "safety_instruction_set": cameo.safety_instruction_set if cameo else None,
        }
