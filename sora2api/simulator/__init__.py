"""A faithful simulator of the Sora web backend and the hosts around it, for tests and demos."""

from __future__ import annotations

from .app import create_simulator
from .keys import SIM_STATE
from .media import mp4_bytes, png
from .records import Account, JournalEntry, Scenario, Settings
from .state import SimState

__all__ = [
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
