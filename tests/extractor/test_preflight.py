"""A dry run (and a run's start) fails fast on a source that cannot serve the spec: one
line naming the URL and the cause, exit 3 (unreachable) or 2 (configuration), in seconds."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from aiohttp import web

from tests.extractor.support import extractor_env, free_port, serving


def answering(status: int) -> AbstractAsyncContextManager[str]:
    """A source that answers every request with ``status``."""

    async def handler(_: web.Request) -> web.Response:
        return web.json_response({"error": "no"}, status=status)

    return serving(handler)


def extractor(args: list[str], env: dict[str, str]) -> tuple[int, str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "extractor", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stderr, time.monotonic() - started


@pytest.mark.parametrize("command", ["plan", "run"])
def test_a_refused_connection_exits_3_in_seconds(
    command: str, demo_spec_file: Path, namespace: str
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, stderr, took = extractor([command], extractor_env(demo_spec_file, url, namespace))
    assert code == 3, stderr
    assert took < 15
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith(f"extractor: source unreachable: {url}/search.json: cannot connect")
    assert "Traceback" not in stderr


def test_tls_to_a_plain_http_port_exits_3(demo_spec_file: Path, namespace: str) -> None:
    url = f"https://127.0.0.1:{free_port()}"
    code, stderr, _ = extractor(["plan"], extractor_env(demo_spec_file, url, namespace))
    assert code == 3, stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("status", "words"), [(401, "credentials"), (403, "forbids"), (404, "no such path")]
)
async def test_401_403_404_on_the_first_request_exit_2(
    status: int, words: str, demo_spec_file: Path, namespace: str
) -> None:
    async with answering(status) as url:
        env = extractor_env(demo_spec_file, url, namespace)
        code, stderr, took = await asyncio.to_thread(extractor, ["plan"], env)
    assert code == 2, stderr
    assert took < 15
    assert f"{url}/search.json: HTTP {status}: " in stderr and words in stderr
    assert "Traceback" not in stderr
