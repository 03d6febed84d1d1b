"""OAuth 2.0 client credentials against the demo API's token endpoint: one token request
for many concurrent requests, refreshed before expiry and after a revocation (401), both
client authentication methods, a refused client stopped before planning with one line,
and neither the secret nor a token in the logs, the ledger, the report, the metrics or the
dead letters' headers after real jobs."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import psycopg
import pytest
import yaml
from aiohttp import web
from prometheus_client import generate_latest

from common.errors import SpecError
from common.resilience import Backoff
from common.settings import AmqpSettings
from common.spec import parse_spec
from common.spec_source import OAuth2ClientCredentials
from common.topology import Topology
from demoapi import Dataset, serve_demo_api
from extractor.backfill import JobOptions, job_report, run_backfill
from extractor.pacing.ratelimit import AdaptiveRateLimiter
from extractor.reporting.report_data import load_report
from extractor.reporting.report_file import write_report
from extractor.sources.auth import Credentials, credentials
from extractor.sources.fetch import JsonFetcher, SourceError
from extractor.sources.oauth import (
    ClientCredentials,
    TokenProvider,
    TokenRefused,
    TokenUnavailable,
    refresh_time,
)
from tests.extractor.support import (
    extractor_env,
    extractor_settings,
    running_tableinator,
    table_counts,
)
from tests.extractor.test_pagination_jobs import SHAPES, shaped, work_queue_deleted

__all__ = ["work_queue_deleted"]  # the fixture, shared

CLIENT_ID, SECRET = "demo-client", "0auth-s3cret-7c6b5a"
ENV = {"DEMO_CLIENT_ID": CLIENT_ID, "DEMO_CLIENT_SECRET": SECRET}
QUICK = Backoff(base=0.01, cap=0.02)
METHODS = ["client_secret_basic", "client_secret_post"]


def oauth(method: str = "client_secret_basic") -> dict[str, Any]:
    return {
        "kind": "oauth2_client_credentials",
        "token_url": "/oauth/token",
        "client_id_env": "DEMO_CLIENT_ID",
        "client_secret_env": "DEMO_CLIENT_SECRET",
        "scope": "replays:read",
        "auth_method": method,
    }


def provider(url: str, method: str, secret: str = SECRET) -> TokenProvider:
    spec = OAuth2ClientCredentials.model_validate(oauth(method))
    env = {"DEMO_CLIENT_ID": CLIENT_ID, "DEMO_CLIENT_SECRET": secret}
    tokens = credentials(spec, env, base_url=url).tokens
    assert tokens is not None
    return tokens


def test_the_secret_is_sent_only_as_the_method_says_and_redacted() -> None:
    basic = ClientCredentials("http://h/oauth/token", "id:x", "s e/c", scope="a b")
    form, headers = basic.request()
    assert form == {"grant_type": "client_credentials", "scope": "a b"}
    assert headers["Authorization"] == f"Basic {basic.basic_pair}"
    post = ClientCredentials("http://h/oauth/token", "id", "sec", basic=False)
    form, headers = post.request()
    assert form["client_secret"] == "sec" and "Authorization" not in headers
    spec = OAuth2ClientCredentials.model_validate(oauth())
    creds = credentials(spec, ENV, base_url="http://api:1/")
    assert creds.tokens is not None and creds.tokens.client.token_url == "http://api:1/oauth/token"
    assert SECRET not in creds.redact(f"x {SECRET} {creds.tokens.client.basic_pair}")
    assert refresh_time(3600, 0) == 3570 and refresh_time(10, 0) == 9


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"token_url": "ftp://host/token"}, "source.auth.token_url"),
        ({"client_secret": "inline"}, "source.auth.client_secret"),  # only from the env
        ({"auth_method": "private_key_jwt"}, "source.auth.auth_method"),
    ],
)
def test_a_bad_oauth_spec_names_the_field(
    demo_spec_file: Path, change: dict[str, str], field: str
) -> None:
    raw = yaml.safe_load(demo_spec_file.read_text())
    raw["source"]["auth"] = {**oauth(), **change}
    with pytest.raises(SpecError) as caught:
        parse_spec(raw, "spec.yaml")
    assert caught.value.field == field


@pytest.mark.parametrize("method", METHODS)
async def test_twenty_concurrent_requests_fetch_one_token(method: str) -> None:
    async with (
        serve_demo_api(Dataset(size=10), oauth_client_secret=SECRET) as url,
        aiohttp.ClientSession() as session,
    ):
        tokens = provider(url, method)
        headers = await asyncio.gather(*(tokens.authorization(session) for _ in range(20)))
        assert len(set(headers)) == 1 and tokens.requests == 1
        token = headers[0].removeprefix("Bearer ")
        assert Credentials(tokens=tokens).redact(f"x {token} y") == "x *** y"  # out of errors
        async with session.get(f"{url}/search.json", headers={"Authorization": headers[0]}) as r:
            assert r.status == 200
        await tokens.refused(session, headers[0])  # a 401 to this token: a new one, once
        await tokens.refused(session, headers[0])  # a second 401 to it changes nothing
        assert tokens.requests == 2 and await tokens.authorization(session) != headers[0]
        assert (await stats(url))["token_requests"] == 2


async def test_a_failing_token_endpoint_is_retried_with_backoff_and_a_second_401_is_final() -> None:
    """A token endpoint that answers 503 twice, then tokens; an API that refuses one token
    (a 401, refreshed and retried) and then refuses every request: the second 401 fails."""
    issued: list[str] = []

    async def token(_request: web.Request) -> web.Response:
        issued.append(f"t{len(issued)}")
        if len(issued) <= 2:
            return web.json_response({"error": "temporarily_unavailable"}, status=503)
        return web.json_response({"access_token": issued[-1], "expires_in": 3600})

    async def page(request: web.Request) -> web.Response:
        accepted = request.headers["Authorization"] == "Bearer t3" and len(issued) < 6
        return web.json_response([1]) if accepted else web.json_response({}, status=401)

    app = web.Application()
    app.router.add_post("/oauth/token", token)
    app.router.add_get("/page", page)
    async with serving(app) as url, aiohttp.ClientSession() as session:
        creds = credentials(OAuth2ClientCredentials.model_validate(oauth()), ENV, base_url=url)
        limiter = AdaptiveRateLimiter(1000, 1000)
        source = JsonFetcher(session, url, limiter, max_retries=3, backoff=QUICK, credentials=creds)
        errors: Counter[str] = Counter()
        assert await source.get("/page", {}, errors) == [1]  # t0, t1: 503; t2 refused; t3
        assert errors == {"oauth_unavailable": 2} and issued == ["t0", "t1", "t2", "t3"]
        issued.extend(["x", "y"])  # from now on every request is refused
        with pytest.raises(SourceError, match="HTTP 401"):
            await source.get("/page", {}, Counter())
    assert len(issued) == 7  # one refresh after the first 401, none after the second


async def test_a_refused_client_fails_the_request_without_retries() -> None:
    async with (
        serve_demo_api(Dataset(size=10), oauth_client_secret="rotated") as url,
        aiohttp.ClientSession() as session,
    ):
        creds = credentials(OAuth2ClientCredentials.model_validate(oauth()), ENV, base_url=url)
        source = JsonFetcher(
            session, url, AdaptiveRateLimiter(1000, 1000), max_retries=3, credentials=creds
        )
        errors: Counter[str] = Counter()
        with pytest.raises(SourceError, match="invalid_client") as refused:
            await source.get("/search.json", {}, errors)
        assert errors == {"oauth_invalid_client": 1} and source.retries == 0
        assert (await stats(url))["token_requests"] == 1
    assert refused.value.kind == "oauth_invalid_client"


async def test_requests_waiting_on_a_failed_token_request_fail_with_it() -> None:
    answered: list[int] = []

    async def token(_request: web.Request) -> web.Response:
        answered.append(503)
        return web.json_response({"error": "temporarily_unavailable"}, status=503)

    app = web.Application()
    app.router.add_post("/oauth/token", token)
    async with serving(app) as url, aiohttp.ClientSession() as session:
        tokens = provider(url, "client_secret_basic")
        waiting = (tokens.authorization(session) for _ in range(20))
        failed = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(exc, TokenUnavailable) for exc in failed) and answered == [503]
        with pytest.raises(TokenUnavailable):  # a later request asks again
            await tokens.authorization(session)
    assert answered == [503, 503]


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_a_wrong_secret_is_refused_with_the_oauth_error_code() -> None:
    async with (
        serve_demo_api(Dataset(size=10), oauth_client_secret=SECRET) as url,
        aiohttp.ClientSession() as session,
    ):
        with pytest.raises(TokenRefused, match="HTTP 401 invalid_client") as refused:
            await provider(url, "client_secret_post", "wrong").authorization(session)
    assert f"{url}/oauth/token" in str(refused.value)


@pytest.mark.parametrize("method", METHODS)
async def test_tokens_that_expire_during_a_job_are_refreshed_and_every_record_lands(
    method: str,
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    spec = oauth_spec(demo_spec_file, method, monkeypatch)
    caplog.set_level(logging.DEBUG)
    # A slice's 13 pages follow each other, 100 ms each at least: 1.3 s, while a token is
    # used for 0.27 s; the check before the job and its estimate ask for one token each.
    knobs = {"token_ttl": 0.3, "latency_ms": 100, "fixed_page_size": 20}
    report, text, served = await run_oauth_job(spec, namespace, 600, tmp_path, **knobs)
    assert report.ok, report.as_dict()
    assert await table_counts(pg, namespace) == (600, 600)
    assert 2 + 4 <= served["token_requests"] < served["requests"]["200"], served
    await assert_no_secret(pg, namespace, caplog.text + text)


async def test_a_token_revoked_mid_job_is_replaced_on_401_and_dead_letters_hold_no_secret(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    spec = oauth_spec(demo_spec_file, "client_secret_basic", monkeypatch)
    raw = yaml.safe_load(spec.read_text())
    raw["entities"]["replays"]["key"] = "winner"  # a few replays have none: dead letters
    spec.write_text(yaml.safe_dump(raw))
    caplog.set_level(logging.DEBUG)
    knobs = {"token_revoke_after": 5, "fixed_page_size": 20}
    report, text, served = await run_oauth_job(spec, namespace, 600, tmp_path, **knobs)
    assert report.ok, report.as_dict()
    assert served["requests"]["401"] > 0 and served["token_requests"] >= 2, served
    assert not report.failed_slices, report.as_dict()
    headers = await dead_letter_headers(namespace)
    assert headers, "the replays without a winner are dead-lettered"
    await assert_no_secret(pg, namespace, caplog.text + text + str(headers))


async def test_plan_with_a_wrong_secret_exits_2_with_one_line(
    demo_spec_file: Path, namespace: str, tmp_path: Path
) -> None:
    spec = oauth_spec(demo_spec_file, "client_secret_basic", None)
    secret_file = tmp_path / "secret"
    secret_file.write_text("wrong-" + SECRET)
    env = {"DEMO_CLIENT_ID": CLIENT_ID, "DEMO_CLIENT_SECRET_FILE": str(secret_file)}
    async with serve_demo_api(Dataset(size=10), oauth_client_secret=SECRET) as url:
        settings = extractor_env(spec, url, namespace, **env)
        settings.pop("DEMO_CLIENT_SECRET", None)  # the file's wrong secret, not the right one
        result = await extractor(["plan"], settings, tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "/oauth/token" in lines[0] and "invalid_client" in lines[0]
    assert SECRET not in result.stdout + result.stderr and "Traceback" not in result.stderr


async def test_the_cli_job_prints_and_writes_no_secret(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
    tmp_path: Path,
) -> None:
    """``extractor run`` in a process of its own, logging at DEBUG: its output, the report
    file it leaves and the ledger hold neither the secret nor its Basic form."""
    spec = oauth_spec(demo_spec_file, "client_secret_basic", None)
    env = {**ENV, "LOG_LEVEL": "DEBUG"}
    knobs = {"token_ttl": 0.5, "token_revoke_after": 10, "fixed_page_size": 20}
    async with (
        serve_demo_api(Dataset(size=300, days=3), oauth_client_secret=SECRET, **knobs) as url,
        running_tableinator(spec, namespace),
    ):
        result = await extractor(["run"], extractor_env(spec, url, namespace, **env), tmp_path)
        served = await stats(url)
    assert result.returncode == 0, result.stderr[-2000:]
    assert served["requests"]["401"] > 0 and served["token_requests"] > 3, served
    assert await table_counts(pg, namespace) == (300, 300)
    reports = [path.read_text() for path in (tmp_path / "reports").glob("*.md")]
    assert len(reports) == 1
    await assert_no_secret(pg, namespace, result.stdout + result.stderr + reports[0])


async def extractor(
    args: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """``python -m extractor ARGS`` to its end, its output captured."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "extractor",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return subprocess.CompletedProcess(args, process.returncode, out.decode(), err.decode())


