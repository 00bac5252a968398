"""Backends behind one interface (see base.py): one package per provider."""

from __future__ import annotations

# The providers an account may name, in the order the panel lists them. "sora" is the default:
# POST /api/tokens without a provider adds a Sora token, as the seed README says.
PROVIDER_NAMES = ("sora", "openai", "seedance", "gemini")
DEFAULT_PROVIDER = "sora"
