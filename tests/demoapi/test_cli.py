"""The demo-api command line: settings precedence and a real process stopped by SIGTERM."""

import asyncio
import signal
import sys

import aiohttp
import pytest

from demoapi.__main__ import parse_settings


def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_API_PORT", "9100")
    monkeypatch.setenv("DEMO_API_ERROR_RATE", "0.25")

    settings = parse_settings(["--port", "9200", "--latency-ms", "15"])

    assert (settings.port, settings.error_rate, settings.latency_ms) == (9200, 0.25, 15.0)
    assert settings.faults().error_rate == 0.25


def test_invalid_knob_exits_with_usage_error() -> None:
    with pytest.raises(SystemExit) as exited:
        parse_settings(["--malformed-rate", "2"])

    assert exited.value.code == 2


async def start_process(size: int) -> tuple[asyncio.subprocess.Process, str]:
    """Run `python -m demoapi` on a free port; return it and the URL from its ready line."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "demoapi", "--port", "0", "--size", str(size),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), timeout=10)).decode()
    assert line.startswith("demo-api listening on http://127.0.0.1:")
    assert line.rstrip().endswith(f"size={size}")
    return process, line.split()[3]


async def test_process_serves_then_stops_cleanly_on_sigterm() -> None:
    process, url = await start_process(300)

    async with aiohttp.ClientSession() as session, session.get(f"{url}/health") as response:
        assert response.status == 200

    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), timeout=10) == 0


async def test_sigterm_right_after_the_ready_line_still_stops_cleanly() -> None:
    process, _ = await start_process(50)

    process.send_signal(signal.SIGTERM)

    assert await asyncio.wait_for(process.wait(), timeout=10) == 0
