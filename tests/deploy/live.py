"""Helpers for tests that read a running worker's /metrics, or run a real Prometheus.

Used by the integration tests (``tests/integration/test_prometheus.py``,
``test_metrics_equivalence.py``, ``test_privacy_sentinels.py``).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from triage.broker.embedded import child_guard
from triage.settings import TriageSettings

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def with_metrics_port(settings: TriageSettings) -> TriageSettings:
    """``settings`` serving /metrics on a free loopback port (TRIAGE_METRICS_PORT)."""
    return settings.model_copy(update={"metrics_host": LOOPBACK, "metrics_port": free_port()})


def http_get(url: str, timeout: float = 5.0) -> bytes:
    """The body of a GET (loopback URLs built by the tests only)."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body


def scrape(settings: TriageSettings) -> str:
    """The worker's /metrics text."""
    return http_get(f"http://{LOOPBACK}:{settings.metrics_port}/metrics").decode()


def wait_for_metrics(settings: TriageSettings, alive: Any, timeout: float = 30.0) -> str:
    """Poll /metrics until the worker serves it; ``alive()`` says whether it still runs."""
    deadline = time.monotonic() + timeout
    while True:
        assert alive(), "worker died before serving /metrics"
        try:
            return scrape(settings)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def prometheus_binary() -> str:
    """Debian's prometheus (``make test`` installs it), or fail saying so."""
    path = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(path).exists():
        pytest.fail(
            "prometheus is not installed: run `make test`, which installs Debian's "
            "`prometheus` package when promtool is missing",
            pytrace=False,
        )
    return path


@dataclass
class Prometheus:
    """A Prometheus server started by a test, on a loopback port."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        """Base URL of its HTTP API."""
        return f"http://{LOOPBACK}:{self.port}"

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """A JSON answer of the HTTP API; errors (400, 422…) are returned, not raised."""
        query = urllib.parse.urlencode(params)
        try:
            body = http_get(f"{self.url}{path}?{query}", timeout=10.0)
        except urllib.error.HTTPError as exc:
            body = exc.read()
        result: dict[str, Any] = json.loads(body)
        return result

    def query(self, expr: str) -> dict[str, Any]:
        """An instant query at the current time."""
        return self.api("/api/v1/query", query=expr)

    def stop(self) -> None:
        """SIGTERM by pid, then SIGKILL if it does not stop."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_tail(self, lines: int = 20) -> str:
        """The end of its log, for assertion messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_prometheus(
    workdir: Path,
    targets: list[str],
    rule_files: list[Path],
    *,
    job: str = "triage-worker",
    interval: str = "1s",
    timeout: float = 30.0,
) -> Prometheus:
    """Start Prometheus scraping ``targets`` as ``job`` every ``interval``; wait until ready."""
    binary = prometheus_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {
                "job_name": job,
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "static_configs": [{"targets": targets}],
            }
        ],
    }
    config_path = workdir / "prometheus.yml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=child_guard(),
        )
    server = Prometheus(proc, port, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"prometheus exited {proc.returncode}:\n{server.log_tail()}")
        try:
            http_get(f"{server.url}/-/ready", timeout=1.0)
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise AssertionError(f"prometheus not ready:\n{server.log_tail()}") from None
            time.sleep(0.1)
