"""Helpers for tests that read a running worker's /metrics, or run a real Prometheus.

Used by the integration tests (``tests/integration/test_prometheus.py``,
``test_metrics_equivalence.py``, ``test_privacy_sentinels.py``, ``test_page_latency.py``).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
    alertmanagers: list[str] | None = None,
) -> Prometheus:
    """Start Prometheus scraping ``targets`` as ``job`` every ``interval`` (rules evaluated
    as often), sending alerts to ``alertmanagers`` (host:port) if given; wait until ready."""
    binary = prometheus_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
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
    if alertmanagers:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": alertmanagers}]}]}
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
                # Sending to Alertmanager is not held back (default 1 m between re-sends
                # of a firing alert; the first send is at the evaluation that fires it).
                "--rules.alert.resend-delay=1s",
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


# -- Alertmanager and a webhook receiver standing in for the pager ----------------------


def alertmanager_binary() -> str:
    """Debian's prometheus-alertmanager (``make promtool`` installs it), or fail saying so."""
    path = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
    if not Path(path).exists():
        pytest.fail(
            "prometheus-alertmanager is not installed: run `make promtool`, which installs "
            "Debian's `prometheus` and `prometheus-alertmanager` packages",
            pytrace=False,
        )
    return path


@dataclass
class Page:
    """One webhook notification as the receiver got it."""

    received: float
    """Wall clock (``time.time()``) when the request arrived."""
    body: dict[str, Any]


@dataclass
class Pager:
    """A loopback HTTP server that records every webhook POST (the pager's stand-in)."""

    server: ThreadingHTTPServer
    pages: list[Page] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        """Where Alertmanager posts."""
        return f"http://{LOOPBACK}:{self.server.server_address[1]}/page"

    def wait_for(self, alertname: str, timeout: float) -> Page | None:
        """The first firing notification for ``alertname``, waiting up to ``timeout``."""

        def find() -> Page | None:
            for page in self.pages:
                alerts = page.body.get("alerts", [])
                if any(
                    a.get("status") == "firing" and a["labels"].get("alertname") == alertname
                    for a in alerts
                ):
                    return page
            return None

        with self.arrived:
            self.arrived.wait_for(lambda: find() is not None, timeout)
            return find()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.server.server_close()


def start_pager() -> Pager:
    """Serve the webhook receiver on a free loopback port, in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received = time.time()
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            self.send_response(200)
            self.end_headers()
            with pager.arrived:
                pager.pages.append(Page(received, body))
                pager.arrived.notify_all()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: no request lines on stderr."""

    pager = Pager(ThreadingHTTPServer((LOOPBACK, 0), Handler))
    threading.Thread(target=pager.server.serve_forever, daemon=True).start()
    return pager


@dataclass
class Alertmanager:
    """An Alertmanager started by a test, on a loopback port, clustering off."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def target(self) -> str:
        """host:port, for Prometheus's ``alerting`` section."""
        return f"{LOOPBACK}:{self.port}"

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


def start_alertmanager(
    workdir: Path, webhook_url: str, *, group_wait: str = "0s", timeout: float = 30.0
) -> Alertmanager:
    """Start Alertmanager sending every alert to ``webhook_url``; wait until ready.

    Grouped like deploy/alertmanager/alertmanager.yml, but with test intervals:
    ``group_wait`` before the first notification of a group, 1 s between updates.
    """
    binary = alertmanager_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "route": {
            "receiver": "pager",
            "group_by": ["alertname", "queue", "level", "stage", "topic", "instance"],
            "group_wait": group_wait,
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {"name": "pager", "webhook_configs": [{"url": webhook_url, "send_resolved": False}]}
        ],
    }
    config_path = workdir / "alertmanager.yml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    port = free_port()
    log_path = workdir / "alertmanager.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.path={workdir / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
                "--cluster.listen-address=",  # a single instance: no gossip, no peers
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=child_guard(),
        )
    server = Alertmanager(proc, port, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"alertmanager exited {proc.returncode}:\n{server.log_tail()}")
        try:
            http_get(f"http://{LOOPBACK}:{port}/-/ready", timeout=1.0)
            return server
        except OSError:
            if time.monotonic() > deadline:
                server.stop()
                raise AssertionError(f"alertmanager not ready:\n{server.log_tail()}") from None
            time.sleep(0.1)
