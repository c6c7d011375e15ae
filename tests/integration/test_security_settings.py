"""Broker security: SASL_SSL (SCRAM-SHA-512) and mutual TLS reach both clients, and the
secrets never show.

A throwaway CA, a broker certificate for 127.0.0.1 and a client certificate (its key
encrypted with a password) are made with the ``openssl`` CLI. A small TLS server
stands in for the broker: it demands a client certificate signed by the CA and
records who completed a handshake. Against it:

- the TLS context of the Faust credentials (``faust_credentials``) completes a
  mutual-TLS handshake, and the same settings with another CA refuse the server;
  aiokafka receives SCRAM-SHA-512, the credentials and that context from Faust;
- a real ``triage worker`` (Faust, aiokafka) and ``triage topics create``
  (kafka-python, with ``kafka_python_security()``) configured from ``TRIAGE_*``
  variables complete the handshake too;
- neither the SASL password nor the key password appears in ``repr``,
  ``masked()``, ``triage config show``, the worker's DEBUG log, the tools' output,
  or the logs of kafka-python (which logs its whole configuration at DEBUG).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from triage.settings import TriageSettings

with warnings.catch_warnings():  # kafka-python (imported by the shell) warns on import
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    import faust
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from triage.streaming.app import faust_credentials

pytestmark = pytest.mark.integration

SASL_PASSWORD = "ZqSASLsecret-hunter2-7f3a"
KEY_PASSWORD = "ZqKEYsecret-pass-19c2"
SECRETS = (SASL_PASSWORD, KEY_PASSWORD)
USER = "triage-worker"


@dataclass(frozen=True)
class Pki:
    """Files of a throwaway PKI."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    """Encrypted with :data:`KEY_PASSWORD`."""
    other_ca: Path
    """A CA that signed nothing here."""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(directory: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory,
    )  # fmt: skip


def _signed(directory: Path, name: str, subject: str, extensions: str, *key_args: str) -> None:
    (directory / f"{name}.ext").write_text(extensions)
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", *key_args,
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
        cwd=directory,
    )  # fmt: skip


@pytest.fixture(name="pki", scope="module")
def _pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    _ca(directory, "ca")
    _ca(directory, "other-ca")
    server_ext = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
    _signed(directory, "server", "/CN=broker", server_ext, "-nodes")
    client_ext = "extendedKeyUsage=clientAuth\n"
    _signed(directory, "client", f"/CN={USER}", client_ext, "-passout", f"pass:{KEY_PASSWORD}")
    return Pki(
        directory / "ca.pem",
        directory / "server.pem",
        directory / "server.key",
        directory / "client.pem",
        directory / "client.key",
        directory / "other-ca.pem",
    )


@dataclass
class FakeBroker:
    """A TLS listener demanding client certificates; records who got through."""

    port: int
    clients: list[str] = field(default_factory=list)
    """Common names of clients that completed a mutual-TLS handshake."""
    first_bytes: list[bytes] = field(default_factory=list)
    failures: int = 0

    def wait_for_client(self, timeout: float, alive: Any = lambda: True) -> str:
        """The first client's common name, once one completed a handshake."""
        deadline = time.monotonic() + timeout
        while not self.clients:
            assert alive(), "the client process exited before any TLS handshake"
            assert time.monotonic() < deadline, f"no mutual-TLS handshake in {timeout:.0f}s"
            time.sleep(0.1)
        return self.clients[0]


@pytest.fixture(name="fake_broker")
def _fake_broker(pki: Pki) -> Iterator[FakeBroker]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    context.load_verify_locations(pki.ca)
    context.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    broker = FakeBroker(listener.getsockname()[1])
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(2.0)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    cert = tls.getpeercert() or {}
                    subject = dict(item for rdn in cert.get("subject", ()) for item in rdn)
                    broker.clients.append(str(subject.get("commonName", "?")))
                    with contextlib.suppress(OSError, ssl.SSLError):
                        broker.first_bytes.append(tls.recv(4096))
            except (OSError, ssl.SSLError):
                broker.failures += 1
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield broker
    finally:
        stop.set()
        listener.close()
        thread.join(5)


def sasl_ssl(pki: Pki, bootstrap: str = "127.0.0.1:9093", **changes: Any) -> TriageSettings:
    """SASL_SSL with SCRAM-SHA-512 and mutual TLS, from the throwaway PKI."""
    fields: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": USER,
        "kafka_sasl_password": SASL_PASSWORD,
        "kafka_ssl_cafile": pki.ca,
        "kafka_ssl_certfile": pki.client_cert,
        "kafka_ssl_keyfile": pki.client_key,
        "kafka_ssl_password": KEY_PASSWORD,
        **changes,
    }
    return TriageSettings(**fields)


