"""Dump-file jobs on the real services: the Discogs samples into both stores, kill -9 and
resume, a truncated gzip then retry-failed, JSON Lines and CSV.

Each test has its own dataset name (queues) and PostgreSQL schema (ledger and tables).
"""

from __future__ import annotations

import gzip
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from neo4j import AsyncDriver

from common.errors import ConfigError
from common.settings import AmqpSettings
from extractor.backfill import JobOptions, job_report, retry_failed, run_backfill
from extractor.sources.dumps import DumpTruncatedError
from extractor.sources.dumps.discogs import iter_records
from tests.extractor.dump_support import (
    delete_dump_queues,
    discogs_spec,
    dump_settings,
    page_ids,
    table_only,
    wait_until,
)
from tests.extractor.dumps.samples import ENTITIES, gzipped_copy, sample, write_releases
from tests.extractor.support import (
    extractor_process,
    ledger_row,
    running_tableinator,
    wait_exit,
    wait_for,
)
from tests.graphinator.test_discogs_graph import expected_edges, graph_edges
from tests.support.pipeline import running_consumers

DATA = Path(__file__).parent / "dumps" / "data"


@pytest.fixture
async def dump_queues(namespace: str, pg: psycopg.AsyncConnection[Any]) -> AsyncIterator[None]:
    """The test's schema made first (the ledger and tableinator would race to create it);
    its queues deleted afterwards."""
    await pg.execute(f'CREATE SCHEMA IF NOT EXISTS "{namespace}"')
    yield
    await delete_dump_queues(namespace, (*ENTITIES, "replays"))


async def count(pg: psycopg.AsyncConnection[Any], query: str) -> Any:
    cur = await pg.execute(query)
    row = await cur.fetchone()
    assert row is not None
    return row[0] if len(row) == 1 else tuple(row)


async def slice_row(
    pg: psycopg.AsyncConnection[Any], namespace: str, job_id: str
) -> tuple[Any, ...]:
    return await ledger_row(
        pg,
        namespace,
        "SELECT status, records, pages, next_page, attempts, cursor, error_kind, last_error"
        " FROM {s}.slices WHERE job_id = %s",
        job_id,
    )


def readable(path: Path) -> int:
    """Records the reader yields from a (maybe broken) file before any error."""
    records = 0
    try:
        for _ in iter_records(path):
            records += 1
    except DumpTruncatedError:
        pass
    return records


async def test_discogs_samples_run_into_both_stores_newest_dump_only(
    tmp_path: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    neo4j_driver: AsyncDriver,
    dump_queues: None,
) -> None:
    files = tmp_path / "discogs"
    files.mkdir()
    for entity in ENTITIES:
        gzipped_copy(sample(entity), files)
        (files / f"discogs_20981201_{entity}.xml.gz").write_bytes(b"not read")
    write_releases(files / "discogs_20981201_releases.xml.gz", 20)  # ids 1..20: an older month
    spec = discogs_spec(tmp_path / "discogs.yaml", namespace, files, page_size=2)
    data = {entity: list(iter_records(sample(entity))) for entity in ENTITIES}
    async with running_consumers(spec, namespace):
        report = await run_backfill(dump_settings(spec, namespace), JobOptions(wait_timeout=60))
    assert report.ok, report.as_dict()
    for entity in ENTITIES:
        table = f'"{namespace}".{entity}'
        assert await count(pg, f"SELECT count(*), count(DISTINCT key) FROM {table}") == (
            len(data[entity]),
            len(data[entity]),
        )
        assert report.entities[entity]["records"] == len(data[entity])
        assert report.landed["tableinator"][entity]["rows"] == len(data[entity])
    release_ids = {r["id"] for r in data["releases"]}
    assert set(await _column(pg, f'SELECT key FROM "{namespace}".releases')) == release_ids
    assert report.errors == {"skipped_record": 5}  # 2 artists, 1 master, 2 releases
    skipped = {f["file"]: f for f in report.files}
    assert skipped["discogs_20990101_releases.xml.gz"]["skip_samples"] == [
        "record 4: the record has no id",
        "record 5: the record id '-5' is not a positive 64-bit integer",
    ]
    assert await graph_edges(neo4j_driver) == expected_edges(data)
    assert await _relationships(neo4j_driver) == {
        "ALIAS_OF": 2, "BY": 6, "DERIVED_FROM": 2, "IS": 12, "MEMBER_OF": 3, "ON": 2,
        "SUBLABEL_OF": 2,
    }  # fmt: skip


