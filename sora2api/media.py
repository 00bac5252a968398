"""The media cache: its files, uploads and adopted files, expiry and the pruner. Downloads are
media_fetch.py (every hop through the URL guard), the kinds of file media_kinds.py; GET /tmp/{name}
is routes/media.py."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import shutil
import stat
import time
from pathlib import Path
from typing import Final

import aiohttp

from .errors import ApiError, BadRequestError, PayloadTooLargeError
from .media_budget import DiskBudget, size_text
from .media_fetch import MediaFetcher
from .media_kinds import (  # CONTENT_TYPES, CachedFile, MediaFailure re-exported: they lived here
    _FAMILY,
    _SNIFF_BYTES,
    _WHAT,
    CONTENT_TYPES,
    MB,
    CachedFile,
    MediaFailure,
    _check_ext,
    _expect,
)
from .settings import Settings
from .sniff import media_type
from .upstream.errors import Kind
from .urlguard import (  # re-exported: the guard used to live here
    Fetched,
    IPAddress,
    UrlGuard,
    check_url,
    display_url,
    is_public_address,
)

__all__ = [
    "CONTENT_TYPES",
    "CachedFile",
    "Fetched",
    "IPAddress",
    "MediaCache",
    "MediaFailure",
    "UrlGuard",
    "check_url",
    "display_url",
    "is_public_address",
]

log = logging.getLogger(__name__)

_NAME_RE: Final = re.compile(r"[0-9a-f]{32}\.(?:" + "|".join(CONTENT_TYPES) + ")")
# A download touches its .part file on every chunk, and stalls end at the read timeout, so a
# .part file this old was left behind by a crash.
_PART_MAX_AGE: Final = 3600.0


class MediaCache(MediaFetcher):
    """Files under storage.media_dir with random names, served at /tmp/{name} until media_ttl."""

    def __init__(self, settings: Settings, session: aiohttp.ClientSession) -> None:
        super().__init__(settings, session)
        config = settings.current
        # media_dir needs a restart to change, so it is fixed here; media_ttl is re-read on use.
        self.dir = config.path(config.storage.media_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.budget = DiskBudget(self.dir, settings)

    def _ttl(self) -> float:
        return float(self._settings.current.storage.media_ttl)

    async def store_bytes(self, data: bytes, *, ext: str) -> CachedFile:
        """Keep bytes we already hold (an upload) as a cached file."""
        ext = _check_ext(ext)
        limit = self._settings.current.storage.media_max_mb * MB
        if len(data) > limit:
            raise PayloadTooLargeError(
                f"The file is {size_text(len(data))}, over the {size_text(limit)} limit"
            )
        if media_type(data) not in _FAMILY[ext]:
            raise BadRequestError(f"The file is not {_WHAT[ext]}")
        claim = self.budget.claim(len(data), "the file")
        name, path = self._new_path(ext)
        kept = False
        try:
            claim.add(len(data))
            await asyncio.to_thread(_write_atomic, path, data)
            kept = True
        finally:
            claim.end(kept=kept)
        return CachedFile(name, path, len(data), CONTENT_TYPES[ext])

    async def adopt_file(self, source: str | os.PathLike[str], *, ext: str) -> CachedFile:
        """Take in a file a provider already wrote (inline video data), checked like a download
        (size limit, first bytes, disk budget) and moved, never read into memory. The source is
        consumed whether it is kept or refused."""
        src = Path(source)
        try:
            ext = _check_ext(ext)
            limit = self._settings.current.storage.media_max_mb * MB
            size, head = await asyncio.to_thread(_stat_and_head, src)
            if size > limit:
                raise MediaFailure(
                    f"Caching failed: the inline file is {size_text(size)}, over the "
                    f"{size_text(limit)} limit",
                    Kind.MALFORMED,
                )
            actual = _expect(head, ext, "the inline file", "application/octet-stream")
            name, path = self._new_path(actual)
            claim = self.budget.claim(size, "the inline file")
            try:
                claim.add(size)
                await asyncio.to_thread(_move, src, path)
                claim.end(kept=True)
            finally:
                claim.end(kept=False)  # no-op once kept
        except OSError as exc:
            raise ApiError(f"Caching failed: cannot move the inline file: {exc.strerror}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(src)  # gone already when it was moved
        log.info("cached an inline file (%s) as %s", size_text(size), name)
        return CachedFile(name, path, size, CONTENT_TYPES[actual])

    def url_for(self, name: str) -> str:
        """The public link of a cached file."""
        return f"{self._settings.current.public_base}/tmp/{name}"

    def lookup(self, name: str) -> CachedFile | None:
        """A live cached file by its link's name; None for a name this cache could not have made,
        or a file that expired or is gone."""
        path = self.resolve(name)
        if path is None:
            return None
        try:
            size = path.stat().st_size
        except OSError:
            return None
        return CachedFile(name, path, size, CONTENT_TYPES[name.rsplit(".", 1)[1]])

    def resolve(self, name: str) -> Path | None:
        """The path of a live cached file; only names this cache could have made are looked up."""
        expires = self.expires_at(name)
        if expires is None or expires <= time.time():
            return None
        return self.dir / name

    def expires_at(self, name: str) -> float | None:
        """When a cached file stops being served (mtime + media_ttl), or None if there is none."""
        # The strict pattern is what rules out traversal: no slash, dot-dot or other file.
        if not _NAME_RE.fullmatch(name):
            return None
        try:
            st = (self.dir / name).stat()
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return st.st_mtime + self._ttl()

    def delete(self, name: str) -> bool:
        """Remove a cached file; False when there was none."""
        if not _NAME_RE.fullmatch(name):
            return False
        path = self.dir / name
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return False
        self.budget.forget(size)
        return True

    def prune(self) -> int:
        """Delete expired files and abandoned .part files; returns how many were removed."""
        removed, freed, _ = self._sweep()
        self.budget.forget(freed)
        return removed

    def _sweep(self) -> tuple[int, int, int]:
        """Remove what expired: (files removed, their bytes, bytes of every file left)."""
        now = time.time()
        ttl = self._ttl()
        removed = freed = kept = 0
        with os.scandir(self.dir) as entries:
            for entry in entries:
                # Only names this cache makes are touched, in case media_dir points somewhere shared.
                if _NAME_RE.fullmatch(entry.name):
                    max_age = ttl
                elif entry.name.endswith(".part") and _NAME_RE.fullmatch(entry.name[:-5]):
                    max_age = _PART_MAX_AGE
                else:
                    continue
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    st = entry.stat(follow_symlinks=False)
                    if st.st_mtime + max_age <= now:
                        os.unlink(entry.path)
                        removed += 1
                        freed += st.st_size
                    else:
                        kept += st.st_size
                except FileNotFoundError:
                    pass  # deleted meanwhile (delete() or a second pruner)
                except OSError as exc:
                    log.warning("cannot prune %s: %s", entry.name, exc)
        return removed, freed, kept

    async def run_pruner(self) -> None:
        """Prune now and then every storage.prune_interval seconds, until cancelled."""
        while True:
            try:
                budget = self.budget
                epoch, idle = budget.epoch, budget.active == 0
                removed, freed, kept = await asyncio.to_thread(self._sweep)
                if idle and budget.active == 0 and budget.epoch == epoch:
                    # Nothing was written or deleted during the pass: its count is exact, and
                    # corrects any drift (files removed by hand).
                    budget.used = kept
                else:
                    budget.forget(freed)
                if removed:
                    log.info("pruned %d expired media file(s)", removed)
            except Exception:
                log.exception("media pruning failed; retrying next interval")
            # The floor keeps a zero interval from spinning the loop.
            await asyncio.sleep(max(self._settings.current.storage.prune_interval, 0.1))


def _stat_and_head(path: Path) -> tuple[int, bytes]:
    with path.open("rb") as f:
        return os.fstat(f.fileno()).st_size, f.read(_SNIFF_BYTES)


def _move(src: Path, path: Path) -> None:
    """Move a file into the cache (a copy when it is on another disk); its age starts now."""
    part = path.with_name(path.name + ".part")
    try:
        try:
            os.replace(src, part)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            shutil.copyfile(src, part)
        os.utime(part)  # media_ttl counts from adoption, not from when the provider wrote it
        os.replace(part, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()


def _write_atomic(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + ".part")
    try:
        with part.open("xb") as f:
            f.write(data)
        os.replace(part, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