def oauth_spec(spec: Path, method: str, monkeypatch: pytest.MonkeyPatch | None) -> Path:
    """The demo spec paged by timestamp (each slice's pages in sequence), with OAuth."""
    if monkeypatch is not None:
        for name, value in ENV.items():
            monkeypatch.setenv(name, value)
    raw = yaml.safe_load(spec.read_text())
    raw["source"]["auth"] = oauth(method)
    spec.write_text(yaml.safe_dump(raw))
    return shaped(spec, SHAPES["before_timestamp"])


async def run_oauth_job(
    spec: Path, namespace: str, size: int, tmp_path: Path, **knobs: Any
) -> tuple[Any, str, dict[str, Any]]:
    """Run a job into tableinator; its report, the ledger's report as text (and its file,
    and the metrics text), and the demo API's stats."""
    dataset = Dataset(size=size, days=3)
    async with (
        serve_demo_api(dataset, oauth_client_secret=SECRET, **knobs) as url,
        running_tableinator(spec, namespace),
    ):
        settings = extractor_settings(spec, url, namespace)
        report = await run_backfill(settings, JobOptions(wait_timeout=60))
        ledger = await job_report(settings, report.job_id)
        write_report(await load_report(settings, report.job_id), tmp_path / "report.md")
        served = await stats(url)
    written = (tmp_path / "report.md").read_text()
    text = str(report.as_dict()) + str(ledger) + written + generate_latest().decode()
    return report, text, served


