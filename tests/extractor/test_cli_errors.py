"""No traceback reaches a user: every command, given a bad spec, an unreachable database,
broker or source, or a bad selection, ends with one line saying what is wrong and a
documented code."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.extractor.support import free_port

SPEC_COMMANDS = [
    ["plan"],
    ["run"],
    ["worker"],
    ["dlq", "list"],
    ["dlq", "replay", "--all"],
    ["dlq", "purge", "--yes"],
]


def extractor(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "extractor", *args],
        env={**os.environ, "LOG_LEVEL": "WARNING", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def bad_spec(demo_spec_file: Path) -> Path:
    raw = yaml.safe_load(demo_spec_file.read_text())
    raw["entities"]["replays"]["paginator"]["page_sise"] = 50
    demo_spec_file.write_text(yaml.safe_dump(raw))
    return demo_spec_file


@pytest.mark.parametrize("command", SPEC_COMMANDS, ids=" ".join)
def test_a_bad_spec_is_one_line_and_exit_2(command: list[str], bad_spec: Path) -> None:
    done = extractor([*command, "--spec", str(bad_spec)])
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"extractor: {bad_spec}: entities.replays.paginator.page_sise: unknown field"
    )


LEDGER_COMMANDS = [
    ["status"],
    ["status", "j1"],
    ["report", "j1"],
    ["cancel", "j1"],
    ["resume", "j1"],
    ["retry-failed", "j1"],
    ["worker"],
]


def test_an_unreachable_ledger_database_is_one_line_and_exit_3() -> None:
    port = free_port()
    with ThreadPoolExecutor(len(LEDGER_COMMANDS)) as pool:  # each waits 15 s for the pool
        runs = pool.map(
            lambda command: extractor(command, POSTGRES_ADDRESS=f"127.0.0.1:{port}"),
            LEDGER_COMMANDS,
        )
        for command, done in zip(LEDGER_COMMANDS, runs, strict=True):
            assert done.returncode == 3, (command, done.stderr)
            assert "Traceback" not in done.stderr
            assert done.stderr.strip().splitlines()[-1] == (
                f"extractor: cannot reach the ledger database postgresql://backfill@127.0.0.1:"
                f"{port}/backfill: connection failed: connection to server at"
                f' "127.0.0.1", port {port} failed: Connection refused'
            ), command


@pytest.mark.parametrize("command", [["plan"], ["run"]], ids=" ".join)
def test_an_unreachable_source_is_one_line_and_exit_3(
    command: list[str], demo_spec_file: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = extractor([*command, "--spec", str(demo_spec_file), "--source-url", url])
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"extractor: source unreachable: {url}/search.json: cannot connect:")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["dlq", "purge", "--yes"], "say which: --all, --reason, --entity, --consumer, --id"),
        (["dlq", "replay", "--all", "--reason", "x"], "--all takes no other selection"),
        (["dlq", "show"], "the following arguments are required: --id"),
        (["run", "--start", "2024-13-01"], "2024-13-01"),
        (["status", "--bogus"], "unrecognized arguments: --bogus"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else "",
)
def test_a_bad_command_line_is_one_line_and_exit_2(command: list[str], message: str) -> None:
    done = extractor(command)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert message in done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("consumer", ["tableinator", "graphinator"])
def test_a_consumer_given_a_bad_spec_is_one_line_and_exit_2(consumer: str, bad_spec: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", consumer, "--spec", str(bad_spec)],
        env={**os.environ, "LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"{consumer}: {bad_spec}: entities.replays.paginator.page_sise: unknown field"
    )


def test_an_unreachable_broker_is_one_line_and_exit_3() -> None:
    done = extractor(
        ["dlq", "list"], AMQP_CONNECTION=f"amqp://guest:secret@127.0.0.1:{free_port()}/"
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr and "secret" not in done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("extractor: cannot reach RabbitMQ (AMQP_CONNECTION):")
    )


def test_an_unknown_job_is_one_line_and_exit_2() -> None:
    for command in (["status", "nojob"], ["report", "nojob"], ["cancel", "nojob"]):
        done = extractor(command)
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith("extractor: no job 'nojob'")
