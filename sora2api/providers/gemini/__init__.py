"""Gemini Omni (`gemini`): video through the Interactions API of the Gemini API."""

from __future__ import annotations

from .provider import DEFAULT_BASE_URL, GeminiProvider

__all__ = ["DEFAULT_BASE_URL", "PROVIDER", "GeminiProvider"]

# The instance a provider registry can list (defaults: staging in the system temp folder).
PROVIDER = GeminiProvider()
