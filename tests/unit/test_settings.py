"""Settings: one frozen object from ``TRIAGE_*`` variables, secrets masked when printed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from triage.errors import ConfigError
from triage.settings import TriageSettings, load_settings
from triage.topics import Topics

PASSWORD = "ZqSECRET-hunter2-sasl"
KEY_PASSWORD = "ZqSECRET-key-pass"
MASK = "**********"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ``TRIAGE_*`` variable from the machine running the tests leaks in."""
    for name in list(os.environ):
        if name.upper().startswith("TRIAGE_"):
            monkeypatch.delenv(name)


def sasl_ssl(**overrides: object) -> TriageSettings:
    """Complete SASL_SSL settings (with mutual TLS), then ``overrides``."""
    fields: dict[str, object] = {
        "kafka_bootstrap": "kafka-1:9093,kafka-2:9093",
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "triage",
        "kafka_sasl_password": PASSWORD,
        "kafka_ssl_cafile": "/etc/kafka/ca.pem",
        "kafka_ssl_certfile": "/etc/kafka/client.pem",
        "kafka_ssl_keyfile": "/etc/kafka/client.key",
        "kafka_ssl_password": KEY_PASSWORD,
        **overrides,
    }
    return load_settings(**fields)


class TestTriageSettings:
    def test_defaults(self) -> None:
        """Without variables: embedded broker, plaintext, canonical topics, live clock."""
        settings = load_settings()

        assert settings.kafka_bootstrap is None
        assert settings.kafka_security_protocol == "PLAINTEXT"
        assert (settings.topic_prefix, settings.partitions) == ("", 4)
        assert (settings.clock_mode, settings.log_format) == ("live", "json")

    def test_variables_map_to_fields(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Each field reads ``TRIAGE_<FIELD>``, converted to its type."""
        monkeypatch.setenv("TRIAGE_KAFKA_BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
        monkeypatch.setenv("TRIAGE_PARTITIONS", "12")
        monkeypatch.setenv("TRIAGE_TOPIC_PREFIX", "region-x.")
        monkeypatch.setenv("TRIAGE_CLOCK_MODE", "replay")
        monkeypatch.setenv("TRIAGE_LOG_LEVEL", "DEBUG")
        monkeypatch.setenv("TRIAGE_KAFKA_SSL_CAFILE", "/etc/ca.pem")
        monkeypatch.setenv("TRIAGE_METRICS_PORT", "0")

        settings = load_settings()

        assert settings.kafka_bootstrap == "kafka-1:9092,kafka-2:9092"
        assert settings.partitions == 12
        assert settings.topic_prefix == "region-x."
        assert settings.clock_mode == "replay"
        assert settings.log_level == "DEBUG"
        assert settings.kafka_ssl_cafile == Path("/etc/ca.pem")
        assert settings.metrics_port == 0

    def test_explicit_overrides_beat_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``load_settings(**overrides)`` wins over the variables (a CLI option, say)."""
        monkeypatch.setenv("TRIAGE_KAFKA_BOOTSTRAP", "from-env:9092")
        monkeypatch.setenv("TRIAGE_GROUP_ID", "env-group")

        settings = load_settings(kafka_bootstrap="from-cli:9092")

        assert (settings.kafka_bootstrap, settings.group_id) == ("from-cli:9092", "env-group")

    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("TRIAGE_PARTITIONS", "0"),
            ("TRIAGE_PARTITIONS", "many"),
            ("TRIAGE_CLOCK_MODE", "wall"),
            ("TRIAGE_KAFKA_SECURITY_PROTOCOL", "TLS"),
            ("TRIAGE_TOPIC_PREFIX", "bad prefix/"),
            ("TRIAGE_WEB_PORT", "70000"),
        ],
    )
    def test_invalid_values_are_refused(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
    ) -> None:
        """A variable outside its field's range or choices is a validation error."""
        monkeypatch.setenv(variable, value)

        with pytest.raises(ConfigError, match=variable):
            load_settings()

    @pytest.mark.parametrize(
        "variable",
        ["TRIAGE_STALL_TIMEOUT", "TRIAGE_MAX_CLOCK_SKEW", "TRIAGE_KAFKA_CONNECT_TIMEOUT"],
    )
    @pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "Infinity"])
    def test_numbers_of_seconds_are_finite(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
    ) -> None:
        """NaN passes every bound (each comparison with it is false) and ``inf`` every
        lower one: neither is a number of seconds."""
        monkeypatch.setenv(variable, value)

        with pytest.raises(ConfigError, match=variable):
            load_settings()

    def test_the_broker_connect_timeout_is_five_seconds(self) -> None:
        """The worker and the tools wait 5 s for an unreachable broker, unless told."""
        assert load_settings().kafka_connect_timeout == 5.0
        assert load_settings(kafka_connect_timeout=0.5).kafka_connect_timeout == 0.5

    @pytest.mark.parametrize("value", ["0", "-1", "601", "soon"])
    def test_the_broker_connect_timeout_is_bounded(
        self, monkeypatch: pytest.MonkeyPatch, value: str
    ) -> None:
        """A wait of zero, a negative one, more than ten minutes or a word is refused."""
        monkeypatch.setenv("TRIAGE_KAFKA_CONNECT_TIMEOUT", value)

        with pytest.raises(ConfigError, match="TRIAGE_KAFKA_CONNECT_TIMEOUT"):
            load_settings()

    def test_unknown_keyword_is_refused(self) -> None:
        """A misspelt setting given in code is an error, not silently ignored."""
        with pytest.raises(ConfigError, match="TRIAGE_KAFKA_BOOTSTRP"):
            load_settings(kafka_bootstrp="x:9092")

    def test_cannot_be_changed(self) -> None:
        """Settings are frozen: assigning a field raises."""
        settings = load_settings()

        with pytest.raises(ValidationError, match="frozen"):
            settings.partitions = 8  # type: ignore[misc]

    def test_model_copy_makes_a_new_object(self) -> None:
        """A changed copy (the embedded broker's address, say) leaves the original alone."""
        settings = load_settings()

        copy = settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:9092"})

        assert (settings.kafka_bootstrap, copy.kafka_bootstrap) == (None, "127.0.0.1:9092")

    def test_passwords_are_secret_strings(self) -> None:
        """Passwords are held as ``SecretStr``, revealed only on request."""
        settings = sasl_ssl()

        assert isinstance(settings.kafka_sasl_password, SecretStr)
        assert settings.kafka_sasl_password.get_secret_value() == PASSWORD

    def test_masked_hides_secrets(self) -> None:
        """``masked()`` gives plain JSON-ready values with every secret as asterisks."""
        masked = sasl_ssl().masked()

        assert masked["kafka_sasl_password"] == MASK
        assert masked["kafka_ssl_password"] == MASK
        assert masked["kafka_sasl_username"] == "triage"
        assert masked["kafka_ssl_cafile"] == "/etc/kafka/ca.pem"
        text = json.dumps(masked)
        assert PASSWORD not in text
        assert KEY_PASSWORD not in text

    def test_masked_lists_every_field(self) -> None:
        """``masked()`` shows every setting (it is what ``triage settings`` prints)."""
        assert set(load_settings().masked()) == set(TriageSettings.model_fields)

    @pytest.mark.parametrize("show", [repr, str, format])
    def test_printing_never_shows_a_secret(self, show: object) -> None:
        """``repr``, ``str`` and f-strings mask the passwords."""
        text = show(sasl_ssl())  # type: ignore[operator]

        assert PASSWORD not in text
        assert KEY_PASSWORD not in text
        assert MASK in text

    def test_secrets_from_the_environment_are_masked(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A password read from a variable is as masked as one given in code."""
        monkeypatch.setenv("TRIAGE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
        monkeypatch.setenv("TRIAGE_KAFKA_SASL_MECHANISM", "PLAIN")
        monkeypatch.setenv("TRIAGE_KAFKA_SASL_USERNAME", "triage")
        monkeypatch.setenv("TRIAGE_KAFKA_SASL_PASSWORD", PASSWORD)

        settings = load_settings()

        assert PASSWORD not in repr(settings)
        assert PASSWORD not in json.dumps(settings.masked())
        assert settings.kafka_python_security()["sasl_plain_password"] == PASSWORD

    @pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
    @pytest.mark.parametrize(
        "missing", ["kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password"]
    )
    def test_incomplete_sasl_is_refused(self, protocol: str, missing: str) -> None:
        """A SASL protocol without its mechanism, user name or password is an error."""
        with pytest.raises(ConfigError, match="SASL needs kafka_sasl_mechanism"):
            sasl_ssl(kafka_security_protocol=protocol, **{missing: None})

    def test_sasl_fields_are_not_needed_without_sasl(self) -> None:
        """SSL alone needs no SASL settings."""
        settings = load_settings(kafka_security_protocol="SSL")

        assert settings.kafka_sasl_username is None

    def test_the_error_does_not_show_the_password(self) -> None:
        """The incomplete-SASL error names the fields, never the password given."""
        with pytest.raises(ConfigError) as caught:
            load_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_password=PASSWORD)

        assert PASSWORD not in str(caught.value)

    def test_plaintext(self) -> None:
        """Plaintext needs only the protocol."""
        assert load_settings().kafka_python_security() == {"security_protocol": "PLAINTEXT"}

    def test_sasl_ssl(self) -> None:
        """SASL_SSL gives the mechanism, the credentials (revealed) and the TLS files as strings."""
        assert sasl_ssl().kafka_python_security() == {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "triage",
            "sasl_plain_password": PASSWORD,
            "ssl_cafile": "/etc/kafka/ca.pem",
            "ssl_certfile": "/etc/kafka/client.pem",
            "ssl_keyfile": "/etc/kafka/client.key",
            "ssl_password": KEY_PASSWORD,
        }

    def test_ssl(self) -> None:
        """SSL gives the TLS files and no SASL keys; no key password when none is set."""
        settings = load_settings(
            kafka_security_protocol="SSL", kafka_ssl_cafile=Path("/etc/kafka/ca.pem")
        )

        assert settings.kafka_python_security() == {
            "security_protocol": "SSL",
            "ssl_cafile": "/etc/kafka/ca.pem",
            "ssl_certfile": None,
            "ssl_keyfile": None,
        }

    def test_sasl_plaintext_has_no_tls(self) -> None:
        """SASL_PLAINTEXT gives credentials and no TLS files."""
        options = sasl_ssl(kafka_security_protocol="SASL_PLAINTEXT").kafka_python_security()

        assert options["security_protocol"] == "SASL_PLAINTEXT"
        assert options["sasl_plain_password"] == PASSWORD
        assert not [k for k in options if k.startswith("ssl_")]

    def test_topics_use_the_prefix(self) -> None:
        """Topic names carry the configured prefix."""
        settings = load_settings(topic_prefix="test.")

        assert settings.topics == Topics("test.")
        assert settings.topics.reports == "test.dv.reports.v1"
        assert settings.topics.queue("immediate") == "test.dv.queue.immediate.v1"

    def test_no_prefix_gives_the_canonical_names(self) -> None:
        """Without a prefix, the names are those written in event logs."""
        assert load_settings().topics.inputs == ("dv.reports.v1", "dv.case-updates.v1")
