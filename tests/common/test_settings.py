"""Settings: the environment names users tune, secrets from files, no secret in reprs."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.errors import ConfigError
from common.settings import (
    GraphinatorSettings,
    PostgresSettings,
    TableinatorSettings,
    consumer_settings,
)


def test_batch_settings_use_the_store_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_BATCH_SIZE", "777")
    monkeypatch.setenv("POSTGRES_BATCH_FLUSH_INTERVAL", "2.5")
    monkeypatch.setenv("NEO4J_BATCH_SIZE", "55")
    assert consumer_settings("POSTGRES").batch_size == 777
    assert consumer_settings("POSTGRES").batch_flush_interval == 2.5
    assert consumer_settings("NEO4J").batch_size == 55
    assert TableinatorSettings().batch.batch_size == 777


def test_password_from_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret-from-file\n")
    monkeypatch.setenv("POSTGRES_PASSWORD_FILE", str(secret))
    monkeypatch.delenv("POSTGRES_PASSWORD", raising=False)
    settings = PostgresSettings()
    assert settings.postgres_password.get_secret_value() == "s3cret-from-file"
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in settings.redacted()


def test_unreadable_secret_file_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_PASSWORD_FILE", "/nonexistent/pw")
    monkeypatch.delenv("POSTGRES_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="POSTGRES_PASSWORD_FILE"):
        PostgresSettings()


def test_store_defaults_yield_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert GraphinatorSettings().batch.writes_in_flight == 2
    assert TableinatorSettings().batch.writes_in_flight == 2
    monkeypatch.setenv("POSTGRES_WRITES_IN_FLIGHT", "1")
    assert TableinatorSettings().batch.writes_in_flight == 1
    monkeypatch.setenv("NEO4J_WRITES_IN_FLIGHT", "3")
    assert GraphinatorSettings().batch.writes_in_flight == 3
