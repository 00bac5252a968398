"""AppKey and RequestKey constants of the simulator (kept apart to avoid import cycles)."""

from __future__ import annotations

from aiohttp import web

from .incoming import Incoming
from .records import Fault
from .state import SimState

SIM_STATE: web.AppKey[SimState] = web.AppKey("sora2api.simulator.state", SimState)
INCOMING: web.RequestKey[Incoming] = web.RequestKey("sora2api.simulator.incoming", Incoming)
# A media-only fault (disconnect, length_mismatch) the middleware leaves to the media handler.
MEDIA_FAULT: web.RequestKey[Fault] = web.RequestKey("sora2api.simulator.media_fault", Fault)
