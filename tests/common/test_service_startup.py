"""A consumer waiting for its store at start-up still answers SIGTERM at once, with exit 0."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest

from tests.support.processes import running, service_env


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize(
    ("service", "store"),
    [
        ("tableinator", {"POSTGRES_ADDRESS": "127.0.0.1:{port}"}),
        ("graphinator", {"NEO4J_ADDRESS": "bolt://127.0.0.1:{port}"}),
        ("tableinator", {"AMQP_CONNECTION": "amqp://guest:guest@127.0.0.1:{port}/"}),
    ],
    ids=["postgres-down", "neo4j-down", "rabbitmq-down"],
)
def test_sigterm_while_the_store_is_down(
    service: str, store: dict[str, str], demo_spec_file: Path, namespace: str, tmp_path: Path
) -> None:
    port = closed_port()
    env = service_env(
        demo_spec_file, namespace, **{k: v.format(port=port) for k, v in store.items()}
    )
    log = tmp_path / "service.log"
    with running(service, env, log) as process:
        deadline = time.monotonic() + 20
        while "starting service" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # well into the retries
        assert process.poll() is None, log.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0, log.read_text()
    assert "stopped before consuming anything" in log.read_text()


@pytest.mark.parametrize("service", ["tableinator", "graphinator"])
def test_sigterm_during_the_imports(
    service: str, demo_spec_file: Path, namespace: str, tmp_path: Path
) -> None:
    env = service_env(demo_spec_file, namespace)
    with running(service, env, tmp_path / "service.log") as process:
        time.sleep(0.3)  # the interpreter is importing the service's modules
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
