"""Ctrl-C that is never lost while a command runs.

Two ways it was lost in the demo, which then played its whole period and exited 0
(2 of 3 clean-clone test runs):

- **Inherited as ignored.** A process started as a background job of a non-interactive
  shell (a CI harness, ``cmd &`` in a script) inherits SIGINT ignored, and Python then
  installs no handler: Ctrl-C, or the test's SIGINT, did nothing. Reproduced with the
  old demo: exit 0 after 27 s; with :class:`CtrlC`, exit 130 after 2 s.
- **Swallowed.** kafka-python 3.0 drives its IO loop in the calling thread when no IO
  thread runs (a consumer's poll) and catches ``BaseException`` around each task
  ("Unhandled exception in task"): a ``KeyboardInterrupt`` raised there is logged and
  dropped.

With :class:`CtrlC` in force, SIGINT raises ``KeyboardInterrupt`` at once, and is also
kept: :meth:`CtrlC.check`, called where the command can stop cleanly, raises it again.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any


class CtrlC:
    """A context in which Ctrl-C is remembered until :meth:`check` acts on it."""

    def __init__(self) -> None:
        self._pressed = threading.Event()
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    @property
    def pressed(self) -> bool:
        """Whether Ctrl-C came."""
        return self._pressed.is_set()

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if Ctrl-C came (however it was handled then)."""
        if self._pressed.is_set():
            raise KeyboardInterrupt

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self._pressed.set()
        raise KeyboardInterrupt