def environment(settings: TriageSettings, tmp_path: Path) -> dict[str, str]:
    """``TRIAGE_*`` variables for ``settings`` (secrets revealed: this is the input)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    for name, value in settings.model_dump(mode="json").items():
        if value is not None:
            env[f"TRIAGE_{name.upper()}"] = str(value)
    env["TRIAGE_KAFKA_SASL_PASSWORD"] = SASL_PASSWORD
    env["TRIAGE_KAFKA_SSL_PASSWORD"] = KEY_PASSWORD
    env.update(TRIAGE_LOG_LEVEL="DEBUG", TRIAGE_WEB_PORT="0", TRIAGE_METRICS_PORT="0",
               TRIAGE_DATA_DIR=str(tmp_path / "data"), TRIAGE_GROUP_ID="security-test")  # fmt: skip
    return env


def assert_no_secret(text: str) -> None:
    """Neither password is in ``text``, raw or with JSON escapes decoded (log lines)."""
    decoded = [text]
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            decoded.append(json.dumps(json.loads(line), ensure_ascii=False))
    for secret in SECRETS:
        assert not any(secret in part for part in decoded)


def handshake(context: ssl.SSLContext, port: int) -> None:
    """A TLS handshake to the fake broker with ``context``."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"\x00\x00\x00\x00")


class TestFaustCredentials:
    def test_sasl_ssl_gives_scram_credentials_with_a_verifying_context(self, pki: Pki) -> None:
        """SASL_SSL: SCRAM-SHA-512 credentials over a TLS context that verifies the broker
        against our CA; aiokafka receives exactly that from Faust."""
        credentials = faust_credentials(sasl_ssl(pki))

        assert isinstance(credentials, faust.SASLCredentials)
        assert credentials.mechanism.value == "SCRAM-SHA-512"
        assert credentials.protocol.value == "SASL_SSL"
        context = credentials.ssl_context
        assert context is not None
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname
        assert [dict(x[0] for x in c["subject"])["commonName"] for c in context.get_ca_certs()] == [
            "ca"
        ]
        assert credentials_to_aiokafka_auth(credentials) == {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": USER,
            "sasl_plain_password": SASL_PASSWORD,
            "ssl_context": context,
        }

    def test_ssl_gives_tls_credentials(self, pki: Pki) -> None:
        """SSL (mutual TLS, no SASL): SSL credentials whose context Faust hands to aiokafka."""
        settings = sasl_ssl(pki, kafka_security_protocol="SSL", kafka_sasl_mechanism=None,
                            kafka_sasl_username=None, kafka_sasl_password=None)  # fmt: skip

        credentials = faust_credentials(settings)

        assert isinstance(credentials, faust.SSLCredentials)
        auth = credentials_to_aiokafka_auth(credentials)
        assert auth == {"security_protocol": "SSL", "ssl_context": credentials.context}

    def test_sasl_plaintext_has_no_tls(self, pki: Pki) -> None:
        """SASL_PLAINTEXT: SCRAM credentials and no TLS context (the CA files are unused)."""
        credentials = faust_credentials(sasl_ssl(pki, kafka_security_protocol="SASL_PLAINTEXT"))

        assert isinstance(credentials, faust.SASLCredentials)
        assert credentials.ssl_context is None
        assert credentials_to_aiokafka_auth(credentials)["security_protocol"] == "SASL_PLAINTEXT"

    def test_plaintext_has_no_credentials(self) -> None:
        """PLAINTEXT: Faust gets no credentials at all."""
        assert faust_credentials(TriageSettings(kafka_bootstrap="127.0.0.1:9092")) is None

    def test_the_context_does_mutual_tls_with_our_ca(
        self, pki: Pki, fake_broker: FakeBroker
    ) -> None:
        """The Faust context trusts the broker our CA signed and presents the client
        certificate (its key unlocked with the key password)."""
        credentials = faust_credentials(sasl_ssl(pki))

        handshake(credentials.ssl_context, fake_broker.port)

        assert fake_broker.wait_for_client(5) == USER

    def test_a_broker_from_another_ca_is_refused(self, pki: Pki, fake_broker: FakeBroker) -> None:
        """With another CA configured, the broker's certificate fails verification."""
        credentials = faust_credentials(sasl_ssl(pki, kafka_ssl_cafile=pki.other_ca))

        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(credentials.ssl_context, fake_broker.port)
        assert fake_broker.clients == []


