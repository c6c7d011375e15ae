"""The worker's listening ports, checked before anything slow starts.

A port another process holds is refused in one line naming the setting
(``metrics port 9464 is in use (TRIAGE_METRICS_PORT)``), not with an ``OSError``
traceback (``/metrics``) or a Faust log line that names no port (the web server).
Light on purpose (no Faust): the command line checks before loading the worker.
"""

from __future__ import annotations

import errno
import socket

from triage.errors import ConfigError
from triage.settings import TriageSettings

WEB_HOST = "127.0.0.1"
"""Where Faust's web server listens (set in :func:`triage.streaming.app.create_app`)."""


def check_ports(settings: TriageSettings) -> None:
    """Raise :class:`ConfigError` if the metrics or the web port cannot be listened on
    (a port of 0 serves nothing and is not checked)."""
    servers = (
        ("metrics", settings.metrics_host, settings.metrics_port),
        ("web", WEB_HOST, settings.web_port),
    )
    for what, host, port in servers:
        if port and (problem := _bind_problem(host, port)) is not None:
            raise port_error(what, host, port, problem)


def port_error(what: str, host: str, port: int, exc: OSError) -> ConfigError:
    """``metrics port 9464 is in use (TRIAGE_METRICS_PORT)``, or why else the ``what``
    server cannot listen on ``host:port``, naming the settings to change."""
    variable = f"TRIAGE_{what.upper()}_PORT"
    if exc.errno == errno.EADDRINUSE:
        return ConfigError(f"{what} port {port} is in use ({variable})")
    if what == "metrics":  # its address is a setting too
        variable = f"TRIAGE_METRICS_HOST, {variable}"
    reason = exc.strerror or type(exc).__name__
    return ConfigError(
        f"cannot listen on {host}:{port} for the {what} server: {reason} ({variable})"
    )


def _bind_problem(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be bound now, or None. Like the servers, the probe
    reuses an address in TIME_WAIT; a socket listening there still refuses it."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:  # socket.gaierror too: a host name that does not resolve
        return exc
    return None
