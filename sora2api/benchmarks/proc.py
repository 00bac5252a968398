"""Child processes for the bench: spawn, wait until they answer HTTP, read /proc, always stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import aiohttp

_CLK_TCK = os.sysconf("SC_CLK_TCK")
MB = 1024 * 1024


class BenchError(Exception):
    """A bench step could not run (a process died, a port never answered); one line for the user."""


def free_port() -> int:
    """An ephemeral port that was free a moment ago (the child binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Child:
    """One subprocess with its log file and the /proc figures the bench reports."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] | None = field(repr=False, default=None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _status(self) -> dict[str, int]:
        out: dict[str, int] = {}
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError as exc:
            raise BenchError(f"{self.name} (pid {self.pid}) is gone: {exc}") from None
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
        return out

    def rss(self) -> int:
        """Resident set size now, in bytes."""
        return self._status()["VmRSS"]

    def peak_rss(self) -> int:
        """Peak resident set size since start or the last reset_peak(), in bytes."""
        return self._status()["VmHWM"]

    def reset_peak(self) -> None:
        """Start a new VmHWM window (the kernel sets the peak to the current RSS)."""
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError as exc:
            raise BenchError(f"cannot reset the peak RSS of {self.name}: {exc}") from None

    def cpu_seconds(self) -> float:
        """User + system CPU time so far."""
        raw = Path(f"/proc/{self.pid}/stat").read_text()
        # The command name may contain spaces and parentheses: split after the last ")".
        fields = raw[raw.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(
                f"{self.name} exited with code {self.proc.returncode}; last log lines:\n{self.tail()}"
            )

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join("    " + line for line in text.splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; safe to call twice."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            with contextlib.suppress(Exception):
                self._log.close()


def child_env(pycache: Path) -> dict[str, str]:
    """The environment of every child: bytecode cached under `pycache`, no SORA2API_* overrides."""
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    env["PYTHONUNBUFFERED"] = "1"
    # A deployed install runs from cached bytecode. Without it every start compiles every module,
    # which costs start-up time and leaves megabytes of compiler garbage in the RSS we compare.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    # Environment overrides would change the config under test; the bench writes its own file.
    for key in [k for k in env if k.startswith("SORA2API_")]:
        del env[key]
    return env


def precompile(python: str, modules: Sequence[str], pycache: Path, cwd: Path) -> None:
    """Import the modules once so the children start from cached bytecode."""
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)"
    done = subprocess.run(
        [python, "-c", code, *modules],
        env=child_env(pycache),
        cwd=cwd,
        capture_output=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise BenchError(f"cannot import {' '.join(modules)}: {done.stderr.decode()[-500:]}")


def spawn(name: str, argv: Sequence[str], log_dir: Path, cwd: Path | None = None) -> Child:
    """Start a child with stdout and stderr going to log_dir/<name>.log."""
    log_path = log_dir / f"{name}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        list(argv),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env=child_env(log_dir / "pycache"),
    )
    return Child(name, proc, log_path, log)


async def wait_http(child: Child, url: str, within: float = 30.0) -> None:
    """Poll `url` until anything answers; fail early if the child exits, with its log tail."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            child.check_alive()
            try:
                async with session.get(url) as resp:
                    await resp.read()
                    return
            except (aiohttp.ClientError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{child.name} did not answer {url} within {within:g} s; last log lines:\n"
                    f"{child.tail()}"
                )
            await asyncio.sleep(0.1)
