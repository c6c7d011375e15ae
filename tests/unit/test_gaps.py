"""Records the consumer skipped are read back from the broker and handled first."""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import dataclass, field
from datetime import timedelta

# kafka-python 3.0.12 calls deprecated importlib.resources functions while it is
# imported (the shell imports it); with filterwarnings=error that fails collection.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from triage.streaming.shell import StreamShell, partition_of

from tests.shell_fakes import FakeKafka, Message
from triage.events.inputs import InputEvent
from triage.events.wire import to_millis
from triage.observability.metrics import TriageMetrics
from triage.pipeline.engine import Engine
from triage.streaming.forward import Forwarder
from triage.streaming.gaps import Fetched, GapGuard, Recovered, TailWatch
from triage.testing import VICTIM_REF, decision_id_for, make_ack, make_report
from triage.topics import REPORT_TYPES, Topics

TOPICS = Topics()
PARTITIONS = 4
PARTITION = partition_of(VICTIM_REF.encode(), PARTITIONS)


def message_of(event: InputEvent, offset: int) -> Message:
    """``event`` on its input topic at ``offset`` of the victim's partition."""
    topic = TOPICS.reports if event.type in REPORT_TYPES else TOPICS.updates
    return Message(
        topic, PARTITION, offset, event.victim_ref.encode(), event.model_dump_json().encode(),
        to_millis(event.time) / 1000,
    )  # fmt: skip


@dataclass
class FakeBroker:
    """What the broker holds per (topic, partition, offset); records every read."""

    log: dict[tuple[str, int, int], Message] = field(default_factory=dict)
    reads: list[tuple[str, int, int, int]] = field(default_factory=list)

    def hold(self, *messages: Message) -> None:
        for m in messages:
            self.log[(m.topic, m.partition, m.offset)] = m

    async def fetch(self, topic: str, partition: int, start: int, end: int) -> list[Fetched]:
        self.reads.append((topic, partition, start, end))
        return [
            Fetched(m.topic, m.partition, m.offset, m.key, m.value, m.timestamp, m.headers)
            for offset in range(start, end)
            if (m := self.log.get((topic, partition, offset))) is not None
        ]


class TestGapGuard:
    def test_the_next_offset_is_expected(self) -> None:
        guard = GapGuard()
        assert guard.missing("t", 0, 5) is None  # nothing known yet
        assert guard.missing("t", 0, 6) is None
        assert guard.missing("t", 0, 9) == (7, 9)
        assert guard.missing("t", 1, 0) is None  # another partition

    def test_a_redelivery_is_no_gap_and_does_not_move_back(self) -> None:
        guard = GapGuard()
        guard.missing("t", 0, 10)
        assert guard.missing("t", 0, 3) is None  # a seek back to the commit
        assert guard.missing("t", 0, 4) is None
        assert guard.missing("t", 0, 11) is None
        assert guard.missing("t", 0, 13) == (12, 13)

    def test_after_an_assignment_the_commit_is_expected(self) -> None:
        commits = {("t", 0): 36}
        guard = GapGuard(lambda t, p: commits.get((t, p)))
        assert guard.missing("t", 0, 37) == (36, 37)  # the first record after the commit
        guard.forget([("t", 0)])
        commits[("t", 0)] = 40
        assert guard.missing("t", 0, 40) is None
        assert guard.missing("t", 1, 3) is None  # no commit there: nothing to say

    def test_forgetting_partitions_by_number(self) -> None:
        guard = GapGuard()
        guard.missing("a", 2, 5)
        guard.missing("b", 2, 5)
        guard.missing("a", 3, 5)
        guard.forget_partitions([2])
        assert guard.missing("a", 2, 9) is None
        assert guard.missing("b", 2, 9) is None
        assert guard.missing("a", 3, 9) == (6, 9)


