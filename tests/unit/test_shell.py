"""The stream shell without Faust: fake messages in, fake sends and acks out."""

from __future__ import annotations

import asyncio
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

# kafka-python 3.0.12 calls deprecated importlib.resources functions while it is
# imported (the shell imports it too); with filterwarnings=error that fails
# collection. Import it once here with that one warning silenced, as the
# integration conftest does.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from kafka.partitioner.default import DefaultPartitioner

from tests.shell_fakes import FakeBroker, FakeKafka, Message, settle
from triage.clock import ManualClock
from triage.errors import AckGapError
from triage.events.inputs import InputEvent
from triage.events.wire import CONTENT_TYPE, format_timestamp, to_millis
from triage.observability.metrics import TriageMetrics
from triage.pipeline.engine import Engine
from triage.pipeline.state import VictimState
from triage.replay.records import parse_timestamp
from triage.streaming.ends import BrokerEnds
from triage.streaming.fencing import unstamp
from triage.streaming.shell import StreamShell, partition_of
from triage.testing import (
    VICTIM_REF,
    after,
    decision_id_for,
    make_ack,
    make_report,
)
from triage.topics import REPORT_TYPES, Topics

PARTITIONS = 4
PARTITION = partition_of(VICTIM_REF.encode(), PARTITIONS)
"""The partition Kafka gives the default victim (the table rebuild relies on it)."""
DANGER = {"immediate_danger": "yes"}
OTHER = "V-0002B3"


def message_of(event: InputEvent, offset: int, partition: int = PARTITION) -> Message:
    """``event`` on its input topic, keyed by victim, stamped with its time (seconds)."""
    topics = Topics()
    topic = topics.reports if event.type in REPORT_TYPES else topics.updates
    return Message(
        topic=topic,
        partition=partition,
        offset=offset,
        key=event.victim_ref.encode(),
        value=event.model_dump_json().encode(),
        timestamp=to_millis(event.time) / 1000,
    )


ShellFactory = Callable[..., StreamShell]


@pytest.fixture(name="kafka")
def _kafka() -> FakeKafka:
    """A fresh fake producer and acknowledger."""
    return FakeKafka()


@pytest.fixture(name="make_shell")
def _make_shell(engine: Engine, kafka: FakeKafka) -> ShellFactory:
    """Build shells on the same fake Kafka; keyword arguments go to :class:`StreamShell`."""

    def make(table: dict[bytes, bytes] | None = None, **kwargs: Any) -> StreamShell:
        return StreamShell(
            engine,
            Topics(),
            table if table is not None else {},
            kafka.send,
            kafka.ack,
            partitions=PARTITIONS,
            **kwargs,
        )

    return make


def highwaters(marks: dict[str, int]) -> Callable[[str, int], int | None]:
    """A highwater function reading ``marks`` (topic → next offset) at call time."""
    return lambda topic, _partition: marks.get(topic)


class FakeCluster:
    """Just enough cluster metadata for kafka-python's DefaultPartitioner."""

    def __init__(self, partitions: int) -> None:
        self._partitions = set(range(partitions))

    def topics(self) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, _topic: str) -> set[int]:
        return self._partitions

    def available_partitions_for_topic(self, _topic: str) -> set[int]:
        return self._partitions


