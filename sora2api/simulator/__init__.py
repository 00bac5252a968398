"""A faithful simulator of the Sora web backend and the hosts around it, for tests and demos.

One aiohttp app serves every host under a path prefix: `/backend/...` (Sora),
`/api/auth/session` (ST->AT), `/oauth/token` (RT->AT, rotating RTs), `/get-sora-link` (custom
watermark-free parser), `/thirdparty/MP4/{post_id}.mp4`, `/media/...` (signed files) and the
`/_sim/...` control API.

    app = create_simulator(time_scale=0.01)
    state = app[SIM_STATE]
    account = state.add_account()                   # .access_token .session_token .refresh_token
    state.inject("POST", "/backend/nf/create", "429", times=2, after=1)
    state.scenario("violation", target="video")     # the next video ends as a violation draft
    state.calls("POST", "/backend/nf/create")[0].json

Task timings are derived from the clock when read, so `state.advance(seconds)` finishes work
without sleeping (it moves the wall clock too: tokens and signed links can expire).
"""

from __future__ import annotations

from .app import create_simulator
from .faults import FAULT_KINDS
from .keys import SIM_STATE
from .media import mp4_bytes, png
from .records import Account, JournalEntry, Scenario, Settings
from .state import SimState

__all__ = [
    "FAULT_KINDS",
    "SIM_STATE",
    "Account",
    "JournalEntry",
    "Scenario",
    "Settings",
    "SimState",
    "create_simulator",
    "mp4_bytes",
    "png",
]