class TestStatefulStage:
    async def test_a_skipped_report_is_read_back_and_decided_before_its_update(
        self, engine: Engine
    ) -> None:
        """The consumer delivers offset 0 and then 2 of the reports topic: offset 1, a
        report, is read from the broker and decided first; its acknowledgement (on the
        updates topic) then finds it; acknowledgements go in offset order, the read-back
        record's as a Recovered token."""
        kafka, broker, metrics = FakeKafka(), FakeBroker(), TriageMetrics()
        first = make_report(id="evt-r0")
        skipped = make_report(id="evt-r1", time=first.time + timedelta(minutes=1))
        third = make_report(id="evt-r2", time=first.time + timedelta(minutes=2))
        ack = make_ack(
            time=first.time + timedelta(minutes=3),
            decision_id=decision_id_for(skipped),
        )
        m0, m1, m2 = (message_of(e, o) for o, e in enumerate((first, skipped, third)))
        broker.hold(m0, m1, m2)
        shell = StreamShell(
            engine, TOPICS, {}, kafka.send, kafka.ack, partitions=PARTITIONS,
            fetch_range=broker.fetch, metrics=metrics,
        )  # fmt: skip

        await shell.on_message(m0, "t0")
        await shell.on_message(m2, "t2")
        await shell.on_message(message_of(ack, 0), "ack")
        await shell.flush()

        assert broker.reads == [(TOPICS.reports, PARTITION, 1, 2)]
        decided = [b["source_event_id"] for b in kafka.bodies() if b["type"] == "triage.decision"]
        assert decided == ["evt-r0", "evt-r1", "evt-r2"]
        assert "triage.dead_letter" not in kafka.types()
        assert kafka.acked[:3] == ["t0", Recovered(TOPICS.reports, PARTITION, 1), "t2"]
        assert metrics.skipped_records._value.get() == 1

    async def test_without_a_reader_nothing_is_checked(self, engine: Engine) -> None:
        """Tools and tests without a broker: a jump in offsets is taken as it is."""
        kafka = FakeKafka()
        shell = StreamShell(engine, TOPICS, {}, kafka.send, kafka.ack, partitions=PARTITIONS)
        await shell.on_message(message_of(make_report(id="evt-a"), 0), "a")
        await shell.on_message(message_of(make_report(id="evt-b"), 5), "b")
        await shell.flush()
        assert kafka.acked == ["a", "b"]


class TestForwardingStage:
    async def test_a_skipped_input_record_is_forwarded_before_the_next(self) -> None:
        """Offsets 0 then 3: offsets 1 and 2 are read back and forwarded, in order, before
        offset 3; an offset the broker holds nothing at (a transaction marker) is skipped."""
        sent: list[int] = []
        acked: list[object] = []
        broker = FakeBroker()
        report = make_report()
        messages = [message_of(report.model_copy(update={"id": f"evt-{o}"}), o) for o in range(4)]
        broker.hold(messages[0], messages[1], messages[3])  # nothing at offset 2

        async def send(topic: str, partition: int, key: bytes | None, value: bytes | None,
                       headers: list[tuple[str, bytes]], ts: float) -> object:  # fmt: skip
            sent.append(int(dict(headers)["triage-upstream-offset"]))
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        async def ack(token: object) -> None:
            acked.append(token)

        stage = Forwarder(TOPICS, send, ack, partitions=PARTITIONS, fetch_range=broker.fetch)
        await stage.on_message(messages[0], "t0")
        await stage.on_message(messages[3], "t3")

        assert broker.reads == [(TOPICS.reports, PARTITION, 1, 3)]
        assert sent == [0, 1, 3]
        assert acked == ["t0", Recovered(TOPICS.reports, PARTITION, 1), "t3"]