class TestKafkaPythonSecurity:
    def test_sasl_ssl_keyword_arguments(self, pki: Pki) -> None:
        """The kafka-python tools get SCRAM-SHA-512, the credentials, and the TLS files."""
        assert sasl_ssl(pki).kafka_python_security() == {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": USER,
            "sasl_plain_password": SASL_PASSWORD,
            "ssl_cafile": str(pki.ca),
            "ssl_certfile": str(pki.client_cert),
            "ssl_keyfile": str(pki.client_key),
            "ssl_password": KEY_PASSWORD,
        }


class TestSecretsNeverShow:
    def test_repr_masked_and_credentials(self, pki: Pki) -> None:
        """``repr``, ``str``, ``masked()`` and the Faust credentials' repr mask both passwords."""
        settings = sasl_ssl(pki)

        for text in (repr(settings), str(settings), json.dumps(settings.masked()),
                     repr(faust_credentials(settings))):  # fmt: skip
            assert_no_secret(text)
        assert settings.masked()["kafka_sasl_password"] == "**********"
        assert settings.masked()["kafka_ssl_password"] == "**********"

    def test_config_show(self, pki: Pki, tmp_path: Path) -> None:
        """``triage config show`` with the secrets in the environment prints them masked."""
        env = environment(sasl_ssl(pki), tmp_path)

        result = subprocess.run(
            [sys.executable, "-m", "triage", "config", "show"],
            env=env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip

        shown = json.loads(result.stdout)
        assert shown["kafka_security_protocol"] == "SASL_SSL"
        assert shown["kafka_sasl_password"] == shown["kafka_ssl_password"] == "**********"
        assert_no_secret(result.stdout + result.stderr)

    def test_kafka_python_debug_logs_go_through_the_redaction(
        self, pki: Pki, tmp_path: Path
    ) -> None:
        """kafka-python logs its whole configuration, passwords included, at DEBUG; through
        our logging pipeline the line keeps its template only. (In a child process:
        kafka-python leaks a socket when it cannot bootstrap.)"""
        plain = tmp_path / "plain.log"
        script = (
            "import logging, sys\n"
            "from kafka import KafkaAdminClient\n"
            "from kafka.errors import KafkaError\n"
            "from triage.observability.logging import configure_logging\n"
            "from triage.settings import load_settings\n"
            "configure_logging('json', 'DEBUG')\n"
            "control = logging.FileHandler(sys.argv[1])  # what a plain DEBUG setup prints\n"
            "logging.getLogger('kafka.admin').addHandler(control)\n"
            "try:\n"
            "    KafkaAdminClient(bootstrap_servers='127.0.0.1:1', bootstrap_timeout_ms=300,\n"
            "                     **load_settings().kafka_python_security())\n"
            "except KafkaError:\n"
            "    pass\n"
        )
        env = environment(sasl_ssl(pki), tmp_path)

        result = subprocess.run(
            [sys.executable, "-W", "ignore", "-c", script, str(plain)],
            env=env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip

        assert SASL_PASSWORD in plain.read_text()  # the danger is real
        assert "Starting KafkaAdminClient with configuration" in result.stderr
        assert_no_secret(result.stdout + result.stderr)

    def test_the_worker_does_mutual_tls_and_never_logs_a_secret(
        self, pki: Pki, fake_broker: FakeBroker, tmp_path: Path
    ) -> None:
        """``triage worker`` (Faust, aiokafka) configured by environment completes the
        mutual-TLS handshake with the broker our CA signed; its DEBUG log, retrying a
        broker that speaks no Kafka, carries neither password."""
        env = environment(sasl_ssl(pki, f"127.0.0.1:{fake_broker.port}"), tmp_path)
        log_path = tmp_path / "worker.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "triage", "worker"],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            assert fake_broker.wait_for_client(30, lambda: proc.poll() is None) == USER
            time.sleep(2.0)  # let it retry and log
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        text = log_path.read_text(errors="replace")
        assert text
        assert_no_secret(text)

    def test_a_tool_does_mutual_tls_and_prints_no_secret(
        self, pki: Pki, fake_broker: FakeBroker, tmp_path: Path
    ) -> None:
        """``triage topics create`` (kafka-python) configured by environment completes the
        handshake, then fails with one line that carries neither password."""
        env = environment(sasl_ssl(pki, f"127.0.0.1:{fake_broker.port}"), tmp_path)

        result = subprocess.run(
            [sys.executable, "-m", "triage", "topics", "create"],
            env=env, capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip

        assert result.returncode != 0
        assert result.stderr.startswith("error: "), result.stderr[-2000:]
        assert fake_broker.clients[:1] == [USER]
        assert_no_secret(result.stdout + result.stderr)
