"""Typed settings read once from environment variables (secrets also from ``*_FILE``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from psycopg.conninfo import make_conninfo
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.errors import ConfigError


def secret_from_file(variable: str, path: str) -> str:
    """The secret in the file ``path`` that ``variable`` (a ``*_FILE`` variable) names."""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{variable}={path}: cannot read secret: {exc.strerror}") from exc


def named_secret(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The secret in the environment variable ``name`` (one a dataset spec names, e.g.
    ``source.auth.token_env``), or in the file ``name_FILE`` names."""
    env = os.environ if environ is None else environ
    value = env.get(name)
    if value:
        return value
    path = env.get(f"{name}_FILE")
    if path:
        return secret_from_file(f"{name}_FILE", path)
    raise ConfigError(f"source.auth needs the secret in {name} or {name}_FILE: neither is set")


def _read_secret_files(values: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Fill NAME from the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    for name in names:
        file_key = f"{name}_file"
        path = values.get(file_key) or os.environ.get(file_key.upper())
        if path and not values.get(name):
            values[name] = secret_from_file(file_key.upper(), path)
    return values


class _Base(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)


class AmqpSettings(_Base):
    """RabbitMQ connection and topology."""

    amqp_connection: SecretStr = Field(
        SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        description="AMQP URL of RabbitMQ (vhost included).",
    )
    amqp_connection_file: str | None = None
    amqp_exchange: str = Field("backfill", description="Topic exchange for page batches.")
    amqp_consumers: str = Field(
        "tableinator,graphinator",
        description="Consumers that get a queue per dataset/entity (comma separated).",
    )

    @model_validator(mode="before")
    @classmethod
    def _secrets(cls, values: dict[str, Any]) -> dict[str, Any]:
        return _read_secret_files(values, ("amqp_connection",))

    @property
    def url(self) -> str:
        return self.amqp_connection.get_secret_value()

    @property
    def consumers(self) -> list[str]:
        return [c.strip() for c in self.amqp_consumers.split(",") if c.strip()]


class PostgresSettings(_Base):
    """PostgreSQL connection and pool."""

    postgres_address: str = Field("127.0.0.1:5432", description="host:port of PostgreSQL.")
    postgres_username: str = "backfill"
    postgres_password: SecretStr = SecretStr("backfill")
    postgres_password_file: str | None = None
    postgres_database: str = "backfill"
    postgres_schema: str = Field("public", description="Schema holding the entity tables.")
    postgres_pool_min: int = Field(2, ge=1)
    postgres_pool_max: int = Field(8, ge=1)
    postgres_bulk_load: bool = Field(
        False, description="Drop secondary indexes while a job loads; rebuild at its end."
    )

    @model_validator(mode="before")
    @classmethod
    def _secrets(cls, values: dict[str, Any]) -> dict[str, Any]:
        return _read_secret_files(values, ("postgres_password",))

    @property
    def conninfo(self) -> str:
        host, _, port = self.postgres_address.rpartition(":")
        return make_conninfo(
            host=host or self.postgres_address,
            port=port if host else "5432",
            user=self.postgres_username,
            password=self.postgres_password.get_secret_value(),
            dbname=self.postgres_database,
            application_name="backfill",
        )

    def redacted(self) -> str:
        return f"postgresql://{self.postgres_username}@{self.postgres_address}/{self.postgres_database}"


class Neo4jSettings(_Base):
    """Neo4j connection."""

    neo4j_address: str = Field("bolt://127.0.0.1:7687", description="Bolt URI of Neo4j.")
    neo4j_username: str = "neo4j"
    neo4j_password: SecretStr = SecretStr("backfill-password")
    neo4j_password_file: str | None = None
    neo4j_database: str = "neo4j"
    neo4j_pool_max: int = Field(16, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _secrets(cls, values: dict[str, Any]) -> dict[str, Any]:
        return _read_secret_files(values, ("neo4j_password",))

    @property
    def auth(self) -> tuple[str, str]:
        return (self.neo4j_username, self.neo4j_password.get_secret_value())


class ConsumerSettings(_Base):
    """How a consumer batches: the names discogsography users already tune."""

    batch_size: int = Field(5000, ge=1)
    batch_flush_interval: float = Field(
        1.0, gt=0, description="Seconds before a partial batch is flushed."
    )
    prefetch: int = Field(200, ge=1, description="AMQP QoS: unacked messages per consumer.")
    max_pending: int = Field(20000, ge=1, description="Records held before deliveries pause.")
    max_message_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    writes_in_flight: int = Field(
        2, ge=1, description="Batches written at once per entity (keys never overlap)."
    )
    drain_timeout: float = Field(
        30.0,
        gt=0,
        description="On SIGTERM: seconds to flush and ack what is held; past it (a store"
        " that does not answer) the consumer exits and RabbitMQ redelivers what it held.",
    )


class ObservabilitySettings(_Base):
    """Where the metrics and health endpoint listens."""

    metrics_host: str = Field("127.0.0.1", description="Address of /metrics and /health.")
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port of /metrics and /health; unset disables, 0 picks one.",
    )
    log_level: str = "INFO"


class DatasetSettings(_Base):
    """Which dataset spec to run."""

    dataset_spec: str = Field("demo", description="Path to a spec YAML or a bundled name.")


def consumer_settings(prefix: str, **defaults: Any) -> ConsumerSettings:
    """Consumer settings from ``{PREFIX}_BATCH_SIZE`` etc. (e.g. POSTGRES_BATCH_SIZE);
    ``defaults`` replace the generic defaults for this store, the environment wins."""

    class _Prefixed(ConsumerSettings):
        model_config = SettingsConfigDict(env_prefix=f"{prefix}_", extra="ignore")

    from_env = _Prefixed().model_dump(exclude_unset=True)
    return ConsumerSettings.model_validate({**defaults, **from_env})


class _ServiceSettings(_Base):
    """What every service reads: the broker, its metrics endpoint, the dataset."""

    amqp: AmqpSettings = Field(default_factory=AmqpSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    dataset: DatasetSettings = Field(default_factory=DatasetSettings)


class TableinatorSettings(_ServiceSettings):
    """Everything tableinator reads at start."""

    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    batch: ConsumerSettings = Field(default_factory=lambda: consumer_settings("POSTGRES"))


class GraphBulkSettings(_Base):
    """Bulk initial load: CSV files for neo4j-admin instead of MERGE (graphinator.bulk)."""

    graphinator_bulk_load: bool = Field(
        False,
        description="First load into an empty graph: write CSV files, import them at the end.",
    )
    graphinator_bulk_dir: str = Field(
        ".local/graph-bulk", description="Where a bulk load keeps its files (one job at a time)."
    )

    @property
    def directory(self) -> Path:
        return Path(self.graphinator_bulk_dir)


class GraphinatorSettings(_ServiceSettings):
    """Everything graphinator reads at start."""

    neo4j: Neo4jSettings = Field(default_factory=Neo4jSettings)
    bulk: GraphBulkSettings = Field(default_factory=GraphBulkSettings)
    batch: ConsumerSettings = Field(default_factory=lambda: consumer_settings("NEO4J"))


class ExtractorSettings(_ServiceSettings):
    """Everything the extractor reads at start."""

    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    extractor_concurrency: int | None = Field(
        None,
        ge=1,
        description="Slices fetched at once; unset: enough to reach the spec's maximum rate.",
    )
    extractor_connect_timeout: float = Field(5.0, gt=0)
    extractor_read_timeout: float = Field(30.0, gt=0)
    extractor_max_retries: int = Field(8, ge=0)
    extractor_source_url: str | None = Field(
        None, description="Overrides the spec's source base URL (e.g. the demo API address)."
    )
    extractor_dump_path: str | None = Field(
        None, description="Overrides a dump source's base_path (the directory of its files)."
    )
    extractor_max_in_flight: int = Field(
        64, ge=1, description="Pages fetched but not yet confirmed by the broker, per process."
    )
    extractor_max_queue_depth: int = Field(
        1000,
        ge=0,
        description="Fetching waits while a consumer queue holds more messages (0: no limit).",
    )
    extractor_no_consumer_timeout: float = Field(
        0.0,
        ge=0,
        description="Fail a slice held back this many seconds by a queue with no consumer"
        " (0: wait, warning every 30 s).",
    )
    extractor_stop_grace: float = Field(
        5.0,
        gt=0,
        description="On SIGTERM/SIGINT: seconds to checkpoint confirmed pages before exiting.",
    )
    extractor_ledger_schema: str = Field(
        "backfill_ledger",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema of the job and slice ledger.",
    )
    extractor_work_queue: str = Field(
        "extractor.work",
        min_length=1,
        description="Prefix of the durable slice task queues, one per dataset: PREFIX.DATASET.",
    )
    extractor_lease_seconds: float = Field(
        15.0, gt=0, description="A running slice's lease; a dead worker's slice is free after it."
    )
    extractor_breaker_failures: int = Field(
        5, ge=1, description="Consecutive failed requests that open the circuit breaker."
    )
    extractor_breaker_cooldown: float = Field(
        5.0, gt=0, description="Seconds the breaker stays open before one probe (doubles)."
    )
