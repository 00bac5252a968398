"""ProviderState: keys, tasks and knobs shared by the three live-provider simulators."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..errors import SimError
from ..media import video_shape
from ..records import MediaSpec, Scenario, Task
from ..state import SimState
from ..tasks import Phase, phase

PROVIDERS = ("openai", "seedance", "gemini")
DEFAULT_MODELS: dict[str, tuple[str, ...]] = {
    "openai": ("sora-2", "sora-2-pro", "veo-3.1-fast", "doubao-seedance-2-0-260128"),
    "seedance": (
        "doubao-seedance-2-0-260128",
        "doubao-seedance-2-0-fast-260128",
        "doubao-seedance-2-5-260628",
        "dreamina-seedance-2-0-260128",
    ),
    "gemini": ("gemini-omni-1.1-flash",),
}
_KEY_PREFIX = {"openai": "sk-sim-", "seedance": "ark-sim-", "gemini": "AIzaSim"}


@dataclass(slots=True)
class Variant:
    """How an OpenAI-Videos-shaped gateway bends the contract (new-api, resellers)."""

    status_case: str = "lower"  # lower | upper
    processing: bool = False  # "processing" instead of "in_progress"
    unknown_queued: bool = False  # "unknown" instead of "queued"
    id_field: str = "id"  # id | task_id
    wrap: bool = False  # {"code", "message", "data"} around every success body
    progress: bool = True  # False: no progress field at all
    error_style: str = "openai"  # openai | newapi | newapi_task

    def update(self, **fields: Any) -> None:
        """Set some fields, refusing unknown names and values."""
        for name, value in fields.items():
            if name not in Variant.__slots__:
                raise ValueError(f"unknown variant field {name!r}")
            setattr(self, name, value)
        if self.status_case not in ("lower", "upper"):
            raise ValueError("status_case must be lower or upper")
        if self.id_field not in ("id", "task_id"):
            raise ValueError("id_field must be id or task_id")
        if self.error_style not in ("openai", "newapi", "newapi_task"):
            raise ValueError("error_style must be openai, newapi or newapi_task")


@dataclass(slots=True)
class ProviderSettings:
    """Knobs; durations in seconds before the simulator's time_scale unless noted."""

    queue_seconds: float = 5.0
    run_seconds: float = 60.0
    # Seedance signed video_url lifetime in wall-clock seconds (not scaled), like media_ttl.
    url_ttl: float = 86400.0
    # Gemini: where the video goes when the request names no delivery ("inline" | "uri").
    gemini_delivery: str = "inline"
    # Gemini: the status of an interaction whose output the safety filter blocked (both are seen).
    gemini_block_status: str = "failed"
    # A prompt containing one of these is refused as unsafe input; an image URL or data too.
    blocked_words: list[str] = field(default_factory=lambda: ["forbidden"])


@dataclass(slots=True)
class ProviderAccount:
    """One API key of one provider."""

    provider: str
    name: str
    key: str
    models: list[str]
    variant: Variant | None = None  # openai only; None: the provider-wide default
    suspended: bool = False  # the key exists but is not allowed (403 / 401)


@dataclass(slots=True)
class ProviderTask:
    """A job at one provider; its state is derived from `core` and the clock."""

    id: str
    provider: str
    account: str
    model: str
    core: Task
    params: dict[str, Any]
    created_wall: float
    api_version: str = "v1"
    cancelled_at: float | None = None
    deleted: bool = False
    remixed_from: str | None = None
    input_blocked: str | None = None  # Gemini: the refusal reason, failing the job at once


