"""An OpenAI-Videos-shaped upstream (gateways exposing /v1/videos) behind the provider interface."""

from __future__ import annotations

from .provider import OpenAIProvider

# The instance the registry serves (providers are stateless: every call takes the account).
PROVIDER = OpenAIProvider()

__all__ = ["PROVIDER", "OpenAIProvider"]
