"""Throwaway accounts with known random passwords: a PostgreSQL role, a RabbitMQ user."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The package's own script, not /usr/sbin/rabbitmqctl: that wrapper switches to the rabbitmq
# user, whose HOME (and Erlang cookie) is not the one of the node scripts/services.sh runs.
PACKAGE_CTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
RABBITMQCTL = str(PACKAGE_CTL) if PACKAGE_CTL.exists() else shutil.which("rabbitmqctl") or ""


@dataclass(frozen=True)
class Account:
    user: str
    password: str


def new_account(prefix: str) -> Account:
    # hex only: the same text whether it appears raw or URL-quoted
    return Account(f"{prefix}_{secrets.token_hex(3)}", "pw" + secrets.token_hex(16))


def run_psql(sql: str) -> None:
    """As the local cluster's superuser (scripts/services.sh runs Debian's cluster)."""
    done = subprocess.run(
        ["runuser", "-u", "postgres", "--", "psql", "-v", "ON_ERROR_STOP=1", "-d", "backfill"],
        input=sql,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot run psql as the postgres superuser here: {done.stderr.strip()}")


@contextmanager
def postgres_role(prefix: str) -> Iterator[Account]:
    """A login role that may create schemas in the backfill database."""
    account = new_account(prefix)
    run_psql(
        f"CREATE ROLE {account.user} LOGIN PASSWORD '{account.password}';"
        f" GRANT CREATE, CONNECT ON DATABASE backfill TO {account.user};"
    )
    try:
        yield account
    finally:
        run_psql(f"DROP OWNED BY {account.user} CASCADE; DROP ROLE {account.user};")


def rabbitmq_env() -> dict[str, str]:
    """What scripts/services.sh sets for the node it runs (rabbitmq_env there)."""
    return dict(
        os.environ,
        HOME=str(REPO / ".local/rabbitmq"),  # the Erlang cookie
        RABBITMQ_NODENAME="rabbit@localhost",
        RABBITMQ_USE_LONGNAME="false",
        ERL_EPMD_ADDRESS="127.0.0.1",
    )


def rabbitmqctl(*args: str) -> None:
    done = subprocess.run(
        [RABBITMQCTL, *args],
        env=rabbitmq_env(),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"rabbitmqctl {args[0]} failed (a broker of another checkout?): {done.stderr}")


@contextmanager
def rabbitmq_user(prefix: str) -> Iterator[Account]:
    """A user with every permission on the default vhost."""
    account = new_account(prefix)
    rabbitmqctl("add_user", account.user, account.password)
    try:
        rabbitmqctl("set_permissions", "-p", "/", account.user, ".*", ".*", ".*")
        yield account
    finally:
        rabbitmqctl("delete_user", account.user)
