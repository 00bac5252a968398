"""The provider interface: what the job engine, the pool and the routes may ask of a backend.

A provider is one upstream contract (Sora's web backend, an OpenAI-Videos-shaped gateway,
Seedance on Ark, Gemini Omni). Everything outside `providers/<name>/` speaks only these types;
no field name of any backend's wire format leaks past them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from aiohttp import ClientSession

from ..upstream.errors import UpstreamFailure

TaskState = Literal["queued", "running", "completed", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One public model id and what it can do, as a provider serves it."""

    id: str  # what clients send
    provider: str  # the provider package that serves it
    upstream: str  # the model name the upstream knows
    kind: str  # "video" | "image"
    seconds: tuple[int, ...] = ()  # allowed durations; () = the upstream decides
    default_seconds: int | None = None
    sizes: tuple[str, ...] = ()  # allowed "WxH" sizes; () = the upstream decides
    default_size: str | None = None
    image_input: bool = False  # accepts an image (image-to-video / first frame)
    image_roles: tuple[str, ...] = ()  # e.g. first_frame, last_frame, reference_image
    remix: bool = False
    description: str = ""
    # The seeds the upstream takes, when narrower than the front's default (-1 to 2**32 - 1).
    seed_range: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Account:
    """The credentials and address of one pooled account, as a provider needs them."""

    id: int
    provider: str
    key: str  # API key (or Sora access token)
    base_url: str  # as the vendor's official SDK takes it
    proxy: str | None = None


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """What onboarding learned from the upstream about a credential."""

    models: tuple[str, ...]  # upstream model names the account serves
    name: str = ""  # a label: account e-mail, organisation, project
    plan: str = ""
    quota: str = ""  # the upstream's own words about quota, where it says


@dataclass(frozen=True, slots=True)
class ImageInput:
    """An image the request carries (already fetched through the URL guard, size-limited)."""

    data: bytes
    content_type: str
    role: str = "first_frame"


@dataclass(frozen=True, slots=True)
class Submission:
    """Exactly what one create sends: the parsed, validated request in provider-neutral terms."""

    model: ModelSpec
    prompt: str
    seconds: int | None = None
    size: str | None = None  # "WxH"
    images: tuple[ImageInput, ...] = ()
    remix_of: str | None = None  # the upstream id of the source task (same account)
    options: Mapping[str, object] = field(default_factory=dict)  # seed, watermark, audio...


@dataclass(frozen=True, slots=True)
class Output:
    """Where a finished task's file is: a URL to fetch (with the headers it needs), or a file
    the provider already wrote into the media cache's staging area."""

    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "video/mp4"
    path: str | None = None  # inline data already streamed to disk


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """One poll's answer, read leniently."""

    state: TaskState
    progress: float | None = None  # 0..1, only when the upstream says
    stage: str = ""  # the upstream's own word for the state
    failure: UpstreamFailure | None = None  # for state "failed"
    outputs: tuple[Output, ...] = ()  # for state "completed"
    usage: Mapping[str, object] | None = None  # the upstream's own usage figure
    retry_after: float | None = None  # the upstream's hint for the next poll


class Provider(Protocol):
    """A backend behind the interface. Every call raises UpstreamFailure, classified."""

    name: str
    # Seconds between polls of one task (per-task providers); the engine bounds it per account.
    poll_interval: float

    def models(self, account_models: tuple[str, ...]) -> list[ModelSpec]:
        """The public model ids an account serving these upstream models offers."""
        ...

    async def onboard(self, http: ClientSession, account: Account) -> AccountInfo:
        """Validate the credential and read what the upstream says about it."""
        ...

    async def submit(self, http: ClientSession, account: Account, sub: Submission) -> str:
        """Send exactly one create; return the upstream's task id. Never retries a create."""
        ...

    async def status(self, http: ClientSession, account: Account, task_id: str) -> TaskStatus:
        """Poll one task."""
        ...

    async def cancel(self, http: ClientSession, account: Account, task_id: str) -> None:
        """Ask the upstream to stop (or forget) the task."""
        ...
