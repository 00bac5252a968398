"""Simulators of the live video upstreams: an OpenAI-Videos gateway, Seedance (Ark), Gemini Omni."""

from __future__ import annotations

from aiohttp import web

from ..keys import SIM_STATE
from . import control, gemini, openai_videos, seedance
from .state import PROVIDER_STATE, ProviderAccount, ProviderState, Variant

__all__ = ["PROVIDER_STATE", "ProviderAccount", "ProviderState", "Variant", "setup"]


async def _models(request: web.Request) -> web.Response:
    # GET /v1/models is both the gateway's list and Gemini's: the credential style tells them apart.
    if gemini.api_key(request) is not None:
        return await gemini.models(request)
    return await openai_videos.models(request)


def setup(app: web.Application) -> None:
    """Attach the provider state and routes to a simulator app."""
    app[PROVIDER_STATE] = ProviderState(app[SIM_STATE])
    routes = [web.get("/v1/models", _models)]
    routes += openai_videos.routes() + seedance.routes() + gemini.routes() + control.routes()
    app.add_routes(routes)
