"""docker-compose.yml: no password in it, no guest user, ports on 127.0.0.1 only and only
those its header (and the README) lists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
SECRET_NAMES = re.compile(r"(PASSWORD|_PASS|NEO4J_AUTH|SECRET|TOKEN|AMQP_CONNECTION)_?(_FILE)?$")


def services() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def test_no_secret_has_a_value_in_the_file() -> None:
    for name, service in services().items():
        for key, value in dict(service.get("environment") or {}).items():
            if SECRET_NAMES.search(key):
                assert key.endswith("_FILE") and str(value).startswith("/run/secrets/"), (
                    name,
                    key,
                )
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", str(value)), (name, key)
    assert "guest" not in COMPOSE.read_text().replace("the guest user is never created", "")


def test_ports_are_published_on_loopback_and_listed_in_the_header() -> None:
    header = COMPOSE.read_text().split("# Ports are published on 127.0.0.1 only:")[1][:400]
    for name, service in services().items():
        for port in service.get("ports") or []:
            host, published, _ = str(port).split(":")
            assert host == "127.0.0.1", (name, port)
            assert published in header, (name, port)
