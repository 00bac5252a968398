"""The live providers this build serves, by name: what onboarding, tests and the engine look up."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from ..config import Config
from ..errors import BadRequestError
from . import DEFAULT_PROVIDER, PROVIDER_NAMES
from .base import Provider

# The base URL each vendor's official SDK uses when none is given (the panel prefills it).
# An OpenAI-shaped gateway has no sensible default beyond OpenAI's own.
DEFAULT_BASE_URLS: Mapping[str, str] = MappingProxyType(
    {
        "openai": "https://api.openai.com/v1",
        "seedance": "https://ark.cn-beijing.volces.com/api/v3",
        "gemini": "https://generativelanguage.googleapis.com",
    }
)


def default_base_url(config: Config, name: str) -> str:
    """The base URL an account of `name` gets when added without one: `[providers]
    <name>_base_url` where the config has it (Seedance's, helper p11-seedance), else the SDK's."""
    # getattr: the [providers] table arrives with the Seedance branch; this reads it once merged.
    configured = getattr(getattr(config, "providers", None), f"{name}_base_url", None)
    if isinstance(configured, str) and configured:
        return configured
    return DEFAULT_BASE_URLS.get(name, "")


class ProviderRegistry:
    """Providers by name; Sora's accounts go through providers/sora/, not through here."""

    def __init__(self, providers: Iterable[Provider] = ()) -> None:
        self._providers: dict[str, Provider] = {}
        for provider in providers:
            self.register(provider)

    def register(self, provider: Provider) -> None:
        """Serve `provider` under its name (a later registration replaces an earlier one)."""
        if provider.name not in PROVIDER_NAMES or provider.name == DEFAULT_PROVIDER:
            raise ValueError(f"not a live provider name: {provider.name!r}")
        self._providers[provider.name] = provider

    def names(self) -> tuple[str, ...]:
        """The registered names, in the panel's order."""
        return tuple(n for n in PROVIDER_NAMES if n in self._providers)

    def provider_for(self, name: str) -> Provider:
        """The provider called `name`; a 400 naming the ones that exist otherwise."""
        provider = self._providers.get(name)
        if provider is not None:
            return provider
        known = ", ".join((DEFAULT_PROVIDER, *self.names()))
        if name in PROVIDER_NAMES:
            raise BadRequestError(
                f"Provider {name!r} is not available in this build; available: {known}",
                param="provider",
                code="provider_unavailable",
            )
        raise BadRequestError(
            f"Unknown provider {name!r}; available: {known}",
            param="provider",
            code="unknown_provider",
        )


def live_providers() -> ProviderRegistry:
    """The registry app.py serves: every provider package this build has (see registry.py)."""
    from ..registry import PROVIDERS

    return ProviderRegistry(PROVIDERS.values())
