"""Settings: one frozen object, read from the environment here and nowhere else.

Every field has an environment variable ``TRIAGE_<FIELD NAME IN CAPITALS>``,
e.g. ``TRIAGE_KAFKA_BOOTSTRAP=kafka-1:9092``. Secrets are ``SecretStr`` and
print masked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from triage.errors import ConfigError
from triage.topics import Topics


class TriageSettings(BaseSettings):
    """Everything a worker or a tool needs to know about its environment."""

    # allow_inf_nan=False: "nan" or "inf" is no number of seconds (a NaN passes every
    # bound, since every comparison with it is false).
    model_config = SettingsConfigDict(
        env_prefix="TRIAGE_", frozen=True, extra="forbid", allow_inf_nan=False
    )

    kafka_bootstrap: str | None = Field(
        None,
        description="Kafka bootstrap servers (host:port,...). Unset: start the embedded broker.",
    )
    kafka_connect_timeout: float = Field(
        5.0,
        gt=0.0,
        le=600.0,
        description="Seconds the worker and the commands that talk to Kafka (publish, replay,"
        " record, topics create, demo) wait for the broker at start-up; past them they exit"
        " with one error line naming the address.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How clients talk to Kafka."
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] | None = Field(
        None, description="SASL mechanism when the protocol is SASL_*."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (secret).")
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA bundle that signs the brokers' certificates."
    )
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate (mutual TLS).")
    kafka_ssl_keyfile: Path | None = Field(None, description="Client private key (mutual TLS).")
    kafka_ssl_password: SecretStr | None = Field(
        None, description="Password of the client key (secret)."
    )

    topic_prefix: str = Field(
        "", pattern=r"^[A-Za-z0-9._-]*$", description="Prefix of every topic name."
    )
    partitions: int = Field(
        4, ge=1, le=256, description="Partitions of every topic (bounds parallelism)."
    )
    replication_factor: int = Field(
        1, ge=1, le=5, description="Replication factor of created topics."
    )
    deadletter_retention_days: int = Field(
        30,
        ge=1,
        le=3650,
        description="Retention of the dead-letter topic (it holds raw personal data).",
    )
    group_id: str = Field("triage-worker", description="Consumer group of the workers.")
    store: str = Field("memory://", description="Faust table store: memory:// or rocksdb://.")
    data_dir: Path = Field(
        Path("var/worker"), description="Worker state directory (rocksdb stores)."
    )
    web_port: int = Field(
        6066,
        ge=0,
        le=65535,
        description="Faust web server port, on 127.0.0.1 (0 disables the web server).",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address /metrics listens on (0.0.0.0 in containers)."
    )
    metrics_port: int = Field(
        9464, ge=0, le=65535, description="Prometheus /metrics port (0 disables)."
    )
    stall_timeout: float = Field(
        180.0,
        ge=1.0,
        description="Seconds a worker may process nothing while its input partitions have"
        " uncommitted records (outside rebalances and recovery) before it exits with status"
        " 75 for its supervisor to restart it.",
    )
    rules_file: Path | None = Field(
        None, description="Rule-set file. Unset: the packaged rule set."
    )
    units_file: Path | None = Field(
        None, description="Commune→unit CSV. Unset: the packaged directory."
    )
    clock_mode: Literal["live", "replay"] = Field(
        "live",
        description="live: timers also follow the wall clock; replay: only event time moves it.",
    )
    max_clock_skew: float = Field(
        120.0,
        ge=0.0,
        le=86_400.0,
        description="Live mode: seconds an event time may run ahead of the wall clock. A"
        " record stamped later is still processed, at wall clock + this skew (counted in"
        " triage_clock_clamped_total); replay mode clamps nothing.",
    )
    repartition: bool = Field(
        False,
        description="Re-key the input topics into victim-keyed internal topics, so that any"
        " upstream partitioner and partition count gives the offline replay's decisions at"
        " a realistic speed (each record written and read twice: see triage bench). Off by"
        " default: with two workers meeting faults it gave outputs unlike the offline"
        " replay's (triage soak --fault mixed). Off, the worker reads"
        " the inputs directly, which upstream must key by victim_ref with murmur2 (Java's"
        " partitioner) into TRIAGE_PARTITIONS partitions; a record found elsewhere is"
        " re-published to its key's partition, without its order.",
    )
    log_format: Literal["json", "console"] = Field("json", description="Log rendering.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level."
    )

    @model_validator(mode="after")
    def _sasl_complete(self) -> TriageSettings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                "SASL needs kafka_sasl_mechanism, kafka_sasl_username and kafka_sasl_password"
            )
        return self

    @property
    def topics(self) -> Topics:
        """Topic names under this deployment's prefix."""
        return Topics(self.topic_prefix)

    def kafka_python_security(self) -> dict[str, Any]:
        """Security keyword arguments for kafka-python clients (secrets revealed here only)."""
        options: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_cafile"] = str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None
            options["ssl_certfile"] = (
                str(self.kafka_ssl_certfile) if self.kafka_ssl_certfile else None
            )
            options["ssl_keyfile"] = str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None
            if self.kafka_ssl_password is not None:
                options["ssl_password"] = self.kafka_ssl_password.get_secret_value()
        return options

    def masked(self) -> dict[str, Any]:
        """Every setting as plain values; secrets print as ``**********``."""
        return self.model_dump(mode="json")


def load_settings(**overrides: Any) -> TriageSettings:
    """Settings from the environment, with explicit overrides on top.

    Raises :class:`ConfigError` naming the variables at fault, never their values
    (a password must not end up in a terminal or a log).
    """
    try:
        return TriageSettings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False, include_context=False):
            where = ".".join(str(p) for p in error["loc"])
            name = f"TRIAGE_{where.upper()}" if where else "settings"
            problems.append(f"{name}: {error['msg']}")
        raise ConfigError("; ".join(problems)) from None
