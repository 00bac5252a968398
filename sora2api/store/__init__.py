"""All SQL lives behind the Store class: one aiosqlite connection, WAL, versioned migrations."""

from __future__ import annotations

from .base import Row, StoreBase
from .migrations import CURRENT_VERSION


class Store(StoreBase):
    """The one database handle of the application."""


__all__ = ["CURRENT_VERSION", "Row", "Store"]
