"""The pipeline's services as real processes a scenario can kill, stop and restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

GRACE_SECONDS = 30.0  # a SIGTERMed service must drain and exit within this
# Python installs the services' SIGTERM handler once its imports are done (~1 s here); a
# SIGTERM before that ends the process by the signal. It holds nothing yet, so nothing is
# lost, but "drains and exits 0" is only asked of a service that has started.
STARTUP_SECONDS = 3.0


def rss_mib(pid: int) -> float:
    """Resident set size of a live process, MiB (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Service:
    """``python -m <module> ARGS`` with its own environment; restartable."""

    name: str  # e.g. tableinator-1
    module: str
    env: dict[str, str]
    log: Path
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    peak_rss_mib: float = 0.0
    exit_codes: list[int] = field(default_factory=list)
    started_at: float = 0.0

    def start(self, args: list[str] | None = None) -> None:
        if args is not None:
            self.args = args
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, *self.args],
                env=self.env,
                cwd=self.log.parent,  # what a process writes (extractor reports/) stays there
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.started_at = time.monotonic()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def sample_rss(self) -> None:
        if self.alive:
            assert self.process is not None
            self.peak_rss_mib = max(self.peak_rss_mib, rss_mib(self.process.pid))

    def kill(self) -> None:
        """kill -9, and reap it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.exit_codes.append(self.process.wait(10))

    async def terminate(self, grace: float = GRACE_SECONDS) -> int | None:
        """SIGTERM; the exit code, or None if it did not exit within ``grace`` (then kill -9)."""
        if not self.alive:
            return self.process.returncode if self.process else None
        assert self.process is not None
        await asyncio.sleep(max(0.0, self.started_at + STARTUP_SECONDS - time.monotonic()))
        self.process.send_signal(signal.SIGTERM)
        code = await self.wait(grace)
        if code is None:
            self.kill()
        else:
            self.exit_codes.append(code)
        return code

    async def wait(self, seconds: float) -> int | None:
        """The exit code once it exits, or None after ``seconds``."""
        assert self.process is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self.process.poll() is None:
            if loop.time() > deadline:
                return None
            await asyncio.sleep(0.1)
        return self.process.returncode

    def stop_now(self) -> None:
        """At the end of a run: whatever is still alive is killed."""
        if self.alive:
            self.kill()


def base_env(**settings: str) -> dict[str, str]:
    env = dict(os.environ, LOG_LEVEL="INFO")
    env.update(settings)
    return env
