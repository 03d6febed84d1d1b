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