async def stats(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/stats.json") as response:
        body: dict[str, Any] = await response.json()
    return body


async def dead_letter_headers(namespace: str) -> list[dict[str, Any]]:
    """The headers of every dead letter of the job (left in the queue)."""
    name = Topology.dead_letter_queue_name("tableinator", namespace, "replays")
    connection = await aio_pika.connect(AmqpSettings().url)
    found: list[dict[str, Any]] = []
    async with connection, connection.channel() as channel:
        queue = await channel.declare_queue(name, passive=True)
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            found.append(dict(message.headers or {}))
    return found


async def assert_no_secret(pg: psycopg.AsyncConnection[Any], namespace: str, text: str) -> None:
    """Neither the secret nor its Basic form is in the text or in any row of the test's
    schema (the ledger's tables and the replays table)."""
    pair = ClientCredentials("", CLIENT_ID, SECRET).basic_pair
    assert SECRET not in text and pair not in text
    cur = await pg.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (namespace,)
    )
    tables = [table for (table,) in await cur.fetchall()]
    assert len(tables) > 1
    for table in tables:
        rows = await pg.execute(f'SELECT t::text FROM "{namespace}"."{table}" t')
        dump = "\n".join(row[0] for row in await rows.fetchall())
        assert SECRET not in dump and pair not in dump, table
