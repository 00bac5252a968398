"""create_simulator(): the aiohttp app serving every simulated host under path prefixes."""

from __future__ import annotations

from aiohttp import web

from . import routes_account as account
from . import routes_auth as auth
from . import routes_control as control
from . import routes_media as media
from . import routes_social as social
from . import routes_tasks as tasks
from .keys import SIM_STATE
from .middleware import simulate
from .providers import setup as setup_providers
from .records import Settings
from .state import SimState

B = "/backend"
# JSON bodies can be large (long storyboard prompts); uploads are capped by settings instead.
_CLIENT_MAX_SIZE = 64 * 1024 * 1024


def routes() -> list[web.RouteDef]:
    """Every route, in match order (literal paths before the patterns that would shadow them)."""
    return [
        # Sora backend, contract 2.1 rows 1-29 plus L1, L3, L4.
        web.get(f"{B}/me", account.me),
        web.get(f"{B}/billing/subscriptions", account.billing),
        web.get(f"{B}/project_y/invite/mine", account.invite_mine),
        web.get(f"{B}/m/bootstrap", account.bootstrap),
        web.post(f"{B}/project_y/invite/accept", account.invite_accept),
        web.get(f"{B}/nf/check", account.nf_check),
        web.post(f"{B}/project_y/profile/username/check", account.username_check),
        web.post(f"{B}/project_y/profile/username/set", account.username_set),
        web.post(f"{B}/uploads", tasks.upload),
        web.post(f"{B}/video_gen", tasks.video_gen),
        web.get(f"{B}/v2/recent_tasks", tasks.recent_tasks),
        web.post(f"{B}/nf/create", tasks.nf_create),
        web.post(f"{B}/nf/create/storyboard", tasks.nf_create_storyboard),
        web.get(f"{B}/nf/pending", tasks.pending),
        web.get(f"{B}/nf/pending/v2", tasks.pending),
        web.get(f"{B}/project_y/profile/drafts", tasks.drafts),
        web.post(f"{B}/project_y/post", social.post_create),
        web.get(f"{B}/project_y/post/{{post_id}}", social.post_get),
        web.delete(f"{B}/project_y/post/{{post_id}}", social.post_delete),
        web.post(f"{B}/characters/upload", social.character_upload),
        web.post(f"{B}/characters/from-generation", social.character_from_generation),
        web.get(f"{B}/project_y/cameos/in_progress/{{cameo_id}}", social.cameo_in_progress),
        web.post(f"{B}/project_y/file/upload", social.file_upload),
        web.post(f"{B}/characters/finalize", social.character_finalize),
        web.post(f"{B}/project_y/cameos/by_id/{{cameo_id}}/update_v2", social.cameo_update),
        web.delete(f"{B}/project_y/characters/{{character_id}}", social.character_delete),
        web.get(f"{B}/project_y/profile_feed/me", social.profile_feed_me),
        web.get(f"{B}/project_y/profile_feed/{{user_id}}", social.profile_feed_user),
        web.get(f"{B}/project_y/profile/username/{{username}}", social.profile_by_username),
        web.get(f"{B}/project_y/profile/search_mentions", social.search_mentions),
        web.get(f"{B}/project_y/feed", social.feed),
        web.post(f"{B}/editor/enhance_prompt", social.enhance_prompt),
        # The hosts around the backend.
        web.get("/api/auth/session", auth.auth_session),
        web.post("/oauth/token", auth.oauth_token),
        web.post("/get-sora-link", auth.get_sora_link),
        web.post("/backend-api/sentinel/req", auth.sentinel_req),
        web.get("/thirdparty/MP4/{post_id}.mp4", media.thirdparty_mp4),
        web.get("/media/{key}/{filename}", media.media),
        web.get("/cdn/media/{key}/{filename}", media.media),
        # Control API.
        web.post("/_sim/accounts", control.accounts_add),
        web.get("/_sim/accounts", control.accounts_list),
        web.post("/_sim/accounts/{email}/invalidate", control.account_invalidate),
        web.post("/_sim/accounts/{email}/token", control.account_token),
        web.post("/_sim/faults", control.faults_add),
        web.get("/_sim/faults", control.faults_list),
        web.delete("/_sim/faults", control.faults_clear),
        web.post("/_sim/scenario", control.scenario_add),
        web.delete("/_sim/scenario", control.scenario_clear),
        web.get("/_sim/journal", control.journal_get),
        web.delete("/_sim/journal", control.journal_clear),
        web.get("/_sim/counts", control.counts_get),
        web.get("/_sim/settings", control.settings_get),
        web.post("/_sim/settings", control.settings_set),
        web.get("/_sim/posts", control.posts_list),
        web.post("/_sim/advance", control.advance),
        web.post("/_sim/reset", control.reset),
    ]


async def _wake_waiters(app: web.Application) -> None:
    # Hanging handlers and media streams watch this, so shutdown never waits on them.
    app[SIM_STATE].closing.set()


def create_simulator(
    *, time_scale: float = 1.0, strict_sentinel: bool = True, seed: int | None = None
) -> web.Application:
    """A fresh simulator app; its state is `app[SIM_STATE]`."""
    app = web.Application(middlewares=[simulate], client_max_size=_CLIENT_MAX_SIZE)
    settings = Settings(time_scale=time_scale, strict_sentinel=strict_sentinel)
    app[SIM_STATE] = SimState(settings, seed=seed)
    app.add_routes(routes())
    setup_providers(app)  # the live-provider upstreams and /_sim/providers/
    app.on_shutdown.append(_wake_waiters)
    return app
