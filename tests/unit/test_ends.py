"""Log ends asked of the broker after a moment (:mod:`triage.streaming.ends`); the
stateful stage's merge judged on them is tested in test_shell.py."""

from __future__ import annotations

import asyncio

import pytest

from tests.shell_fakes import FakeBroker, settle
from triage.streaming.ends import BrokerEnds


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TestBrokerEnds:
    async def test_an_end_is_asked_for_then_given_only_to_moments_before_the_asking(
        self,
    ) -> None:
        tp = ("dv.reports.v1", 0)
        broker, clock = FakeBroker({tp: 7}), Clock()
        ends = BrokerEnds(broker.list_ends, clock=clock, spacing=0.0)

        assert ends.since(tp, 99.0) is None
        await settle(ends)
        assert broker.asked == [[tp]]
        assert ends.since(tp, 99.0) == 7
        assert ends.since(tp, 100.0) == 7  # asked at 100: good for a record of 100

        broker.ends[tp] = 9
        assert ends.since(tp, 100.5) is None  # a record that came after the asking
        clock.now = 101.0
        await settle(ends)
        assert ends.since(tp, 100.5) == 9
        assert len(broker.asked) == 2

    async def test_partitions_wanted_together_share_one_request(self) -> None:
        a, b = ("dv.reports.v1", 0), ("dv.case-updates.v1", 0)
        broker = FakeBroker({a: 3, b: 4})
        ends = BrokerEnds(broker.list_ends, clock=Clock(), spacing=0.0)

        assert ends.since(a, 50.0) is None
        assert ends.since(b, 50.0) is None
        await settle(ends)

        assert broker.asked == [[b, a]] or broker.asked == [[a, b]]
        assert (ends.since(a, 50.0), ends.since(b, 50.0)) == (3, 4)

    async def test_a_failing_broker_is_said_once_and_asked_again(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        tp = ("dv.reports.v1", 1)
        broker = FakeBroker({tp: 2})
        broker.down = True
        ends = BrokerEnds(broker.list_ends, clock=Clock(), spacing=0.0, retry=0.01)

        assert ends.since(tp, 1.0) is None
        await asyncio.sleep(0.05)
        assert ends.failing
        assert len(broker.asked) >= 2

        broker.down = False
        await settle(ends)
        assert not ends.failing
        assert ends.since(tp, 1.0) == 2

    def test_without_a_running_loop_nothing_is_asked(self) -> None:
        broker = FakeBroker({})
        ends = BrokerEnds(broker.list_ends, clock=Clock())
        assert ends.since(("dv.reports.v1", 0), 1.0) is None
        assert broker.asked == []
