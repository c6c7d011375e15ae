"""Starting a worker: a port it cannot have is one line naming the setting, and
``TRIAGE_WEB_PORT=0`` does what the settings reference says."""

from __future__ import annotations

import socket
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# kafka-python warns while it is imported (the app imports it): see test_shell.py.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from triage.streaming.app import create_app
    from triage.streaming.run import serve_metrics

from triage.errors import ConfigError
from triage.observability.metrics import TriageMetrics
from triage.pipeline.engine import Engine
from triage.settings import TriageSettings
from triage.streaming.ports import WEB_HOST, check_ports

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def settings_for(tmp_path: Path, **fields: object) -> TriageSettings:
    """Worker settings that reach no broker and serve nothing, then ``fields``."""
    base: dict[str, object] = {
        "kafka_bootstrap": "127.0.0.1:1",
        "data_dir": tmp_path,
        "web_port": 0,
        "metrics_port": 0,
    }
    return TriageSettings(**{**base, **fields})  # type: ignore[arg-type]


@pytest.fixture(name="taken_port")
def _taken_port() -> Iterator[int]:
    """A loopback port another process (this test) listens on."""
    with socket.socket() as sock:
        sock.bind((WEB_HOST, 0))
        sock.listen()
        yield sock.getsockname()[1]


def serve(settings: TriageSettings) -> None:
    """Start ``/metrics`` as the worker does."""
    serve_metrics(settings, TriageMetrics())


class TestPortsInUse:
    @pytest.mark.parametrize("start", [check_ports, serve], ids=["checked", "served"])
    def test_a_metrics_port_in_use_is_one_line(
        self, tmp_path: Path, taken_port: int, start: Callable[[TriageSettings], None]
    ) -> None:
        """Not a 34-line OSError traceback: the port and the variable that sets it, from
        the check before the start and from the server itself (a port taken between)."""
        settings = settings_for(tmp_path, metrics_port=taken_port)

        with pytest.raises(ConfigError) as raised:
            start(settings)

        assert str(raised.value) == f"metrics port {taken_port} is in use (TRIAGE_METRICS_PORT)"

    @pytest.mark.parametrize("start", [check_ports, serve], ids=["checked", "served"])
    def test_a_metrics_address_that_is_not_ours_names_both_settings(
        self, tmp_path: Path, start: Callable[[TriageSettings], None]
    ) -> None:
        """An address of another machine (TEST-NET-1) cannot be listened on: the line says
        why and names the host and port variables."""
        settings = settings_for(tmp_path, metrics_host="192.0.2.1", metrics_port=9464)

        with pytest.raises(ConfigError) as raised:
            start(settings)

        assert str(raised.value).startswith("cannot listen on 192.0.2.1:9464 for the metrics")
        assert str(raised.value).endswith("(TRIAGE_METRICS_HOST, TRIAGE_METRICS_PORT)")
        assert "\n" not in str(raised.value)

    def test_a_web_port_in_use_is_one_line(self, tmp_path: Path, taken_port: int) -> None:
        """Faust would stop on it with a log line that names no port; we say which."""
        settings = settings_for(tmp_path, web_port=taken_port)

        with pytest.raises(ConfigError) as raised:
            check_ports(settings)

        assert str(raised.value) == f"web port {taken_port} is in use (TRIAGE_WEB_PORT)"

    def test_free_ports_and_disabled_servers_pass(self, tmp_path: Path) -> None:
        """A free web port, or none, is no problem (and metrics port 0 serves nothing)."""
        with socket.socket() as sock:
            sock.bind((WEB_HOST, 0))
            free = sock.getsockname()[1]

        check_ports(settings_for(tmp_path, web_port=free, metrics_port=free))
        check_ports(settings_for(tmp_path))
        serve(settings_for(tmp_path))


class TestWebPortZero:
    def test_zero_disables_the_web_server_as_documented(
        self, engine: Engine, tmp_path: Path
    ) -> None:
        """``TRIAGE_WEB_PORT=0`` turns Faust's web server off (it does not pick a free
        port), and the settings reference says so."""
        app, _shell = create_app(settings_for(tmp_path, web_port=0), engine)
        [row] = [
            line
            for line in REFERENCE.read_text(encoding="utf-8").splitlines()
            if line.startswith("| `TRIAGE_WEB_PORT` ")
        ]

        assert app.conf.web_enabled is False
        assert "0 disables the web server" in row
        assert "free" not in row

    def test_another_port_enables_it_there(self, engine: Engine, tmp_path: Path) -> None:
        """Any other port serves the web server on that port, on the loopback address."""
        app, _shell = create_app(settings_for(tmp_path, web_port=6070), engine)

        assert app.conf.web_enabled is True
        assert (app.conf.web_port, app.conf.web_bind) == (6070, WEB_HOST)
