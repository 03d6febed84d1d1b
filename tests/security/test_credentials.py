"""Credentials never appear in logs, metrics, health, reports or exception messages.

A PostgreSQL role and a RabbitMQ user are created with known random passwords, a Neo4j
password is set (the local Neo4j runs without auth, so the driver sends it and the server
ignores it), a small job runs through all three services, then each service is pointed at
a port nothing listens on and at a wrong password. Everything they printed, served or
raised is searched for the passwords and the full connection URLs.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import psycopg
import pytest
from aio_pika.abc import AbstractChannel
from neo4j import AsyncDriver, AsyncGraphDatabase

from common.settings import (
    AmqpSettings,
    GraphinatorSettings,
    Neo4jSettings,
    PostgresSettings,
    TableinatorSettings,
)
from demoapi import Dataset, serve_demo_api
from tests.security.accounts import Account, postgres_role, rabbitmq_user

Found = list[tuple[str, str]]  # (where, text)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_process(
    args: list[str], env: dict[str, str], seconds: float, stop: asyncio.Event | None = None
) -> tuple[int | None, str]:
    """``python -m args`` until it exits, ``stop`` is set or ``seconds`` pass (then
    SIGTERM); its exit code and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    reader = asyncio.create_task(process.communicate())
    stopped = asyncio.create_task((stop or asyncio.Event()).wait())
    await asyncio.wait({reader, stopped}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not reader.done():
        process.send_signal(signal.SIGTERM)
        done, _ = await asyncio.wait({reader}, timeout=15)
        if not done:  # e.g. a consumer still retrying its start-up against a closed port
            process.kill()
    output, _ = await asyncio.wait_for(reader, 30)
    return process.returncode, output.decode(errors="replace")


def job_env(spec: Path, namespace: str, creds: dict[str, str], **extra: str) -> dict[str, str]:
    env = dict(
        os.environ,
        DATASET_SPEC=str(spec),
        POSTGRES_SCHEMA=namespace,
        EXTRACTOR_LEDGER_SCHEMA=namespace,
        LOG_LEVEL="DEBUG",
        POSTGRES_BATCH_FLUSH_INTERVAL="0.2",
        NEO4J_BATCH_FLUSH_INTERVAL="0.2",
    )
    env.update(creds, **extra)
    return env


async def get_text(url: str) -> str:
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(url) as response:
                    return f"{response.status} {await response.text()}"
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never answered")


async def run_job(spec: Path, namespace: str, creds: dict[str, str], tmp_path: Path) -> Found:
    """The consumers and an extractor job with these credentials; what they all showed."""
    found: Found = []
    stop = asyncio.Event()
    ports = {"tableinator": free_port(), "graphinator": free_port()}
    consumers = {
        name: asyncio.create_task(
            run_process([name], job_env(spec, namespace, creds, METRICS_PORT=str(port)), 120, stop)
        )
        for name, port in ports.items()
    }
    job = f"{namespace}-creds"
    async with serve_demo_api(Dataset(size=300)) as url:
        env = job_env(spec, namespace, creds, EXTRACTOR_SOURCE_URL=url)
        run = ["extractor", "run", "--job-id", job, "--report-json", str(tmp_path / "r.json")]
        code, output = await run_process(run, env, 100)
        assert code == 0, output
        found += [("extractor run", output), ("report.json", (tmp_path / "r.json").read_text())]
        for command in (["report", job, "--json"], ["status", job, "--json"], ["status"]):
            _, output = await run_process(["extractor", *command], env, 60)
            found.append((f"extractor {' '.join(command)}", output))
    for name, port in ports.items():
        for path in ("metrics", "health"):
            found.append((f"{name} /{path}", await get_text(f"http://127.0.0.1:{port}/{path}")))
    stop.set()
    for name, task in consumers.items():
        code, output = await task
        assert code == 0, output  # drained and exited on SIGTERM
        found.append((f"{name} output", output))
    return found


async def failing_connections(
    spec: Path, namespace: str, creds: dict[str, str], wrong: str
) -> Found:
    """Each service pointed at a closed port, and at a wrong password: what it printed."""
    closed = free_port()
    mq_user = creds["AMQP_CONNECTION"].split("//")[1].split(":")[0]
    attempts: list[tuple[str, list[str], dict[str, str]]] = [
        (
            "extractor, broker port closed",
            ["extractor", "run", "--no-wait"],
            {"AMQP_CONNECTION": creds["AMQP_CONNECTION"].replace(":5672/", f":{closed}/")},
        ),
        (
            "extractor, wrong broker password",
            ["extractor", "run", "--no-wait"],
            {"AMQP_CONNECTION": f"amqp://{mq_user}:{wrong}@127.0.0.1:5672/"},
        ),
        (
            "extractor, database port closed",
            ["extractor", "status"],
            {"POSTGRES_ADDRESS": f"127.0.0.1:{closed}"},
        ),
        (
            "tableinator, database port closed",
            ["tableinator"],
            {"POSTGRES_ADDRESS": f"127.0.0.1:{closed}"},
        ),
        ("tableinator, wrong database password", ["tableinator"], {"POSTGRES_PASSWORD": wrong}),
        (
            "graphinator, Neo4j port closed",
            ["graphinator"],
            {"NEO4J_ADDRESS": f"bolt://127.0.0.1:{closed}"},
        ),
    ]
    found: Found = []
    for what, args, override in attempts:
        env = job_env(spec, namespace, {**creds, **override})
        _, output = await run_process(args, env, 8)
        assert output.strip(), what  # something was said about the failure
        found.append((what, output))
    return found


async def exception_texts(creds: dict[str, str]) -> Found:
    """The messages of the exceptions the drivers raise for a refused connection."""
    closed = free_port()
    found: Found = []
    amqp = creds["AMQP_CONNECTION"].replace(":5672/", f":{closed}/")
    postgres = PostgresSettings(
        postgres_address=f"127.0.0.1:{closed}",
        postgres_username=creds["POSTGRES_USERNAME"],
        postgres_password=creds["POSTGRES_PASSWORD"],
    )
    neo4j = AsyncGraphDatabase.driver(
        f"bolt://127.0.0.1:{closed}", auth=("neo4j", creds["NEO4J_PASSWORD"])
    )
    attempts: dict[str, Any] = {
        "aio_pika.connect": lambda: aio_pika.connect(amqp, timeout=5),
        "psycopg connect": lambda: psycopg.AsyncConnection.connect(postgres.conninfo),
        "neo4j verify_connectivity": neo4j.verify_connectivity,
    }
    for what, attempt in attempts.items():
        with pytest.raises(Exception) as caught:  # any error: its text is what is searched
            await attempt()
        found.append((what, f"{caught.value!s} {caught.value!r} {caught.getrepr()}"))
    await neo4j.close()
    amqp_settings = AmqpSettings(amqp_connection=creds["AMQP_CONNECTION"])
    for settings in (
        TableinatorSettings(amqp=amqp_settings, postgres=postgres),
        GraphinatorSettings(neo4j=Neo4jSettings(neo4j_password=creds["NEO4J_PASSWORD"])),
    ):
        found.append(("settings", f"{settings!s} {settings!r} {settings.model_dump_json()}"))
    found.append(("redacted", postgres.redacted()))
    return found


def leaks(found: Found, secrets_: list[str]) -> list[str]:
    return [
        f"{secret[:6]}... in {where}"
        for where, text in found
        for secret in secrets_
        if secret in text
    ]


async def test_no_credential_appears_anywhere(
    demo_spec_file: Path,
    namespace: str,
    neo4j_driver: AsyncDriver,
    amqp: AbstractChannel,
    tmp_path: Path,
) -> None:
    neo4j_password, wrong = "pw" + secrets.token_hex(16), "pw" + secrets.token_hex(16)
    with postgres_role(namespace) as pg, rabbitmq_user(namespace) as mq:
        creds = credentials(pg, mq, neo4j_password)
        found = await run_job(demo_spec_file, namespace, creds, tmp_path)
        found += await failing_connections(demo_spec_file, namespace, creds, wrong)
        found += await exception_texts(creds)
    async with neo4j_driver.session() as session:
        record = await (await session.run("MATCH (n:Replay) RETURN count(n) AS c")).single()
    assert record is not None and record["c"] == 300  # the job really ran with these accounts
    secrets_ = [pg.password, mq.password, neo4j_password, wrong, creds["AMQP_CONNECTION"]]
    secrets_ += [
        PostgresSettings(
            **{k.lower(): v for k, v in creds.items() if k.startswith("POSTGRES")}
        ).conninfo
    ]
    assert leaks(found, secrets_) == []
    assert leaks([("canary", f"x{mq.password}y")], secrets_)  # the search itself works
    assert any("127.0.0.1" in text for _, text in found[-9:])  # the errors were captured


def credentials(pg: Account, mq: Account, neo4j_password: str) -> dict[str, str]:
    return {
        "AMQP_CONNECTION": f"amqp://{mq.user}:{mq.password}@127.0.0.1:5672/",
        "POSTGRES_USERNAME": pg.user,
        "POSTGRES_PASSWORD": pg.password,
        "NEO4J_PASSWORD": neo4j_password,
    }