class TestTails:
    def test_records_past_the_expected_offset_are_overdue_after_a_quiet_spell(self) -> None:
        guard = GapGuard(lambda _t, _p: 3)  # the group's commit
        high = {("t", 0): 5, ("t", 1): 3}
        watch = TailWatch(guard, lambda t, p: high.get((t, p)), quiet=2.0, now=90.0)
        assigned = [("t", 0), ("t", 1), ("t", 2)]

        assert watch.overdue(assigned, now=100.0) == []  # first seen behind
        assert watch.overdue(assigned, now=101.0) == []
        assert watch.overdue(assigned, now=102.0) == [("t", 0, 3, 5)]
        assert watch.overdue(assigned, now=103.0) == []  # asked once per quiet spell

        guard.passed("t", 0, 5)
        assert watch.overdue(assigned, now=110.0) == []  # caught up

    def test_nothing_is_overdue_while_the_stage_is_being_fed(self) -> None:
        """Records of one partition keep coming: another partition's records may only be
        buffered behind them (the consumer's back-pressure), so none is read back."""
        guard = GapGuard()
        guard.missing("t", 0, 9)
        watch = TailWatch(guard, lambda _t, _p: 12, quiet=1.0, now=0.0)
        for second in range(2, 10):
            watch.delivered("t", 1, now=float(second))
            assert watch.overdue([("t", 0), ("t", 1)], now=second + 0.5) == []
        assert watch.overdue([("t", 0)], now=11.0) == []  # the stage is quiet: first seen
        assert watch.overdue([("t", 0)], now=12.0) == [("t", 0, 10, 12)]

    async def test_the_shell_reads_back_a_skipped_last_record(self, engine: Engine) -> None:
        """Offset 1, the last record of its partition, never reaches the stage: after the
        quiet spell the tick reads it back and it is decided."""
        kafka, broker = FakeKafka(), FakeBroker()
        first = make_report(id="evt-r0")
        last = make_report(id="evt-r1", time=first.time + timedelta(minutes=1))
        m0, m1 = message_of(first, 0), message_of(last, 1)
        broker.hold(m0, m1)
        high = {(TOPICS.reports, PARTITION): 2, (TOPICS.updates, PARTITION): 0}
        shell = StreamShell(
            engine, TOPICS, {}, kafka.send, kafka.ack, partitions=PARTITIONS,
            fetch_range=broker.fetch, highwater=lambda t, p: high.get((t, p)),
            assigned=lambda: list(high), ready=lambda: True, tail_quiet=0.0,
        )  # fmt: skip

        await shell.on_message(m0, "t0")
        await shell.tick()
        await asyncio.sleep(0.55)  # tails are looked at twice a second
        await shell.tick()
        await shell.flush()

        assert broker.reads == [(TOPICS.reports, PARTITION, 1, 2)]
        decided = [b["source_event_id"] for b in kafka.bodies() if b["type"] == "triage.decision"]
        assert decided == ["evt-r0", "evt-r1"]
        assert kafka.acked == ["t0", Recovered(TOPICS.reports, PARTITION, 1)]

    async def test_nothing_is_read_back_while_the_worker_is_not_ready(self, engine: Engine) -> None:
        """Rebalancing or recovering its table, the worker reads nothing back: a record
        processed then would miss its victim's history."""
        kafka, broker = FakeKafka(), FakeBroker()
        high = {(TOPICS.reports, PARTITION): 2}
        shell = StreamShell(
            engine, TOPICS, {}, kafka.send, kafka.ack, partitions=PARTITIONS,
            fetch_range=broker.fetch, highwater=lambda t, p: high.get((t, p)),
            committed=lambda _t, _p: 0, assigned=lambda: list(high), ready=lambda: False,
            tail_quiet=0.0,
        )  # fmt: skip
        await shell.tick()
        assert broker.reads == []


class TestHeldUpdatesInTheWorker:
    async def test_an_update_waits_past_its_grace_while_its_partition_is_behind(
        self, engine: Engine
    ) -> None:
        """An acknowledgement came before its report; another victim's record takes the
        stream clock past the grace. While the reports topic still holds records this
        stage has not read, the acknowledgement keeps waiting (its report may be among
        them); the report comes and the acknowledgement is applied: no dead letter."""
        kafka = FakeKafka()
        report = make_report()
        ack = make_ack()
        other = make_report(
            victim_ref="V-0002B3", id="evt-other", time=report.time + timedelta(hours=3)
        )
        high = {TOPICS.reports: 1, TOPICS.updates: 1}
        shell = StreamShell(
            engine, TOPICS, {}, kafka.send, kafka.ack, partitions=PARTITIONS,
            highwater=lambda t, _p: high.get(t), update_hold=0.01, lane_wait=60.0,
        )  # fmt: skip

        await shell.on_message(message_of(ack, 0), "ack")
        await asyncio.sleep(0.05)  # past the merge's idle wait and the 10 ms hold
        await shell.tick()
        high[TOPICS.reports] = 3  # the broker holds two reports this stage has not read
        other_message = message_of(other, 0)
        other_message.partition = PARTITION
        await shell.on_message(other_message, "other")
        await shell.tick()
        assert "triage.dead_letter" not in kafka.types()  # kept: the partition is behind

        await shell.on_message(message_of(report, 1), "report")
        await shell.tick()
        await shell.flush()

        assert "triage.dead_letter" not in kafka.types()
        assert "triage.decision" in kafka.types()
