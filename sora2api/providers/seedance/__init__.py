"""Seedance on Volcengine Ark / BytePlus ModelArk (see provider.py; the table is models.py)."""

from __future__ import annotations

from .provider import SeedanceProvider

# The instance the provider registry serves (the lead wires it into the registry).
PROVIDER = SeedanceProvider()

__all__ = ["PROVIDER", "SeedanceProvider"]
