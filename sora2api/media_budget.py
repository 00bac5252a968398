"""The media folder's disk budget: a total size cap and a free-disk floor, checked before each write."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Final

from .errors import ApiError
from .settings import Settings

MB: Final = 1024 * 1024


class CacheFullError(ApiError):
    """A file would take the media folder past its cap, or its disk below the free-space floor."""

    status = 507
    type = "server_error"
    code = "cache_full"


def size_text(n: int) -> str:
    """Bytes as a short human figure."""
    return f"{n / MB:.4g} MB" if n >= MB else f"{n} bytes"


def folder_size(folder: Path) -> int:
    """Bytes held by the regular files directly in `folder` (what the cache writes there)."""
    total = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                pass  # removed meanwhile
    return total


class DiskBudget:
    """Counts the bytes the cache holds and refuses writes that break either storage limit.

    `used` counts finished files and the bytes running downloads have written; `pending` is what
    running downloads announced (Content-Length) but have not written yet, so two large downloads
    can't both pass the check and then fill the disk together. Only the event loop's thread
    touches the counters.
    """

    def __init__(self, folder: Path, settings: Settings) -> None:
        self._folder = folder
        self._settings = settings
        self.used = folder_size(folder)
        self.pending = 0
        # Bumped by every change not seen by a pruner pass that is running in a thread, so the
        # pass knows whether its fresh count of the folder may replace `used`.
        self.epoch = 0
        self.active = 0

    def check(self, n: int, what: str) -> None:
        """Raise CacheFullError when `n` more bytes would break the cap or the free-disk floor."""
        storage = self._settings.current.storage
        cap = storage.media_cache_max_mb * MB
        if cap and self.used + self.pending + n > cap:
            raise CacheFullError(
                f"Caching failed: cache full: {what} would take the media folder past "
                f"storage.media_cache_max_mb ({size_text(self.used + self.pending)} of "
                f"{size_text(cap)} in use, {size_text(n)} more needed)"
            )
        floor = storage.media_min_free_mb * MB
        if floor:
            free = shutil.disk_usage(self._folder).free - self.pending
            if free - n < floor:
                raise CacheFullError(
                    f"Caching failed: cache full: {what} would leave less than "
                    f"storage.media_min_free_mb ({size_text(floor)}) free on the disk of the "
                    f"media folder ({size_text(max(free, 0))} free, {size_text(n)} more needed)"
                )

    def claim(self, expected: int | None, what: str) -> Claim:
        """Start accounting one download; `expected` bytes (if known) are checked and held now."""
        held = expected or 0
        if held:
            self.check(held, what)
        self.pending += held
        self.active += 1
        self.epoch += 1
        return Claim(self, held, what)

    def forget(self, n: int) -> None:
        """A file of `n` bytes left the folder (deleted or pruned)."""
        self.used = max(0, self.used - n)
        self.epoch += 1


class Claim:
    """One download's share of the budget: add() before each write, end() once it is over."""

    def __init__(self, budget: DiskBudget, held: int, what: str) -> None:
        self._budget = budget
        self._held = held
        self._what = what
        self.written = 0
        self._open = True

    def add(self, n: int) -> None:
        """Account `n` bytes about to be written; past the announced size each write is checked."""
        budget = self._budget
        covered = min(n, self._held)
        extra = n - covered
        if extra:
            budget.check(extra, self._what)
        self._held -= covered
        budget.pending -= covered
        budget.used += n
        self.written += n

    def end(self, *, kept: bool) -> None:
        """Release what was held but not written; a download that is not kept gives its bytes back."""
        if not self._open:
            return
        self._open = False
        budget = self._budget
        budget.pending -= self._held
        self._held = 0
        if not kept:
            budget.used = max(0, budget.used - self.written)
        budget.active -= 1
        budget.epoch += 1
