"""Source auth: secrets from the environment or ``*_FILE`` only, sent on every request, and
never in a log line, the ledger or a report (grepped after real jobs)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from common.errors import ConfigError
from common.spec_source import ApiKeyAuth, BasicAuth, BearerAuth
from demoapi import Dataset, serve_demo_api
from extractor.backfill import JobOptions, run_backfill
from extractor.sources.auth import credentials
from tests.extractor.support import extractor_settings, table_counts
from tests.extractor.test_pagination_jobs import SHAPES, run_job, shaped, work_queue_deleted

__all__ = ["work_queue_deleted"]  # the fixture, shared

SECRET = "s3cr3t-token-9f8e7d"
AUTHS: dict[str, dict[str, Any]] = {
    "bearer": {"kind": "bearer", "token_env": "DEMO_TOKEN"},
    "api_key_header": {"kind": "api_key", "key_env": "DEMO_TOKEN"},
    "api_key_query": {
        "kind": "api_key",
        "name": "api_key",
        "location": "query",
        "key_env": "DEMO_TOKEN",
    },
    "basic": {"kind": "basic", "username_env": "DEMO_USER", "password_env": "DEMO_TOKEN"},
}


def test_secrets_come_from_the_environment_or_a_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text(SECRET + "\n")
    bearer = BearerAuth(kind="bearer", token_env="TOKEN")
    assert credentials(bearer, {"TOKEN": SECRET}).headers == {"Authorization": f"Bearer {SECRET}"}
    from_file = credentials(bearer, {"TOKEN_FILE": str(secret_file)})
    assert from_file.headers == {"Authorization": f"Bearer {SECRET}"}
    query = credentials(
        ApiKeyAuth(kind="api_key", key_env="K", location="query", name="k"), {"K": "v"}
    )
    assert query.apply({"a": 1}) == {"a": 1, "k": "v"} and query.headers == {}
    assert (
        query.without_auth_params("http://h/x?page=2&k=v") == "http://h/x?page=2"
    )  # kept out of checkpoints
    basic = credentials(
        BasicAuth(kind="basic", username_env="U", password_env="P"), {"U": "u", "P": SECRET}
    )
    assert basic.headers["Authorization"].startswith("Basic ")
    assert SECRET not in basic.redact(f"GET /x?p={SECRET} {basic.headers['Authorization']}")
    with pytest.raises(ConfigError, match="TOKEN or TOKEN_FILE"):
        credentials(bearer, {})


@pytest.mark.parametrize("kind", list(AUTHS))
async def test_an_authenticated_job_lands_everything_and_leaks_no_secret(
    kind: str,
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("DEMO_TOKEN", SECRET)
    monkeypatch.setenv("DEMO_USER", "demo")
    raw = yaml.safe_load(demo_spec_file.read_text())
    raw["source"]["auth"] = AUTHS[kind]
    demo_spec_file.write_text(yaml.safe_dump(raw))
    spec = shaped(demo_spec_file, SHAPES["link_header"])
    caplog.set_level(logging.DEBUG)
    report, ledger, served = await run_job(
        spec, namespace, Dataset(size=600, days=3), auth_token=SECRET, error_rate=0.1
    )
    assert report.ok, report.as_dict()
    assert await table_counts(pg, namespace) == (600, 600)
    assert "401" not in served
    await assert_no_secret(pg, namespace, caplog.text + str(report.as_dict()) + str(ledger))


async def test_a_job_with_the_wrong_secret_is_refused_before_planning_without_showing_it(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("DEMO_TOKEN", "wrong-" + SECRET)
    raw = yaml.safe_load(demo_spec_file.read_text())
    raw["source"]["auth"] = AUTHS["api_key_query"]
    demo_spec_file.write_text(yaml.safe_dump(raw))
    spec = shaped(demo_spec_file, SHAPES["offset"])
    caplog.set_level(logging.DEBUG)
    async with serve_demo_api(Dataset(size=300, days=3), auth_token=SECRET) as url:
        settings = extractor_settings(spec, url, namespace)
        with pytest.raises(ConfigError, match="HTTP 401") as refused:
            await run_backfill(settings, JobOptions(wait_timeout=30))
    await assert_no_secret(pg, namespace, caplog.text + str(refused.value))


async def assert_no_secret(pg: psycopg.AsyncConnection[Any], namespace: str, text: str) -> None:
    """Neither the text nor any row of any table of the test's schema holds the secret."""
    assert SECRET not in text
    cur = await pg.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (namespace,)
    )
    for (table,) in await cur.fetchall():
        rows = await pg.execute(f'SELECT t::text FROM "{namespace}"."{table}" t')
        dump = "\n".join(row[0] for row in await rows.fetchall())
        assert SECRET not in dump, table
