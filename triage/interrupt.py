"""Ctrl-C that is never lost while a command waits on the broker.

kafka-python 3.0's IO loop runs its tasks in the calling thread and catches
``BaseException`` around each one ("Unhandled exception in task"): a
``KeyboardInterrupt`` raised while the main thread is inside a kafka-python call (a
producer connecting, an admin request) is logged and dropped. The demo then played
its whole period and exited 0 after Ctrl-C (2 of 3 clean-clone test runs). With
:class:`CtrlC` in force, SIGINT still raises ``KeyboardInterrupt`` at once, and is also
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
