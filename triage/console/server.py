"""Running the console: stores, feeder, publisher and web server, started and stopped
together (in the foreground for ``triage console``, in a thread for the demo)."""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

import uvicorn

from triage.clock import SystemClock
from triage.console.actions import Publisher
from triage.console.app import ConsoleContext, create_app
from triage.console.consumer import Feeder
from triage.console.store import Accounts, ReadModel
from triage.console.web import Changes
from triage.errors import TriageError
from triage.scoring.rules import load_rules
from triage.settings import TriageSettings

READ_MODEL_FILE = "read-model.sqlite3"
ACCOUNTS_FILE = "accounts.sqlite3"


class ConsoleError(TriageError):
    """The console could not start (port taken, no broker)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleConfig:
    """Where the console listens, keeps its files, and which clock it shows."""

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("var/console")
    rebuild: bool = False
    clock: str = "wall"
    """``wall``: actions and countdowns use the wall clock; ``stream``: the latest record
    time read (the demo, whose worker runs on event time)."""
    session_hours: float = 8.0
    secure_cookies: bool = False
    access_log: bool = True
    """One log line per request (route templates only); the demo turns it off."""
    port_option: str = "--port"
    """The option that sets the port, named when the port is taken."""


class ConsoleServer:
    """The console, started by ``with`` (or :meth:`start`) and stopped at its end."""

    def __init__(self, settings: TriageSettings, config: ConsoleConfig) -> None:
        if settings.kafka_bootstrap is None:
            raise ConsoleError("no broker: pass --bootstrap or set TRIAGE_KAFKA_BOOTSTRAP")
        self.config = config
        self.model = ReadModel(config.data_dir / READ_MODEL_FILE)
        if config.rebuild:
            self.model.rebuild()
        self.accounts = Accounts(config.data_dir / ACCOUNTS_FILE)
        self.changes = Changes()
        security = settings.kafka_python_security()
        rules = load_rules(settings.rules_file)
        self.feeder = Feeder(
            settings.kafka_bootstrap, security, settings.topics, self.model,
            self.accounts.secret(), self.changes.bump_threadsafe,
            {level.value: sla.queue for level, sla in rules.sla.items()},
        )  # fmt: skip
        self.publisher = Publisher(settings.kafka_bootstrap, security, settings.topics)
        wall = SystemClock()
        now: Callable[[], datetime] = wall.now
        if config.clock == "stream":
            now = lambda: self.feeder.stream_time or wall.now()  # noqa: E731
        self.app = create_app(
            ConsoleContext(
                model=self.model, accounts=self.accounts, publisher=self.publisher,
                changes=self.changes, now=now, session_max_age=config.session_hours * 3600,
                secure_cookies=config.secure_cookies, wall=lambda: wall.now().timestamp(),
                status=self.feeder.status,
            ),
            access_log=config.access_log,
        )  # fmt: skip
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The console's address (after start)."""
        assert self._socket is not None
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}/"

    def _bind(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.host, self.config.port))
        except OSError as exc:
            sock.close()
            taken = "is in use" if exc.errno == errno.EADDRINUSE else f"failed: {exc.strerror}"
            raise ConsoleError(
                f"console port {self.config.port} {taken} ({self.config.port_option})"
            ) from None
        sock.listen(128)
        return sock

    def _uvicorn(self) -> uvicorn.Server:
        return uvicorn.Server(
            uvicorn.Config(
                self.app, log_config=None, access_log=False, lifespan="on",
                timeout_graceful_shutdown=1, proxy_headers=False,
            )
        )  # fmt: skip

    def start(self) -> ConsoleServer:
        """Start the feeder and the web server in background threads."""
        self._socket = self._bind()
        self.feeder.start()
        self._server = self._uvicorn()
        server, sock = self._server, self._socket
        self._thread = threading.Thread(
            target=lambda: server.run(sockets=[sock]), name="console-web", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            if not self._thread.is_alive():
                raise ConsoleError("the console's web server stopped at start-up")
            time.sleep(0.05)
        return self

    def serve_forever(self) -> None:
        """Run in the foreground until Ctrl-C (the feeder in a thread)."""
        self._socket = self._bind()
        self.feeder.start()
        self._server = self._uvicorn()
        try:
            self._server.run(sockets=[self._socket])
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop the web server and the feeder; close the files and the producer."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(5)
        self.feeder.stop()
        if self.feeder.is_alive():
            self.feeder.join(5)
        self.publisher.close()
        if self._socket is not None:
            self._socket.close()
        self.model.close()
        self.accounts.close()

    def __enter__(self) -> ConsoleServer:
        try:
            return self.start()
        except BaseException:
            self.stop()  # files, producer and threads closed even when start fails
            raise

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