class TestStreamShell:
    async def test_outputs_carry_cloudevents_headers_and_key(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """Each output goes to its topic, keyed by victim, with CloudEvents binary headers."""
        shell = make_shell()

        await shell.on_message(message_of(make_report(), 0), "t0")

        topics = Topics()
        assert [s.topic for s in kafka.sent] == [topics.decisions, topics.queue("standard")]
        for sent in kafka.sent:
            headers = dict(sent.headers)
            body = sent.body
            assert sent.key == VICTIM_REF.encode()
            assert headers == {
                "ce_specversion": b"1.0",
                "ce_id": body["id"].encode(),
                "ce_type": body["type"].encode(),
                "ce_source": body["source"].encode(),
                "ce_time": format_timestamp(parse_timestamp(body["time"])).encode(),
                "content-type": CONTENT_TYPE.encode(),
            }

    @pytest.mark.parametrize(
        "when",
        [after(), after(milliseconds=1), after(milliseconds=7, microseconds=999), after(days=400)],
        ids=["whole-second", "odd-ms", "sub-ms", "next-year"],
    )
    async def test_record_timestamp_is_the_output_time_to_the_millisecond(
        self, make_shell: ShellFactory, kafka: FakeKafka, when: datetime
    ) -> None:
        """The send timestamp, cut to milliseconds as Faust does, is exactly the output's time."""
        shell = make_shell()

        await shell.on_message(message_of(make_report(time=when), 0), "t0")

        assert kafka.sent
        for sent in kafka.sent:
            expected = to_millis(parse_timestamp(sent.body["time"]))
            # faust/transport/drivers/aiokafka.py: timestamp_ms = int(timestamp * 1000.0)
            assert int(sent.timestamp * 1000.0) == expected
            # Half a millisecond above: float error never rounds it into the next one.
            assert sent.timestamp * 1000 - expected == pytest.approx(0.5, abs=1e-3)

    async def test_states_reach_the_table_only_in_flush(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """Processing sends outputs at once but writes the table and acks only in ``flush``."""
        table: dict[bytes, bytes] = {}
        shell = make_shell(table)

        await shell.on_message(message_of(make_report(), 0), "t0")

        assert kafka.sent
        assert (table, kafka.acked) == ({}, [])

        await shell.flush()

        generation, payload = unstamp(table[VICTIM_REF.encode()])
        state = VictimState.model_validate_json(payload)
        assert generation == 0
        assert state.decision_id == decision_id_for(make_report())
        assert kafka.acked == ["t0"]

    async def test_nothing_is_written_or_acked_while_a_delivery_is_pending(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """A flush waits for every delivery before writing states and acknowledging inputs."""
        table: dict[bytes, bytes] = {}
        shell = make_shell(table)
        kafka.hold_next = True
        await shell.on_message(message_of(make_report(), 0), "t0")

        flushing = asyncio.create_task(shell.flush())
        for _ in range(5):
            await asyncio.sleep(0)

        assert not flushing.done()
        assert (table, kafka.acked) == ({}, [])

        (delivery,) = kafka.pending
        delivery.set_result(None)
        await flushing

        assert VICTIM_REF.encode() in table
        assert kafka.acked == ["t0"]

    async def test_a_failed_delivery_acknowledges_nothing(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """If a delivery fails, flush raises before any state is written or input acked."""
        table: dict[bytes, bytes] = {}
        shell = make_shell(table)
        kafka.hold_next = True
        await shell.on_message(message_of(make_report(), 0), "t0")
        kafka.pending[0].set_exception(OSError("broker gone"))

        with pytest.raises(OSError, match="broker gone"):
            await shell.flush()

        assert (table, kafka.acked) == ({}, [])

    async def test_processing_goes_on_while_a_flush_waits_for_a_delivery(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """A flush cycle waiting on the broker holds back acknowledgements, not records:
        the next report is decided at once, and acknowledged by the following cycle."""
        table: dict[bytes, bytes] = {}
        shell = make_shell(table)
        kafka.hold_next = True
        await shell.on_message(message_of(make_report(), 0), "first")
        await shell.tick()
        for _ in range(5):
            await asyncio.sleep(0)

        second = make_report(victim_ref="V-0002B3", time=after(minutes=1))
        await shell.on_message(message_of(second, 1), "second")

        assert shell.processed == 2
        assert "triage.decision" in kafka.types()[2:]
        assert (table, kafka.acked) == ({}, [])

        kafka.pending[0].set_result(None)
        await shell.flushed()

        assert kafka.acked == ["first"]
        assert list(table) == [VICTIM_REF.encode()]

        await shell.flush()

        assert kafka.acked == ["first", "second"]

    async def test_a_failed_cycle_stops_the_next_tick(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """A delivery refused during a background flush raises from the next tick."""
        shell = make_shell()
        kafka.hold_next = True
        await shell.on_message(message_of(make_report(), 0), "t0")
        await shell.tick()
        kafka.pending[0].set_exception(OSError("broker gone"))
        for _ in range(5):
            await asyncio.sleep(0)

        with pytest.raises(OSError, match="broker gone"):
            await shell.tick()

        assert kafka.acked == []

    async def test_acks_follow_offset_order(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """Inputs are acknowledged in the order of their offsets."""
        shell = make_shell()
        victims = ("V-0001A2", "V-0002B3", "V-0003C4", "V-0004D5", "V-0005E6")
        for offset, victim in enumerate(victims):
            report = make_report(victim_ref=victim, time=after(minutes=offset))
            await shell.on_message(message_of(report, offset, partition=0), f"offset-{offset}")

        await shell.flush()

        assert kafka.acked == [f"offset-{n}" for n in range(len(victims))]
        assert shell.processed == len(victims)

    async def test_a_report_goes_before_its_ack_even_when_the_ack_is_offered_first(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """An ack fetched before its report waits for it, so it is applied and not refused."""
        topics = Topics()
        marks = {topics.reports: 1, topics.updates: 1}
        shell = make_shell(highwater=highwaters(marks))
        report, ack = make_report(), make_ack()

        await shell.on_message(message_of(ack, 0), "ack")

        assert (kafka.sent, shell.processed, shell.merger.held()) == ([], 0, 1)

        await shell.on_message(message_of(report, 0), "report")
        await shell.flush()

        assert kafka.types() == ["triage.decision", "triage.queue_record"]
        assert kafka.acked == ["report", "ack"]
        state = VictimState.model_validate_json(unstamp(shell.table[VICTIM_REF.encode()])[1])
        (assignment,) = state.assignments
        assert assignment.acked_at == ack.time

    async def test_a_lone_record_goes_once_the_other_topic_is_caught_up(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """A held record is released by ``tick`` once the other input has nothing left to fetch."""
        topics = Topics()
        marks = {topics.reports: 1, topics.updates: 0}
        shell = make_shell(highwater=highwaters(marks))
        await shell.on_message(message_of(make_ack(), 0), "ack")
        await shell.tick()

        assert shell.processed == 0

        marks[topics.reports] = 0  # the report was compacted away / never came
        await shell.tick()
        await shell.flushed()

        assert shell.processed == 1
        # Its report never came: the acknowledgement waits for it in the victim's state
        # (the rule set's update_grace), persisted before the input is acknowledged.
        assert kafka.types() == []
        assert [len(state.waiting) for state in shell.states()] == [1]
        assert kafka.acked == ["ack"]

    async def test_a_quiet_topic_committed_to_its_end_holds_nothing_after_a_rebalance(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """A partition's updates topic with records, all committed and none new, does not
        hold its reports: nothing will ever be fetched from it to say it is caught up."""
        topics = Topics()
        marks = {topics.reports: 8, topics.updates: 5}
        commits = {topics.updates: 5}
        shell = make_shell(
            highwater=highwaters(marks), committed=lambda topic, _p: commits.get(topic)
        )
        await shell.on_message(message_of(make_report(), 7), "report")
        await shell.tick()

        assert shell.processed == 1

    async def test_a_quiet_topic_with_uncommitted_records_still_holds(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """With records past the commit, the report waits for them (they may come first)."""
        topics = Topics()
        marks = {topics.reports: 8, topics.updates: 6}
        shell = make_shell(highwater=highwaters(marks), committed=lambda _t, _p: 5)
        await shell.on_message(message_of(make_report(), 7), "report")
        await shell.tick()

        assert shell.processed == 0

    async def test_revoke_drops_held_records_and_forgets_the_processor(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """Revoking persists what was processed and drops the rest, acknowledging nothing.

        Faust forgets a revoked partition's acknowledgements before it tells us;
        one made now would linger and be committed if the partition came back.
        """
        topics = Topics()
        marks = {topics.reports: 1, topics.updates: 0}
        table: dict[bytes, bytes] = {}
        shell = make_shell(table, highwater=highwaters(marks))
        await shell.on_message(message_of(make_report(), 0), "report")
        marks[topics.reports] = 2  # another report exists, not fetched yet
        marks[topics.updates] = 1
        await shell.on_message(message_of(make_ack(), 0), "ack")

        assert PARTITION in shell.processors
        assert shell.merger.held() == 1

        await shell.revoke([PARTITION])

        assert shell.merger.held() == 0
        assert PARTITION not in shell.processors
        assert kafka.acked == []
        assert VICTIM_REF.encode() in table

    async def test_revoke_leaves_other_partitions_alone(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """Only the revoked partitions' processors and held records go."""
        shell = make_shell()
        other = (PARTITION + 1) % PARTITIONS
        await shell.on_message(message_of(make_report(), 0), "mine")
        await shell.on_message(
            message_of(make_report(victim_ref="V-0002B3"), 0, partition=other), "other"
        )

        await shell.revoke([other])

        assert set(shell.processors) == {PARTITION}

    async def test_a_partition_assigned_back_does_not_trust_offsets_from_before(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """After revoke and re-assignment, an ack still waits for its re-fetched report."""
        topics = Topics()
        marks = {topics.reports: 1, topics.updates: 1}
        shell = make_shell(highwater=highwaters(marks))
        report, ack = make_report(), make_ack()
        await shell.on_message(message_of(report, 0), "report")  # held: updates not caught up
        await shell.revoke([PARTITION])  # dropped; the next owner (maybe us) re-fetches it

        await shell.on_message(message_of(ack, 0), "ack")  # fetched first this time
        await shell.on_message(message_of(report, 0), "report again")
        await shell.flush()

        assert "triage.dead_letter" not in kafka.types()
        assert kafka.acked == ["report again", "ack"]

    async def test_a_rebuilt_processor_continues_from_the_table(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """A new shell on the same table knows the victim: an ack after a restart is applied."""
        table: dict[bytes, bytes] = {}
        first = make_shell(table)
        await first.on_message(message_of(make_report(), 0), "report")
        await first.flush()
        kafka.sent.clear()

        second = make_shell(table)
        await second.on_message(message_of(make_ack(), 0), "ack")
        await second.flush()

        assert kafka.types() == []  # an applied ack produces nothing; a refused one a dead letter
        assert kafka.acked == ["report", "ack"]
        state = VictimState.model_validate_json(unstamp(table[VICTIM_REF.encode()])[1])
        assert state.assignments[0].acked_at == make_ack().time

    async def test_a_redelivered_report_changes_nothing_after_a_restart(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """The table remembers processed ids: a record redelivered to a new shell is a duplicate."""
        table: dict[bytes, bytes] = {}
        first = make_shell(table)
        await first.on_message(message_of(make_report(), 0), "report")
        await first.flush()
        stored = dict(table)
        kafka.sent.clear()

        second = make_shell(table)
        await second.on_message(message_of(make_report(), 0), "report again")
        await second.flush()

        assert kafka.sent == []
        assert table == stored

    def test_states_lists_every_held_victim(self, make_shell: ShellFactory) -> None:
        """``states`` snapshots the states of every processor (for the open-cases gauge)."""
        state = VictimState(victim_ref=VICTIM_REF)
        shell = make_shell({VICTIM_REF.encode(): state.model_dump_json().encode()})

        shell.processor(PARTITION)

        assert [s.victim_ref for s in shell.states()] == [VICTIM_REF]

    async def test_tick_fires_breaches_due_before_the_wall_clock(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """In live mode, ``tick(wall)`` escalates the deadlines before ``wall``, and only those."""
        shell = make_shell(live=True)
        report = make_report(indicators=DANGER)
        await shell.on_message(message_of(report, 0), "report")
        kafka.sent.clear()

        await shell.tick(after(minutes=6))

        (escalation,) = [s.body for s in kafka.sent]
        assert escalation["type"] == "triage.escalation"
        assert escalation["stage"] == "ack"
        assert parse_timestamp(escalation["time"]) == after(minutes=5)
        assert kafka.sent[0].topic == Topics().queue("supervisor")
        assert int(kafka.sent[0].timestamp * 1000) == to_millis(after(minutes=5))

    async def test_tick_without_wall_fires_nothing(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """Without a wall clock (replay mode) a tick never moves event time."""
        shell = make_shell()
        await shell.on_message(message_of(make_report(indicators=DANGER), 0), "report")
        kafka.sent.clear()

        await shell.tick()

        assert kafka.sent == []

    async def test_tick_starts_a_flush(self, make_shell: ShellFactory, kafka: FakeKafka) -> None:
        """A tick starts a flush cycle that persists states and acknowledges what was
        processed."""
        table: dict[bytes, bytes] = {}
        shell = make_shell(table, live=True)
        await shell.on_message(message_of(make_report(indicators=DANGER), 0), "report")

        await shell.tick(after(minutes=6))
        await shell.flushed()

        assert kafka.acked == ["report"]
        state = VictimState.model_validate_json(unstamp(table[VICTIM_REF.encode()])[1])
        assert state.assignments[0].ack_escalated


@dataclass
class FakeFence:
    """A fence the test opens and closes: ``generation``, or ``None`` while the lease lapsed."""

    generation: int | None = 1
    member: bool = True

    def token(self) -> int | None:
        return self.generation if self.member else None

    def fenced(self) -> bool:
        return not self.member


class TestFencing:
    async def test_records_wait_while_the_lease_has_lapsed(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """A worker that woke from a freeze processes nothing until its lease is renewed."""
        fence = FakeFence(generation=None)
        shell = make_shell(fence=fence)

        await shell.on_message(message_of(make_report(), 0), "report")
        await shell.tick()

        assert (kafka.sent, shell.processed, shell.merger.held()) == ([], 0, 1)

        fence.generation = 1
        await shell.tick()
        await shell.flushed()

        assert shell.processed == 1
        assert kafka.types() == ["triage.decision", "triage.queue_record"]
        assert kafka.acked == ["report"]

    async def test_no_deadline_fires_while_the_lease_has_lapsed(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """Woken after the wall clock moved on, a worker escalates nothing it may not own."""
        fence = FakeFence()
        shell = make_shell(live=True, fence=fence)
        await shell.on_message(message_of(make_report(indicators=DANGER), 0), "report")
        kafka.sent.clear()

        fence.generation = None
        await shell.tick(after(minutes=60))

        assert kafka.sent == []

    async def test_a_flush_stops_where_the_lease_lapsed_and_resumes_there(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """No state is written and no input acknowledged until the lease is renewed."""
        fence = FakeFence()
        table: dict[bytes, bytes] = {}
        shell = make_shell(table, fence=fence)
        await shell.on_message(message_of(make_report(), 0), "report")

        fence.generation = None
        await shell.flush()

        assert (table, kafka.acked) == ({}, [])

        fence.generation = 1
        await shell.flush()

        assert unstamp(table[VICTIM_REF.encode()])[0] == 1
        assert kafka.acked == ["report"]

    async def test_a_fenced_worker_drops_its_work_at_the_rebalance(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """Dropped from the group, a worker writes no state, acknowledges nothing and
        forgets every partition: the new owner re-processes from the commit."""
        fence = FakeFence()
        table: dict[bytes, bytes] = {}
        shell = make_shell(table, fence=fence)
        await shell.on_message(message_of(make_report(), 0), "report")

        fence.member = False
        await shell.revoke([PARTITION])

        assert (table, kafka.acked, shell.processors) == ({}, [], {})
        assert shell.dropped == 1

    async def test_work_of_an_older_generation_is_not_written(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """States and acks made under generation 1 are dropped once the group is at 2."""
        fence = FakeFence()
        table: dict[bytes, bytes] = {}
        shell = make_shell(table, fence=fence)
        await shell.on_message(message_of(make_report(), 0), "report")

        fence.generation = 2
        await shell.flush()

        assert (table, kafka.acked) == ({}, [])

    async def test_a_processor_is_rebuilt_for_a_new_generation(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """Under a new generation the partition's states come from the table again,
        never from memory that another owner may have overtaken."""
        fence = FakeFence()
        shell = make_shell(fence=fence)
        await shell.on_message(message_of(make_report(), 0), "report")
        before = shell.processors[PARTITION]

        fence.generation = 2
        await shell.on_message(message_of(make_report(id="evt-second"), 1), "second")

        assert shell.processors[PARTITION] is not before


class TestAckOrder:
    async def test_a_record_received_but_never_handled_stops_the_acks(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """If a received record was lost before its acknowledgement, acknowledging the
        next one raises instead of letting the commit pass the lost one."""
        shell = make_shell()
        lost = message_of(make_report(), 0)
        shell._unacked[(lost.topic, lost.partition)] = deque([0])  # received, then lost
        await shell.on_message(message_of(make_report(id="evt-next"), 1), "next")

        with pytest.raises(AckGapError):
            await shell.flush()

        assert kafka.acked == []


class TestPartitionOf:
    @pytest.mark.parametrize("partitions", [1, 3, 4, 12, 256])
    @pytest.mark.parametrize(
        "key", [b"V-0001A2", b"V-0002B3", b"V-ZZZZ9999", b"", b"\xff\x00\x80", "é".encode()]
    )
    def test_matches_kafka_pythons_default_partitioner(self, key: bytes, partitions: int) -> None:
        """Keys land where kafka-python's default partitioner puts them."""
        cluster = FakeCluster(partitions)
        expected = DefaultPartitioner().partition("t", key, key, None, None, cluster)

        assert partition_of(key, partitions) == expected

    @pytest.mark.parametrize(
        ("key", "java_hash"),
        [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (b"abc", 479470107),
        ],
    )
    def test_matches_the_java_client(self, key: bytes, java_hash: int) -> None:
        """The hash is Java's ``Utils.murmur2`` (values from Kafka's own UtilsTest)."""
        assert partition_of(key, 7) == (java_hash & 0x7FFFFFFF) % 7


class TestLiveClock:
    """Live mode: records stamped ahead of the wall clock cannot push the stream clock there."""

    @staticmethod
    def _live(make_shell: ShellFactory, wall: ManualClock, **kwargs: Any) -> StreamShell:
        return make_shell(live=True, wall_clock=wall, **kwargs)

    async def test_a_record_stamped_hours_ahead_escalates_nobody_early(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """A report stamped 3 h ahead (a replay at --speed 3600, a server's wrong clock) is
        decided at wall clock + skew, counted, and the open P1 case escalates only when the
        wall clock passes its deadline."""
        wall, metrics = ManualClock(after(minutes=1)), TriageMetrics()
        shell = self._live(make_shell, wall, metrics=metrics)
        await shell.on_message(message_of(make_report(indicators=DANGER), 0), "report")
        ahead = make_report(victim_ref=OTHER, time=after(hours=3), indicators=DANGER)

        await shell.on_message(message_of(ahead, 1), "ahead")
        await shell.tick(wall.now())

        decisions = [b for b in kafka.bodies() if b["type"] == "triage.decision"]
        assert [parse_timestamp(b["time"]) for b in decisions] == [after(), after(minutes=3)]
        assert "triage.escalation" not in kafka.types()
        labels = {"type": "report.received", "channel": "call_17_112"}
        assert metrics.registry.get_sample_value("triage_clock_clamped_total", labels) == 1

        wall.set(after(minutes=6))
        await shell.tick(wall.now())

        escalations = [b for b in kafka.bodies() if b["type"] == "triage.escalation"]
        assert [(b["victim_ref"], b["stage"]) for b in escalations] == [(VICTIM_REF, "ack")]

    async def test_a_record_stamped_ahead_holds_nothing_back(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """A report stamped hours ahead is merged at wall clock + skew, where it is taken:
        the report behind it on its topic still goes before the acknowledgement that
        answers it."""
        wall = ManualClock(after(minutes=1))
        topics = Topics()
        marks = {topics.reports: 2, topics.updates: 1}
        shell = self._live(make_shell, wall, highwater=highwaters(marks))
        report = make_report(indicators=DANGER)
        ack = make_ack(
            time=after(minutes=3), queue="immediate", decision_id=decision_id_for(report)
        )

        await shell.on_message(
            message_of(make_report(victim_ref=OTHER, time=after(hours=3)), 0), "a"
        )
        await shell.on_message(message_of(report, 1), "r")
        await shell.on_message(message_of(ack, 0), "u")

        assert "triage.dead_letter" not in kafka.types()
        assert [b["type"] for b in kafka.bodies()].count("triage.decision") == 2

    async def test_replay_mode_takes_every_stamp_as_given(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """Without live mode no wall clock bounds anything: a report 3 h ahead is decided at
        its own time and the open case's deadlines fire on it (the log is the truth)."""
        shell = make_shell(wall_clock=ManualClock(after(minutes=1)))
        await shell.on_message(message_of(make_report(indicators=DANGER), 0), "report")

        await shell.on_message(
            message_of(make_report(victim_ref=OTHER, time=after(hours=3)), 1), "x"
        )

        assert kafka.types().count("triage.escalation") == 2


class TestMergeOnFreshEnds:
    async def test_a_record_waits_for_an_end_asked_after_it_came(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """The consumer's watermark says the updates topic is read to its end, but the
        broker, asked after the report came, has an acknowledgement there: the report
        waits for it, and the two go in time order."""
        topics = Topics()
        marks = {topics.reports: 1, topics.updates: 0}  # the watermark of an old fetch
        broker = FakeBroker({(topics.updates, PARTITION): 1})
        ends = BrokerEnds(broker.list_ends, spacing=0.0)
        shell = make_shell(highwater=highwaters(marks), ends=ends)
        report, ack = make_report(), make_ack()

        await shell.on_message(message_of(report, 0), "report")
        await shell.tick()
        await settle(ends)
        await shell.tick()
        assert shell.processed == 0  # the broker has more on the updates topic

        marks[topics.updates] = 1
        await shell.on_message(message_of(ack, 0), "ack")
        await shell.tick()
        await settle(ends)
        await shell.tick()
        await shell.flush()
        assert kafka.acked == ["report", "ack"]

    async def test_a_record_goes_once_the_broker_confirms_nothing_more(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        topics = Topics()
        marks = {topics.reports: 1, topics.updates: 0}
        broker = FakeBroker({(topics.updates, PARTITION): 0})
        ends = BrokerEnds(broker.list_ends, spacing=0.0)
        shell = make_shell(highwater=highwaters(marks), ends=ends)

        await shell.on_message(message_of(make_report(), 0), "report")
        await shell.tick()
        assert shell.processed == 0  # asked, not answered yet
        await settle(ends)
        await shell.tick()
        await shell.flush()

        assert shell.processed == 1
        assert broker.asked == [[(topics.updates, PARTITION)]]

    async def test_a_broker_that_cannot_answer_leaves_the_watermark_to_judge(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        topics = Topics()
        marks = {topics.reports: 1, topics.updates: 0}
        broker = FakeBroker({})
        broker.down = True
        ends = BrokerEnds(broker.list_ends, spacing=0.0, retry=0.01)
        shell = make_shell(highwater=highwaters(marks), ends=ends)

        await shell.on_message(message_of(make_report(), 0), "report")
        await shell.tick()
        await asyncio.sleep(0.03)
        await shell.tick()
        await shell.flush()

        assert ends.failing
        assert shell.processed == 1


class TestStrayStamps:
    async def test_a_record_stamped_2200_holds_back_nothing_behind_it(
        self, make_shell: ShellFactory, kafka: FakeKafka
    ) -> None:
        """A report stamped 2200 (dead-lettered) is merged where its topic is, not at the
        latest stamp fetched: merged there, the report behind it waited while an update
        stamped after that report overtook it."""
        topics = Topics()
        marks = {topics.reports: 2, topics.updates: 2}
        shell = make_shell(highwater=highwaters(marks))
        base = datetime(2026, 2, 3, 9, 0, tzinfo=UTC)
        early = make_ack(time=base + timedelta(minutes=30))
        late = make_ack(time=base + timedelta(hours=2), id="evt-ack-2")
        stray = message_of(make_report(id="evt-stray"), 0)
        stray.timestamp = to_millis(datetime(2200, 1, 1, tzinfo=UTC)) / 1000
        report = make_report(time=base)

        await shell.on_message(message_of(early, 0), "ack at 09:30")
        await shell.on_message(message_of(late, 1), "ack at 11:00")
        await shell.on_message(stray, "stamped 2200")
        await shell.on_message(message_of(report, 1), "report at 09:00")
        await shell.flush()

        assert kafka.acked == ["stamped 2200", "report at 09:00", "ack at 09:30", "ack at 11:00"]