async def _column(pg: psycopg.AsyncConnection[Any], query: str) -> list[Any]:
    cur = await pg.execute(query)
    return [row[0] for row in await cur.fetchall()]


async def _relationships(driver: AsyncDriver) -> dict[str, int]:
    async with driver.session() as session:
        result = await session.run("MATCH ()-[e]->() RETURN type(e), count(*)")
        return {kind: n for kind, n in await result.values()}


def test_a_missing_file_is_an_error_before_anything_is_published(tmp_path: Path) -> None:
    from common.spec import load_spec
    from extractor.backfill import plan

    spec = discogs_spec(tmp_path / "discogs.yaml", "missing", tmp_path)
    with pytest.raises(
        ConfigError, match=f"no file matches 'discogs_\\*_artists.xml.gz' in {tmp_path}"
    ):
        plan(load_spec(spec), JobOptions())


async def test_kill_9_mid_dump_then_resume_delivers_every_record_once(
    tmp_path: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    dump_queues: None,
) -> None:
    size, page_size, in_flight = 50_000, 100, 8
    files = tmp_path / "discogs"
    files.mkdir()
    write_releases(files / "discogs_20990101_releases.xml.gz", size)
    spec = table_only(
        discogs_spec(
            tmp_path / "discogs.yaml", namespace, files, entities=("releases",), page_size=page_size
        )
    )
    job_id = f"{namespace}-kill"
    log = tmp_path / "extractor.log"
    env = _env(spec, namespace, EXTRACTOR_MAX_IN_FLIGHT=str(in_flight))
    async with running_tableinator(spec, namespace), page_ids(namespace, "releases") as seen:
        with extractor_process(["run", "--job-id", job_id, "--no-wait"], env, log) as run:
            await wait_for(
                pg,
                namespace,
                "SELECT sum(pages) >= 100 FROM {s}.slices WHERE job_id = %s",
                job_id,
                seconds=40,
            )
            run.send_signal(signal.SIGKILL)
            run.wait(5)
        killed = await slice_row(pg, namespace, job_id)
        with extractor_process(["resume", job_id, "--wait-timeout", "40"], env, log) as resume:
            code = await wait_exit(resume, 55)
        await wait_until(lambda: len(set(seen)) >= size // page_size, 10)
    assert code == 0, log.read_text()[-4000:]
    status, records, pages, next_page, _, cursor, _, _ = killed
    assert status == "running" and 100 <= pages < size // page_size  # killed mid-file
    assert cursor == {"position": records} and records == pages * page_size
    assert await count(pg, f'SELECT count(*), count(DISTINCT key) FROM "{namespace}".releases') == (
        size,
        size,
    )
    done = await slice_row(pg, namespace, job_id)
    assert done[:5] == ("done", size, size // page_size, size // page_size, 2)
    # Resumed from the checkpoint: only pages in flight at the kill were published twice.
    assert len(set(seen)) == size // page_size
    assert len(seen) - len(set(seen)) <= in_flight, (len(seen), pages)
    assert f"attempt=2 page={next_page}" in log.read_text()


def _env(spec: Path, namespace: str, **extra: str) -> dict[str, str]:
    import os

    return dict(
        os.environ,
        DATASET_SPEC=str(spec),
        AMQP_CONSUMERS="tableinator",
        EXTRACTOR_LEDGER_SCHEMA=namespace,
        EXTRACTOR_LEASE_SECONDS="2",
        LOG_LEVEL="INFO",
        **extra,
    )


async def test_truncated_gzip_fails_the_slice_then_retry_failed_completes(
    tmp_path: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    dump_queues: None,
) -> None:
    size = 3_000
    files = tmp_path / "discogs"
    files.mkdir()
    complete = write_releases(tmp_path / "complete.xml.gz", size)
    broken = files / "discogs_20990101_releases.xml.gz"
    broken.write_bytes(complete.read_bytes()[: complete.stat().st_size * 6 // 10])
    before_break = readable(broken)
    spec = table_only(
        discogs_spec(
            tmp_path / "discogs.yaml", namespace, files, entities=("releases",), page_size=100
        )
    )
    settings = dump_settings(spec, namespace, amqp=AmqpSettings(amqp_consumers="tableinator"))
    job_id = f"{namespace}-cut"
    async with running_tableinator(spec, namespace):
        first = await run_backfill(settings, JobOptions(job_id=job_id, wait_timeout=60))
        failed = await job_report(settings, job_id)
        broken.write_bytes(complete.read_bytes())  # the download finished after all
        second = await retry_failed(settings, job_id, JobOptions(wait_timeout=60))
    assert first.status == "failed" and first.complete
    (message,) = first.failed_slices.values()
    assert message.startswith(f"dump_truncated: {broken}: the gzip stream ends before its end")
    assert 0 < before_break < size
    assert failed["records"] == before_break  # every complete record before the break
    assert failed["errors"] == {"dump_truncated": 1}
    assert failed["failed_slices"][0]["error_kind"] == "dump_truncated"
    assert second.ok, second.as_dict()
    assert await count(pg, f'SELECT count(*), count(DISTINCT key) FROM "{namespace}".releases') == (
        size,
        size,
    )
    status, records, _, _, attempts, _, _, _ = await slice_row(pg, namespace, job_id)
    assert (status, records, attempts) == ("done", size, 2)


def _flat_spec(path: Path, name: str, base_path: Path, form: str, entity: str, glob: str) -> Path:
    raw = {
        "name": name,
        "source": {"kind": "dump", "format": form, "base_path": str(base_path), "page_size": 2},
        "entities": {
            entity: {
                "path": glob,
                "key": "id",
                "table": {"name": entity, "columns": {"format": {"field": "format"}}},
            }
        },
    }
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("form", ["jsonl", "csv"])
async def test_jsonl_and_csv_dumps_end_to_end(
    tmp_path: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    dump_queues: None,
    form: str,
) -> None:
    files = tmp_path / "files"
    files.mkdir()
    if form == "jsonl":
        (files / "replays-1.jsonl.gz").write_bytes(
            gzip.compress((DATA / "replays.jsonl").read_bytes())
        )
        (files / "replays-2.jsonl").write_text('{"id": "gen9ou-9", "format": "gen9ou"}\n')
        expected, skipped = 4, 2
    else:
        rows = "".join(f'gen9ou-{i},gen9ou,"a, b"\n' for i in range(5))
        (files / "replays-1.csv").write_text("id,format,note\n" + rows + "bad,row\n")
        (files / "replays-2.csv.gz").write_bytes(gzip.compress(b"id,format,note\nx-1,ou,\r\n"))
        expected, skipped = 6, 1
    spec = _flat_spec(
        tmp_path / "flat.yaml", namespace, files, form, "replays", f"replays-*.{form}*"
    )
    settings = dump_settings(spec, namespace, amqp=AmqpSettings(amqp_consumers="tableinator"))
    async with running_tableinator(spec, namespace):
        report = await run_backfill(settings, JobOptions(wait_timeout=60))
    assert report.ok, report.as_dict()
    assert report.records == expected
    assert report.errors == {"skipped_record": skipped}
    assert sorted(report.entities) == ["replays"] and len(report.files) == 2
    assert await count(pg, f'SELECT count(DISTINCT key) FROM "{namespace}".replays') == expected
    formats = await _column(pg, f'SELECT DISTINCT format FROM "{namespace}".replays')
    assert set(formats) <= {"gen9ou", "ou"}
