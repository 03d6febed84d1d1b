"""The end-to-end benchmark's job runner against the real services: a small demo job into
both stores lands every record, is counted right, and leaves nothing behind."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
import yaml

from bench.e2e_graph import graph_totals, prefix_labels
from bench.e2e_job import ConsumerDiedError, Job, run_job, run_python
from bench.end_to_end import DEMO_SPEC, targets
from bench.harness.processes import background, demo_api
from common.settings import PostgresSettings

RECORDS = 1_500


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_prefix_labels_renames_every_node_label() -> None:
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    labels = prefix_labels(raw, "Ex")
    graph = raw["entities"]["replays"]["graph"]
    assert labels == {"ExReplay", "ExPlayer", "ExFormat"}
    assert graph["label"] == "ExReplay"
    assert {r["target"]["label"] for r in graph["relationships"]} == {"ExPlayer", "ExFormat"}


def test_a_target_is_met_only_when_it_holds_in_every_round() -> None:
    def round_of(rate: float, vs_dlt: float) -> dict[str, object]:
        demo = {"both": {"records_per_second": rate}, "vs_baseline": 60.0, "vs_dlt": vs_dlt}
        return {"demo": demo}

    met = targets([round_of(9000, 6.0), round_of(7999, 4.9)])
    assert met["demo >= 8,000 records/s, both stores"] is False
    assert met["source to PostgreSQL >= 5x dlt"] is False
    assert met["demo >= 50x one record per message"] is True
    assert met["34M-record dump projected < 1 hour"] is None


def test_a_demo_job_lands_in_both_stores_and_is_cleaned_up(
    tmp_path: Path, graph_lock: None
) -> None:
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    with demo_api(RECORDS, free_port()) as url:
        raw["source"]["base_url"] = url
        job = Job(raw, RECORDS, "demo", {"EXTRACTOR_SOURCE_URL": url})
        result = run_job(job, tmp_path, timeout=300)

    assert result.rows == {"replays": RECORDS}
    # every replay with its players and format: more nodes than replays, ~3 edges each
    assert result.nodes > RECORDS
    assert result.relationships >= 2 * RECORDS
    assert set(result.store_seconds) == {"tableinator", "graphinator"}
    assert all(0 < s <= result.seconds + 1 for s in result.store_seconds.values())
    assert result.cpu["extractor"] > 0 and result.cpu["graphinator"] > 0
    shares = result.as_dict()["cpu_share"]
    assert 0 < sum(shares.values()) <= 1.05  # two cores' worth at most, all processes

    # nothing of the round is left: its schemas, its labels, its spec
    name = next(tmp_path.glob("e2e_*.extractor.log")).name.split(".")[0]
    with psycopg.connect(PostgresSettings().conninfo) as conn:
        schemas = conn.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE %s",
            (f"{name}%",),
        ).fetchone()
    assert schemas == (0,)
    prefix = "E" + name.removeprefix("e2e_")
    labels = {prefix + label for label in ("Replay", "Player", "Format")}
    assert asyncio.run(graph_totals(labels)) == (0, 0)
    assert not list(tmp_path.glob("*.yaml"))


def test_a_job_stops_at_once_when_a_consumer_it_waits_for_exits(tmp_path: Path) -> None:
    """A consumer that dies fails the round within seconds, naming it and its log, and the
    job it was waiting on is stopped, not left to run until the timeout."""
    log = tmp_path / "consumer.log"
    job = ["-c", "import time; time.sleep(120)"]
    with background(["-c", "import sys; sys.exit(3)"], {}, log, "graphinator") as consumer:
        started = time.monotonic()
        with pytest.raises(ConsumerDiedError, match=r"graphinator exited with code 3.*consumer"):
            run_python(job, {}, tmp_path / "job.log", timeout=600, watch=[consumer])
    assert time.monotonic() - started < 30


def test_a_job_that_fails_raises_with_its_exit_code(tmp_path: Path) -> None:
    with pytest.raises(subprocess.CalledProcessError) as failed:
        run_python(["-c", "raise SystemExit(5)"], {}, tmp_path / "job.log", timeout=60)
    assert failed.value.returncode == 5
    assert run_python(["-c", "pass"], {}, tmp_path / "job.log", timeout=60) >= 0.0
