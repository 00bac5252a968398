"""All SQL lives behind the Store class: one aiosqlite connection, WAL, versioned migrations,
and one repository per table (store.tokens, store.sessions, ...) returning typed rows."""

from __future__ import annotations

import aiosqlite

from .api_keys import ApiKeyRow, ApiKeys
from .base import Row, StoreBase
from .characters import CharacterRow, Characters
from .jobs import JobRow, Jobs
from .migrations import CURRENT_VERSION
from .request_log import LogRow, RequestCounts, RequestLogs
from .sessions import SessionRow, Sessions
from .settings import SettingRow, SettingsTable
from .stats import JobCount, Stats
from .tokens import TokenRow, Tokens
from .usage import Amount, Usage
from .webhooks import DeliveryRow, Webhooks


class Store(StoreBase):
    """The one database handle of the application and its repositories."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        super().__init__(conn)
        self.tokens = Tokens(self)
        self.characters = Characters(self)
        self.sessions = Sessions(self)
        self.request_log = RequestLogs(self)
        self.settings = SettingsTable(self)
        self.stats = Stats(self)
        self.jobs = Jobs(self)
        self.api_keys = ApiKeys(self)
        self.usage = Usage(self)
        self.webhooks = Webhooks(self)


__all__ = [
    "CURRENT_VERSION",
    "Amount",
    "ApiKeyRow",
    "ApiKeys",
    "CharacterRow",
    "DeliveryRow",
    "Characters",
    "JobCount",
    "JobRow",
    "Jobs",
    "LogRow",
    "RequestCounts",
    "RequestLogs",
    "Row",
    "SessionRow",
    "Sessions",
    "SettingRow",
    "SettingsTable",
    "Stats",
    "Store",
    "TokenRow",
    "Tokens",
    "Usage",
    "Webhooks",
]
