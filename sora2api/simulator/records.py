"""The simulator's records. Most are mutable on purpose: they are the live state tests poke at."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Usernames that username/check reports as taken, so clients' suffix retries get exercised.
DEFAULT_TAKEN_USERNAMES = frozenset({"admin", "sora", "openai", "kitty", "character", "owner"})


@dataclass(slots=True)
class Settings:
    """Knobs; mutable so a test can change one mid-run. Durations in seconds before time_scale."""

    time_scale: float = 1.0
    strict_sentinel: bool = True
    image_seconds: float = 30.0
    video_seconds: float = 240.0
    video_queue_seconds: float = 15.0
    cameo_seconds: float = 60.0
    quota_reset_seconds: float = 86400.0
    # A failed video stays in nf/pending (status "failed") for this many polls, then vanishes.
    failed_pending_polls: int = 3
    bootstrap_activates: bool = True
    custom_parser_token: str = "sim-parser-token"
    # What /api/auth/session answers for an unknown or expired session token:
    # "401_json" | "401_text" | "empty_200" | "no_access_token" (200 `{}`, like next-auth itself).
    session_failure: str = "401_json"
    # Signed media links expire this many wall-clock seconds after issue (not scaled); None = never.
    media_ttl: float | None = 21600.0
    media_expired_status: int = 403
    media_range: bool = True
    video_bytes: int | None = None
    media_rate: float | None = None
    upload_max_bytes: int = 20 * 1024 * 1024
    sniff_uploads: bool = True
    hang_seconds: float = 600.0
    taken_usernames: set[str] = field(default_factory=lambda: set(DEFAULT_TAKEN_USERNAMES))
    invite_codes: set[str] = field(default_factory=lambda: {"SORA2SIM"})

    def scaled(self, seconds: float) -> float:
        """A duration on the simulator's clock."""
        return seconds * self.time_scale


@dataclass(frozen=True, slots=True)
class Scenario:
    """How one task (or cameo) behaves. Built by SimState.scenario()."""

    outcome: str = "success"  # success | violation | fail | vanish
    draft_lag: int = 0  # drafts polls after finishing during which the draft is still missing
    draft_null_urls_polls: int = 0  # polls during which the visible draft has null urls
    video_bytes: int | None = None
    rate: float | None = None  # media throttle, bytes per second
    plateau: float = 0.0  # seconds (before scaling) stuck at 0 %; math.inf: forever
    fail_at: float = 0.5  # progress fraction at which "fail" strikes
    message: str | None = None  # overrides the failure or violation text
    seconds: float | None = None  # overrides the duration (before scaling)
    jumpy: bool = False  # progress goes up and down instead of rising smoothly


OUTCOMES = frozenset({"success", "violation", "fail", "vanish"})
SCENARIO_TARGETS = frozenset({"image", "video", "cameo"})


@dataclass(slots=True)
class ScenarioRule:
    """A scenario waiting for the next matching task(s)."""

    scenario: Scenario
    email: str | None
    target: str | None
    times: int | None


@dataclass(slots=True)
class AccessToken:
    """A minted AT and what became of it."""

    token: str
    email: str
    jti: str
    iat: float
    exp: float
    revoked: bool = False


@dataclass(slots=True)
class Account:
    """One simulated Sora account."""

    email: str
    name: str
    username: str | None
    user_id: str
    plan: str
    plan_end: float  # unix time
    sora2: bool
    invite_code: str
    redeemed_count: int
    total_count: int
    country_blocked: str | None
    quota: int
    quota_total: int
    quota_resets_at: float  # simulator clock
    max_concurrent_videos: int
    at_ttl: float
    access_token: str  # the AT minted with the account; later mints do not replace it
    session_token: str
    refresh_token: str  # the current RT: it rotates on every refresh
    client_id: str | None = None
    session_valid: bool = True
    deactivated: bool = False
    polls: Counter[str] = field(default_factory=Counter)  # list-endpoint polls by path


@dataclass(slots=True)
class MediaSpec:
    """What a /media URL serves."""

    kind: str  # "png" | "mp4"
    size: int | None = None  # mp4 bytes; None: the default small file
    rate: float | None = None
    duration_ms: int = 10_000
    width: int = 0  # the promised frame size, for the picture's orientation; 0: landscape
    height: int = 0


@dataclass(slots=True)
class Task:
    """An image or video task; its status is derived from the clock when read."""

    id: str
    kind: str  # "image" | "video"
    email: str
    prompt: str
    payload: dict[str, Any]
    created: float
    queued: float
    duration: float
    scenario: Scenario
    plateau: float  # scaled; math.inf when the scenario plateaus forever
    width: int
    height: int
    n_frames: int
    n_variants: int = 1
    title: str | None = None
    storyboard: bool = False
    generation_ids: list[str] = field(default_factory=list)
    settled: bool = False
    failed_polls_seen: int = 0

    @property
    def ends_at(self) -> float:
        """Clock time the task leaves the running state (inf while plateaued forever)."""
        if math.isinf(self.plateau):
            return math.inf
        span = self.duration * (self.scenario.fail_at if self.scenario.outcome == "fail" else 1.0)
        return self.created + self.queued + self.plateau + span


@dataclass(slots=True)
class Draft:
    """A finished video as /project_y/profile/drafts lists it."""

    id: str  # generation id
    task_id: str
    email: str
    created_wall: float
    prompt: str
    title: str | None
    width: int
    height: int
    n_frames: int
    violation: str | None = None
    lag_polls: int = 0
    null_url_polls: int = 0


@dataclass(slots=True)
class Cameo:
    """A cameo being processed from an uploaded video."""

    id: str
    email: str
    created: float
    duration: float
    outcome: str
    message: str | None
    display_name_hint: str
    username_hint: str
    instruction_set_hint: str
    timestamps: str
    character_id: str | None = None
    visibility: str = "private"
    instruction_set: Any = None
    safety_instruction_set: Any = None


@dataclass(slots=True)
class Character:
    """A finalized character (cameo) owned by an account."""

    character_id: str
    cameo_id: str
    email: str
    username: str
    display_name: str
    profile_asset_pointer: str | None
    deleted: bool = False


@dataclass(slots=True)
class Profile:
    """A seeded public user of the feed."""

    user_id: str
    username: str
    display_name: str
    description: str
    follower_count: int
    following_count: int
    likes_received_count: int
    remix_count: int
    cameo_count: int
    can_cameo: bool
    verified: bool
    character_id: str | None = None


@dataclass(slots=True)
class Post:
    """A published post: seeded, or made by an account through POST /project_y/post."""

    id: str
    user_id: str
    generation_id: str
    text: str
    posted_at: float
    width: int
    height: int
    n_frames: int
    like_count: int = 0
    view_count: int = 0
    remix_count: int = 0
    email: str | None = None  # set for posts published by a simulated account
    deleted: bool = False
    deleted_at: float | None = None


@dataclass(slots=True)
class Fault:
    """An injected failure waiting for matching requests."""

    method: str
    path: str  # fnmatch glob over the path from the host root
    kind: str
    times: int | None
    token: str | None
    email: str | None
    after: int
    params: dict[str, Any]
    seen: int = 0
    fired: int = 0


@dataclass(slots=True)
class JournalEntry:
    """One request the simulator received; `status` is filled in once it is answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any | None
    form: dict[str, dict[str, Any]]
    account_email: str | None
    status: int
    ts: float
    fault: str | None = None
