"""The demo fails, with one plain line, when its synthetic stream was not all delivered."""

from __future__ import annotations

import warnings

import pytest

# kafka-python 3.0.12 calls deprecated importlib.resources functions while it is
# imported (the demo imports it); with filterwarnings=error that fails collection.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from triage.demo.run import DemoError, _check_played

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
