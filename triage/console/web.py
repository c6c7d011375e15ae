"""The web shell's small parts: change notifications for server-sent events, and an
access log that names route templates, never filled paths."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from triage.observability.logging import get_logger

access_log = get_logger("triage.console.access")


@dataclass(frozen=True, slots=True)
class Notice:
    """What every page says about the read model; ``failed``: it stopped."""

    text: str
    failed: bool = False


class Changes:
    """A version number bumped when the read model changed; waiters wake up.

    The feeder thread calls :meth:`bump_threadsafe`; each server-sent-event stream
    waits in :meth:`stream`, which sends at most one event per ``coalesce`` seconds
    (the last change is always sent).
    """

    def __init__(self, coalesce: float = 0.25) -> None:
        self.version = 0
        self.coalesce = coalesce
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the web server's event loop (at start-up)."""
        self._loop = loop
        self._event = asyncio.Event()

    def bump(self) -> None:
        """A change happened (on the loop's thread)."""
        self.version += 1
        if self._event is not None:
            self._event.set()
            self._event = asyncio.Event()

    def bump_threadsafe(self) -> None:
        """A change happened (from any thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.bump)

    async def wait(self, seen: int, timeout: float) -> int:
        """The version once it differs from ``seen``, or after ``timeout`` seconds."""
        if self.version == seen and self._event is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), timeout)
        return self.version

    async def stream(self, heartbeat: float = 15.0) -> AsyncIterator[str]:
        """Server-sent events: ``changed`` with the version; a comment as heartbeat."""
        seen = self.version
        yield f"retry: 2000\nevent: changed\ndata: {seen}\n\n"
        while True:
            version = await self.wait(seen, heartbeat)
            if version == seen:
                yield ": heartbeat\n\n"
                continue
            await asyncio.sleep(self.coalesce)
            seen = self.version
            yield f"event: changed\ndata: {seen}\n\n"


class AccessLog:
    """ASGI middleware: one line per request with the method, the route's path
    template (``/cases/{case_key}``), the status and the seconds taken."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Pass the request on; log it when the response has started."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = [500]

        async def capture(message: Any) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(unmatched)"
            access_log.info(
                "http_request",
                method=scope["method"],
                path=template,
                status=status[0],
                seconds=round(time.perf_counter() - began, 4),
            )


SECURITY_HEADERS = (
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self';"
     b" connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)  # fmt: skip
"""Sent with every response: scripts and styles from the console only, no framing,
no referrer (a case page's address stays on the desk)."""


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Pass the request on; add the headers to the response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)
