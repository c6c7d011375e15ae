"""The demo fails, with one plain line, when its synthetic stream was not all delivered
or its worker stopped (with the worker's own error line when it printed one)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

# kafka-python 3.0.12 calls deprecated importlib.resources functions while it is
# imported (the demo imports it); with filterwarnings=error that fails collection.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from triage.demo.run import DemoError, _check_played, worker_exit_message

from triage.errors import BrokerError
from triage.replay.player import PlayResult


class TestCheckPlayed:
    def test_a_fully_delivered_stream_passes(self) -> None:
        """Nothing undelivered: the demo goes on."""
        _check_played([PlayResult(120, 0, None, 1.0)])

    def test_undelivered_records_fail_the_demo_with_the_count(self) -> None:
        """Records the broker did not acknowledge stop the demo with how many and why."""
        played: list[PlayResult | BaseException] = [
            PlayResult(120, 0, None, 1.0, undelivered=7, error="KafkaTimeoutError")
        ]

        with pytest.raises(DemoError, match=r"^7 of 120 records were not delivered \("):
            _check_played(played)

    def test_a_publisher_error_is_not_lost_in_its_thread(self) -> None:
        """A broker error raised in the publisher thread fails the demo."""
        with pytest.raises(DemoError, match="publishing the synthetic stream failed: gone"):
            _check_played([BrokerError("gone")])

    def test_a_publisher_without_a_result_fails_the_demo(self) -> None:
        """A publisher that ended without result or error is a failure, not a success."""
        with pytest.raises(DemoError, match="without a result"):
            _check_played([])


class TestWorkerExitMessage:
    def test_the_workers_own_error_line_is_the_message(self, tmp_path: Path) -> None:
        """A worker that stopped with ``error: ...`` (metrics port in use, say): the demo
        says the same, not only "the worker exited with code 1"."""
        log = tmp_path / "worker.log"
        log.write_text(
            '{"event": "starting"}\nerror: metrics port 9464 is in use (TRIAGE_METRICS_PORT)\n',
            encoding="utf-8",
        )

        assert worker_exit_message(1, log) == "metrics port 9464 is in use (TRIAGE_METRICS_PORT)"

    def test_an_earlier_runs_error_is_not_this_runs(self, tmp_path: Path) -> None:
        """The log is appended to: only what this run wrote, after ``start``, counts."""
        log = tmp_path / "worker.log"
        earlier = "error: web port 6066 is in use (TRIAGE_WEB_PORT)\n"
        log.write_text(earlier + '{"event": "stopping"}\n', encoding="utf-8")

        message = worker_exit_message(0, log, start=len(earlier))

        assert message == f"the worker exited with code 0; see {log}"

    def test_without_an_error_line_the_code_and_the_log_are_named(self, tmp_path: Path) -> None:
        """No error line (killed, say), or no log at all: the exit code and the log path."""
        missing = tmp_path / "var" / "worker.log"

        assert worker_exit_message(-9, missing) == f"the worker exited with code -9; see {missing}"