class ProviderState:
    """What the provider simulators know; reset with POST /_sim/providers/reset."""

    def __init__(self, sim: SimState) -> None:
        self.sim = sim
        self.settings = ProviderSettings()
        self.variant = Variant()
        self.accounts: dict[str, ProviderAccount] = {}  # key -> account
        self.tasks: dict[str, ProviderTask] = {}

    def reset(self, *, keep_accounts: bool = False) -> None:
        """Forget tasks (and accounts unless kept); knobs back to their defaults."""
        self.settings = ProviderSettings()
        self.variant = Variant()
        self.tasks.clear()
        if not keep_accounts:
            self.accounts.clear()

    def add_account(
        self,
        provider: str,
        *,
        name: str | None = None,
        key: str | None = None,
        models: list[str] | None = None,
        variant: dict[str, Any] | None = None,
        suspended: bool = False,
    ) -> ProviderAccount:
        """A new key for `provider` (random unless given)."""
        if provider not in PROVIDERS:
            raise ValueError(f"unknown provider {provider!r}; known: {list(PROVIDERS)}")
        key = key or _KEY_PREFIX[provider] + self.sim.ids.opaque(32)
        if key in self.accounts:
            raise ValueError("key already exists")
        count = sum(1 for a in self.accounts.values() if a.provider == provider)
        account = ProviderAccount(
            provider=provider,
            name=name or f"{provider}{count + 1}",
            key=key,
            models=list(models) if models is not None else list(DEFAULT_MODELS[provider]),
            suspended=suspended,
        )
        if variant is not None:
            account.variant = Variant()
            account.variant.update(**variant)
        self.accounts[key] = account
        return account

    def account(self, provider: str, key: str | None) -> ProviderAccount | None:
        """The account this key belongs to, if it is one of `provider`'s."""
        account = self.accounts.get(key or "")
        return account if account is not None and account.provider == provider else None

    def variant_of(self, account: ProviderAccount | None) -> Variant:
        """The account's own variant, else the provider-wide one."""
        return account.variant if account and account.variant else self.variant

    def new_task(
        self, provider: str, account: ProviderAccount, model: str, prompt: str, **params: Any
    ) -> ProviderTask:
        """Start a task; a scripted /_sim/scenario for the account's name applies."""
        sim = self.sim
        scenario: Scenario = sim.take_scenario(account.name, "video")
        prefix = {"openai": "video_", "seedance": "cgt-", "gemini": "v1_"}[provider]
        task_id = prefix + sim.ids.opaque(24)
        seconds = scenario.seconds if scenario.seconds is not None else self.settings.run_seconds
        core = Task(
            id=task_id,
            kind="video",
            email=account.name,
            prompt=prompt,
            payload=params,
            created=sim.now(),
            queued=sim.settings.scaled(self.settings.queue_seconds),
            duration=sim.settings.scaled(seconds),
            scenario=scenario,
            plateau=math.inf
            if math.isinf(scenario.plateau)
            else sim.settings.scaled(scenario.plateau),
            width=0,
            height=0,
            n_frames=0,
        )
        task = ProviderTask(task_id, provider, account.name, model, core, params, sim.wall())
        self.tasks[task_id] = task
        sim.media[task_id] = MediaSpec(
            kind="mp4", size=scenario.video_bytes, rate=scenario.rate, **video_shape(params)
        )
        return task

    def phase(self, task: ProviderTask) -> Phase:
        """queued | running | done | failed | cancelled, with progress in [0, 1]."""
        now = self.sim.now()
        if task.cancelled_at is not None:
            return Phase("cancelled", None)
        return phase(task.core, now)

    def outcome(self, task: ProviderTask) -> str:
        """success | violation | fail: what a finished task turned out to be."""
        return task.core.scenario.outcome

    def finished_wall(self, task: ProviderTask) -> float:
        """Unix time the task finished (meaningful once done)."""
        return task.created_wall + (task.core.ends_at - task.core.created)

    def owned(self, provider: str, task_id: str, account: ProviderAccount) -> ProviderTask | None:
        """The task if it exists, is not deleted and belongs to this key's account."""
        task = self.tasks.get(task_id)
        if task is None or task.deleted or task.provider != provider:
            return None
        if task.core.scenario.outcome == "vanish" and self.phase(task).status == "done":
            return None  # the scripted "vanish": the upstream forgets the job when it ends
        return task if task.account == account.name else None

    def blocked(self, text: str) -> str | None:
        """The blocked word `text` contains, if any."""
        low = text.lower()
        return next((w for w in self.settings.blocked_words if w.lower() in low), None)


class UpstreamError(SimError):
    """An error in a provider's own envelope (the middleware renders body() with status)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, str(body))
        self._body = body

    def body(self) -> dict[str, Any]:
        """The provider-shaped envelope."""
        return self._body


PROVIDER_STATE: web.AppKey[ProviderState] = web.AppKey(
    "sora2api.simulator.providers", ProviderState
)


def providers_of(request: web.Request) -> ProviderState:
    """The provider state of the app serving this request."""
    return request.app[PROVIDER_STATE]
