"""No traceback reaches a user: every command, given a bad spec, an unreachable database
or an unreachable broker, ends with one line saying what is wrong and a documented code."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_an_unreachable_ledger_database_is_one_line_and_exit_3() -> None:
    done = extractor(["status"], POSTGRES_ADDRESS=f"127.0.0.1:{free_port()}")
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith("extractor: cannot reach the ledger database postgresql://backfill@127.0.0.1:")
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
