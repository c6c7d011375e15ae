"""Ctrl-C is never lost (:mod:`triage.interrupt`), even when a library swallows it."""

from __future__ import annotations

import os
import signal
import time

import pytest

from triage.interrupt import CtrlC


def swallowing(work: float) -> None:
    """What kafka-python 3.0's IO loop does around each task: catch BaseException."""
    try:
        deadline = time.monotonic() + work
        while time.monotonic() < deadline:
            time.sleep(0.001)
    except BaseException:  # the point of the test
        pass


def test_a_swallowed_ctrl_c_is_raised_again_at_the_next_check() -> None:
    with CtrlC() as ctrl_c:
        ctrl_c.check()  # nothing yet
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        previous = signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
        try:
            swallowing(0.5)
        finally:
            signal.signal(signal.SIGALRM, previous)
        assert ctrl_c.pressed
        with pytest.raises(KeyboardInterrupt):
            ctrl_c.check()


def test_ctrl_c_still_interrupts_at_once() -> None:
    with CtrlC() as ctrl_c, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)  # the handler raises before this returns
    assert ctrl_c.pressed


def test_the_previous_handler_comes_back() -> None:
    before = signal.getsignal(signal.SIGINT)
    with CtrlC():
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before


def test_ctrl_c_works_when_the_parent_left_it_ignored() -> None:
    """A background job of a non-interactive shell starts with SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with CtrlC() as ctrl_c, pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        assert ctrl_c.pressed
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
