"""Processes a benchmark runs beside itself: the demo API and the pipeline's services,
with the CPU time each one used."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process and its reaped children (0 once gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # the command name (field 2) may hold spaces; the fields after its ')' are fixed
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return (utime + stime + cutime + cstime) / CLOCK_TICKS


@dataclass
class Background:
    """A ``python ARGS`` process; ``cpu`` holds its CPU seconds once it is stopped."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path | None = None
    cpu: float = 0.0

    def stop(self, grace: float = 30.0) -> int:
        """SIGTERM (kill -9 after ``grace`` seconds), its CPU time read just before; once
        stopped, it stays stopped."""
        if self.process.returncode is not None:
            return self.process.returncode
        self.cpu = max(self.cpu, cpu_seconds(self.process.pid))
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)


@contextmanager
def background(
    args: list[str], env: dict[str, str], log: Path, name: str = ""
) -> Iterator[Background]:
    """``python ARGS`` in the background, its output to ``log``, stopped with SIGTERM
    when the block ends."""
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, *args], env=env, stdout=out, stderr=out)
    running = Background(name or " ".join(args), process, log)
    try:
        yield running
    finally:
        running.stop()


@contextmanager
def demo_api(records: int, port: int, *flags: str) -> Iterator[str]:
    """The demo API in its own process (``flags``: its knobs, e.g. ``--tie-seconds 60``);
    yields its URL once it says it listens."""
    args = [sys.executable, "-m", "demoapi", "--size", str(records), "--port", str(port)]
    process = subprocess.Popen([*args, *flags], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if "listening" not in line:
            raise RuntimeError(f"demo API did not start: {line!r}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


# The local services, found by their command lines (scripts/services.sh starts them).
SERVICES = {
    "rabbitmq": "beam.smp",
    "postgresql": "postgres -D|bin/postgres",
    "neo4j": "Neo4jServer|org.neo4j",
}


def _pgrep(*args: str) -> list[int]:
    found = subprocess.run(["pgrep", *args], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and every live descendant (exited ones count in their
    parent's reaped children's time once waited for)."""
    return cpu_seconds(pid) + sum(tree_cpu(child) for child in _pgrep("-P", str(pid)))


def service_roots() -> dict[str, int]:
    """The oldest process of each local service that is running, by name."""
    roots = {}
    for name, pattern in SERVICES.items():
        pids = _pgrep("-o", "-f", pattern)
        if pids:
            roots[name] = pids[0]
    return roots


class ServiceCpu:
    """The CPU seconds the local services spent between ``start()`` and ``stop()``."""

    def __init__(self) -> None:
        self.roots = service_roots()
        self.before: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def start(self) -> None:
        self.before = {name: tree_cpu(pid) for name, pid in self.roots.items()}

    def stop(self) -> dict[str, float]:
        self.seconds = {
            name: max(0.0, tree_cpu(pid) - self.before.get(name, 0.0))
            for name, pid in self.roots.items()
        }
        return self.seconds
