"""Import and export of accounts of every provider, as JSON objects or text lines.

Text lines: a Sora credential alone (AT, ST or RT, see credentials.classify_credential), or
`provider|key|base_url` with an optional `|model,model` restriction for another provider.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any

from .account_rows import json_list
from .credentials import UNSET, ImportItem, parse_json, parse_text
from .errors import ApiError, BadRequestError
from .jwt import decode_jwt, jwt_email
from .onboarding import Onboarding
from .providers.sora.account import SoraAccounts
from .settings import Settings
from .store import Store, TokenRow

log = logging.getLogger(__name__)


class _Duplicate(Exception):
    def __init__(self, line: int, email: str) -> None:
        super().__init__(email)
        self.line = line
        self.email = email


class AccountFiles:
    """Reads import files into accounts and writes every account out, secrets in full."""

    def __init__(
        self, settings: Settings, store: Store, sora: SoraAccounts, onboarding: Onboarding
    ) -> None:
        self._settings = settings
        self._store = store
        self._sora = sora
        self._onboarding = onboarding

    async def import_items(self, items: list[ImportItem]) -> dict[str, Any]:
        """Upsert every item by email; returns one result per line, so a bad line loses nothing."""
        results: dict[int, dict[str, Any]] = {}
        claimed: dict[str, int] = {}
        seen: dict[str, int] = {}
        todo: list[ImportItem] = []
        for item in items:
            res: dict[str, Any] = {
                "line": item.line,
                "provider": item.provider,
                "kind": item.kind or None,
                "email": item.email,
                "result": "error",
                "message": "",
                "id": None,
            }
            results[item.line] = res
            if item.error:
                res["message"] = item.error
                continue
            cred = item.credential
            if cred in seen:
                res.update(result="duplicate", message=f"same credential as line {seen[cred]}")
                continue
            seen[cred] = item.line
            email = item.email
            if item.at and item.provider == "sora":
                with suppress(ValueError):
                    email = jwt_email(decode_jwt(item.at)) or email
            if email:
                res["email"] = email
                owner = claimed.setdefault(email.lower(), item.line)
                if owner != item.line:
                    res.update(
                        result="duplicate", message=f"same account ({email}) as line {owner}"
                    )
                    continue
            todo.append(item)

        sem = asyncio.Semaphore(max(1, self._settings.current.pool.test_concurrency))

        async def one(item: ImportItem) -> None:
            res = results[item.line]

            def claim(email: str) -> None:
                res["email"] = email
                owner = claimed.setdefault(email.lower(), item.line)
                if owner != item.line:
                    raise _Duplicate(owner, email)

            async with sem:
                try:
                    if item.provider != "sora":
                        row, created = await self._onboarding.add_account(
                            item.provider,
                            item.at,
                            item.base_url,
                            models=UNSET if item.models is None else item.models,
                            options=item.options,
                            trusted=True,  # the import route takes an admin session only
                            disabled_reason=None
                            if item.active
                            else "inactive in the imported file",
                        )
                        warnings: list[str] = []
                    else:
                        row, created, warnings = await self._sora.add_credentials(
                            at=item.at,
                            st=item.st,
                            rt=item.rt,
                            client_id=item.client_id,
                            options=item.options,
                            email_hint=item.email,
                            claim=claim,
                            disabled_reason=None
                            if item.active
                            else "inactive in the imported file",
                        )
                except _Duplicate as d:
                    res.update(
                        result="duplicate", message=f"same account ({d.email}) as line {d.line}"
                    )
                except ApiError as exc:
                    res["message"] = exc.message
                except Exception as exc:  # one line's surprise must not lose the others
                    log.exception("import line %d failed", item.line)
                    res["message"] = f"internal error: {type(exc).__name__}"
                else:
                    res.update(
                        result="created" if created else "updated",
                        id=row["id"],
                        email=row.get("email"),
                        message="; ".join(warnings),
                    )

        await asyncio.gather(*(one(i) for i in todo))
        ordered = [results[i.line] for i in items]
        summary = {k: 0 for k in ("created", "updated", "duplicate", "error")}
        for r in ordered:
            summary[r["result"]] += 1
        log.info("import: %s", ", ".join(f"{v} {k}" for k, v in summary.items()))
        return {"results": ordered, "summary": summary}

    async def import_text(self, text: str) -> dict[str, Any]:
        return await self.import_items(parse_text(text))

    async def import_json(self, data: Any) -> dict[str, Any]:
        return await self.import_items(parse_json(data))

    async def export(self, fmt: str = "json") -> list[dict[str, Any]] | str:
        """Every account with FULL secrets (callers must hold an admin session)."""
        rows = await self._store.tokens.all()
        if fmt == "text":
            return "".join(f"{_text_line(r)}\n" for r in rows)
        if fmt != "json":
            raise BadRequestError("'format' must be json or text", param="format")
        return [_json_object(r) for r in rows]


def _text_line(r: TokenRow) -> str:
    """What parse_text() reads back: for Sora the credential that lives longest and does not
    rotate first (ST, else RT, else AT); for another provider provider|key|base_url|models."""
    if r.provider == "sora":
        return r.session_token or r.refresh_token or r.access_token
    models = ",".join(json_list(r.models) or [])
    return "|".join((r.provider, r.access_token, r.base_url, *((models,) if models else ())))


def _json_object(r: TokenRow) -> dict[str, Any]:
    out: dict[str, Any] = {
        "provider": r.provider,
        "email": r.email,
        "access_token": r.access_token,
        "session_token": r.session_token or None,
        "refresh_token": r.refresh_token or None,
        "is_active": r.status != "disabled",
        "image_enabled": bool(r.image_enabled),
        "video_enabled": bool(r.video_enabled),
        "image_concurrency": r.image_concurrency,
        "video_concurrency": r.video_concurrency,
        "remark": r.remark or "",
        "proxy": r.proxy or "",
        "client_id": r.client_id,
    }
    if r.provider != "sora":
        out.update(base_url=r.base_url, models=json_list(r.models))
    return out
