"""Services as real subprocesses, for kill -9 and SIGTERM tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def service_env(spec: Path, schema: str, **settings: str) -> dict[str, str]:
    env = dict(os.environ, DATASET_SPEC=str(spec), POSTGRES_SCHEMA=schema, LOG_LEVEL="INFO")
    env.update(settings)
    return env


@contextmanager
def running(module: str, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m module`` in the background; killed at the end if still alive."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", module], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)


def restart_service(name: str) -> None:
    """Restart a local service with scripts/services.sh; skip if this checkout does not own it."""
    import pytest

    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [str(repo / "scripts/services.sh"), "restart", name],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    if "left alone" in done.stdout + done.stderr:
        pytest.skip(f"{name} was started by another checkout; it cannot be restarted from here")
