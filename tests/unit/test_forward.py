"""The forwarding stage without Faust: input records in, internal records and acks out."""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

# kafka-python 3.0.12 calls deprecated importlib.resources functions while it is
# imported (the shell imports it); with filterwarnings=error that fails collection.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from triage.broker.provision import topic_specs
    from triage.streaming.shell import StreamShell, partition_of

from tests.shell_fakes import FakeKafka, Message
from triage.events.inputs import InputEvent
from triage.events.wire import from_millis, to_millis
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import RawRecord, dead_letter
from triage.settings import TriageSettings
from triage.streaming.forward import KEYLESS_PARTITION, Forwarder, forwards, is_watermark
from triage.streaming.upstream import FORWARD_HEADERS, unwrap
from triage.testing import VICTIM_REF, make_ack, make_report
from triage.topics import REPORT_TYPES, Topics

PARTITIONS = 4
TOPICS = Topics()
OWN_HEADERS = (("ce_id", b"r-1"), ("traceparent", b"00-abc"))


def upstream_message(
    event: InputEvent, partition: int, offset: int, headers: Any = OWN_HEADERS
) -> Message:
    """``event`` on its input topic as some upstream producer partitioned it."""
    topic = TOPICS.reports if event.type in REPORT_TYPES else TOPICS.updates
    return Message(
        topic=topic,
        partition=partition,
        offset=offset,
        key=event.victim_ref.encode(),
        value=event.model_dump_json().encode(),
        timestamp=to_millis(event.time) / 1000,
        headers=headers,
    )


def raw_message(
    value: bytes, *, key: bytes | None = None, partition: int = 2, offset: int = 7
) -> Message:
    """A reports-topic record with any bytes."""
    return Message(TOPICS.reports, partition, offset, key, value, 1_770_000_000.123, ())


@dataclass(frozen=True, slots=True)
class SentTo:
    """One forward as the producer got it."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: float


@dataclass
class FakeProducer:
    """Records forwards and acks; deliveries complete at once unless ``hold``."""

    sent: list[SentTo] = field(default_factory=list)
    acked: list[Any] = field(default_factory=list)
    hold: bool = False
    pending: list[asyncio.Future[None]] = field(default_factory=list)

    async def send(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        timestamp: float,
    ) -> asyncio.Future[None]:
        """Record the forward; return its delivery."""
        self.sent.append(SentTo(topic, partition, key, value, headers, timestamp))
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.hold:
            self.pending.append(delivery)
        else:
            delivery.set_result(None)
        return delivery

    async def ack(self, token: Any) -> None:
        """Record the acknowledged token."""
        self.acked.append(token)

    def as_message(self, index: int, offset: int) -> Message:
        """Forward ``index`` as the stateful stage consumes it from its internal topic."""
        sent = self.sent[index]
        return Message(
            sent.topic,
            sent.partition,
            offset,
            sent.key,
            sent.value if sent.value is not None else b"",
            int(sent.timestamp * 1000) / 1000,  # what Faust's consumer gives back
            list(sent.headers),
        )


def forwarder(producer: FakeProducer) -> Forwarder:
    """A forwarding stage on ``producer``."""
    return Forwarder(TOPICS, producer.send, producer.ack, partitions=PARTITIONS)


class TestForwards:
    def test_a_record_is_copied_to_its_internal_topic_on_the_victims_partition(self) -> None:
        """Key, value and timestamp are unchanged; the partition is murmur2 of the key, as
        for the victim-state table, whatever partition upstream chose."""
        report = make_report()
        message = upstream_message(report, partition=2, offset=41)

        [fwd] = forwards(message, TOPICS, PARTITIONS)

        assert fwd.topic == TOPICS.internal_reports
        assert fwd.partition == partition_of(VICTIM_REF.encode(), PARTITIONS)
        assert (fwd.key, fwd.value) == (message.key, message.value)
        assert fwd.timestamp_ms == to_millis(report.time)

    def test_updates_go_to_the_internal_updates_topic(self) -> None:
        """An update is forwarded to the updates' internal topic."""
        [fwd] = forwards(upstream_message(make_ack(), 0, 0), TOPICS, PARTITIONS)

        assert fwd.topic == TOPICS.internal_updates

    def test_one_victim_from_any_upstream_partition_lands_on_one_partition(self) -> None:
        """A victim's records scattered over upstream partitions meet on one partition."""
        report, ack = make_report(), make_ack()
        targets = {
            fwd.partition
            for upstream in range(7)
            for event in (report, ack)
            for fwd in forwards(upstream_message(event, upstream, 3), TOPICS, PARTITIONS)
        }

        assert targets == {partition_of(VICTIM_REF.encode(), PARTITIONS)}

    def test_upstream_coordinates_are_appended_after_the_records_own_headers(self) -> None:
        """The record's headers come first, unchanged; then topic, partition, offset."""
        [fwd] = forwards(upstream_message(make_report(), 2, 41), TOPICS, PARTITIONS)

        assert fwd.headers == (
            *OWN_HEADERS,
            (FORWARD_HEADERS[0], TOPICS.reports.encode()),
            (FORWARD_HEADERS[1], b"2"),
            (FORWARD_HEADERS[2], b"41"),
        )

    def test_a_keyless_record_goes_to_the_keyless_partition(self) -> None:
        """A keyless record (it will be dead-lettered) goes to one fixed partition, once."""
        [fwd] = forwards(raw_message(b'{"type": "report.received"}'), TOPICS, PARTITIONS)

        assert (fwd.partition, fwd.key) == (KEYLESS_PARTITION, None)

    def test_a_keyless_watermark_goes_to_every_partition(self) -> None:
        """A clock watermark must move every partition's stream clock: one copy each."""
        mark = orjson.dumps({"type": "clock.watermark", "time": "2026-02-02T00:00:00Z"})

        sent = forwards(raw_message(mark), TOPICS, PARTITIONS)

        assert sorted(f.partition for f in sent) == list(range(PARTITIONS))
        assert {f.value for f in sent} == {mark}

    def test_a_null_value_stays_null(self) -> None:
        """A tombstone is forwarded as a tombstone (the stateful stage dead-letters it)."""
        message = Message(TOPICS.reports, 0, 0, b"V-X", None, 1.0)  # type: ignore[arg-type]

        [fwd] = forwards(message, TOPICS, PARTITIONS)

        assert fwd.value is None

    def test_other_topics_are_not_forwarded(self) -> None:
        """Only input topics are forwarded (never an internal or output topic)."""
        message = upstream_message(make_report(), 0, 0)
        message.topic = TOPICS.internal_reports

        assert forwards(message, TOPICS, PARTITIONS) == []

    @pytest.mark.parametrize(
        "value", [b"", b"\xff\xfe", b"clock.watermark", b'["clock.watermark"]', b'{"t": 1}']
    )
    def test_only_a_json_watermark_is_a_watermark(self, value: bytes) -> None:
        """Garbage that mentions a watermark is not one (it goes to one partition)."""
        assert not is_watermark(value)


class TestProvisioning:
    def test_provisioning_makes_internal_topics_and_tolerates_any_input_count(self) -> None:
        """Internal topics get ``TRIAGE_PARTITIONS`` partitions and the inputs' retention;
        existing input topics may have another count."""
        specs = {s.name: s for s in topic_specs(TriageSettings(partitions=6))}
        topics = Topics()

        for name in topics.internal:
            assert (specs[name].partitions, specs[name].retention_ms) == (6, -1)
            assert not specs[name].any_count
        assert all(specs[name].any_count for name in topics.inputs)


class TestUnwrap:
    def test_a_forward_gives_back_its_upstream_coordinates_and_own_headers(self) -> None:
        """Topic, partition and offset come from the forward's headers; the record's own
        headers are given back without them, even ones that share their names."""
        own = (*OWN_HEADERS, (FORWARD_HEADERS[0], b"forged"))
        [fwd] = forwards(upstream_message(make_report(), 2, 41, own), TOPICS, PARTITIONS)

        origin = unwrap(fwd.topic, fwd.partition, 9, fwd.headers, TOPICS)

        assert (origin.topic, origin.partition, origin.offset) == (TOPICS.reports, 2, 41)
        assert origin.headers == own

    def test_a_record_without_forward_headers_is_read_as_its_input_topics(self) -> None:
        """Written to an internal topic by something else: its own coordinates, under the
        input topic's name."""
        origin = unwrap(TOPICS.internal_updates, 3, 8, OWN_HEADERS, TOPICS)

        assert (origin.topic, origin.partition, origin.offset) == (TOPICS.updates, 3, 8)
        assert origin.headers == OWN_HEADERS

    def test_unreadable_forward_headers_are_not_trusted(self) -> None:
        """Forward headers naming no input topic or holding no numbers are ignored."""
        for values in ((b"elsewhere", b"1", b"2"), (TOPICS.reports.encode(), b"x", b"2")):
            headers = tuple(zip(FORWARD_HEADERS, values, strict=True))

            origin = unwrap(TOPICS.internal_reports, 1, 5, headers, TOPICS)

            assert (origin.topic, origin.partition, origin.offset) == (TOPICS.reports, 1, 5)


class TestForwarder:
    async def test_a_record_is_acknowledged_once_its_forward_is_delivered(self) -> None:
        """No acknowledgement while the forward is in flight; one after its delivery."""
        producer = FakeProducer(hold=True)
        stage = forwarder(producer)

        await stage.on_message(upstream_message(make_report(), 1, 0), "t0")
        await stage.settle()
        assert producer.acked == []

        producer.pending[0].set_result(None)
        await stage.settle()
        assert producer.acked == ["t0"]
        assert stage.forwarded == 1

    async def test_acknowledgements_keep_the_order_records_were_received(self) -> None:
        """A later record delivered first waits for the earlier one (Faust commits up to
        the highest acknowledged offset)."""
        producer = FakeProducer(hold=True)
        stage = forwarder(producer)
        await stage.on_message(upstream_message(make_report(), 1, 0), "t0")
        await stage.on_message(upstream_message(make_ack(), 1, 1), "t1")

        producer.pending[1].set_result(None)
        await stage.settle()
        assert producer.acked == []

        producer.pending[0].set_result(None)
        await stage.settle()
        assert producer.acked == ["t0", "t1"]

    async def test_a_watermark_is_acknowledged_once_every_copy_is_delivered(self) -> None:
        """One input record, a copy per partition: acknowledged after the last copy."""
        producer = FakeProducer(hold=True)
        stage = forwarder(producer)
        mark = orjson.dumps({"type": "clock.watermark"})
        await stage.on_message(raw_message(mark), "w")

        for delivery in producer.pending[:-1]:
            delivery.set_result(None)
        await stage.settle()
        assert producer.acked == []

        producer.pending[-1].set_result(None)
        await stage.settle()
        assert producer.acked == ["w"]

    async def test_a_failed_forward_stops_the_stage_unacknowledged(self) -> None:
        """A refused delivery raises (the worker stops) and the record is not acknowledged."""
        producer = FakeProducer(hold=True)
        stage = forwarder(producer)
        await stage.on_message(upstream_message(make_report(), 1, 0), "t0")
        producer.pending[0].set_exception(RuntimeError("refused"))

        with pytest.raises(RuntimeError):
            await stage.settle()
        assert producer.acked == []

    async def test_revoked_partitions_are_forgotten_unacknowledged(self) -> None:
        """Records in flight of a revoked partition are never acknowledged here (their next
        owner forwards them again); the other partitions' are."""
        producer = FakeProducer(hold=True)
        stage = forwarder(producer)
        await stage.on_message(upstream_message(make_report(), 1, 0), "gone")
        await stage.on_message(upstream_message(make_ack(), 2, 0), "kept")

        assert stage.revoke({(TOPICS.reports, 1)}) == 1
        for delivery in producer.pending:
            delivery.set_result(None)
        await stage.settle()

        assert producer.acked == ["kept"]
        assert stage.last_offsets() == {(TOPICS.updates, 2): 0}


class TestLanes:
    @staticmethod
    def stage(
        producer: FakeProducer, high: dict[tuple[str, int], int], done: dict[tuple[str, int], int]
    ) -> Forwarder:
        """A forwarding stage reading end offsets from ``high``, commits from ``done``."""
        return Forwarder(
            TOPICS, producer.send, producer.ack, partitions=PARTITIONS,
            highwater=lambda t, p: high.get((t, p)), committed=lambda t, p: done.get((t, p)),
        )  # fmt: skip

    async def test_a_lane_is_caught_up_once_read_to_its_end_and_delivered(self) -> None:
        """Caught up: nothing of the lane in flight and the lane read to its end."""
        producer = FakeProducer(hold=True)
        lane = (TOPICS.reports, 0)
        high = {lane: 2, (TOPICS.updates, 1): 0}
        stage = self.stage(producer, high, {})
        stage.assign(high)
        assert stage.lanes() == frozenset(high)
        assert stage.lane_caught_up((TOPICS.updates, 1))  # empty
        await stage.on_message(upstream_message(make_report(), 0, 0), "a")
        assert not stage.lane_caught_up(lane)  # in flight, and offset 1 not read

        await stage.on_message(upstream_message(make_report(), 0, 1), "b")
        assert not stage.lane_caught_up(lane)  # read to the end, still in flight
        for delivery in producer.pending:
            delivery.set_result(None)
        await stage.settle()
        assert stage.lane_caught_up(lane)

    def test_an_unknown_end_is_not_caught_up_and_a_committed_end_is(self) -> None:
        """A lane not fetched yet is not caught up; one whose commit is at its end is; an
        internal topic is never a lane."""
        tp = (TOPICS.updates, 2)
        high: dict[tuple[str, int], int] = {}
        done = {tp: 5}
        stage = self.stage(FakeProducer(), high, done)
        stage.assign([tp, (TOPICS.internal_reports, 0)])
        assert stage.lanes() == frozenset({tp})
        assert not stage.lane_caught_up(tp)

        high[tp] = 5
        assert stage.lane_caught_up(tp)
        high[tp] = 6
        assert not stage.lane_caught_up(tp)

    async def test_a_lane_is_through_the_latest_time_it_delivered_in_order(self) -> None:
        """A lane's time is that of its latest record delivered and acknowledged: a later
        record delivered while an earlier one is still in flight does not count yet."""
        producer = FakeProducer(hold=True)
        stage = forwarder(producer)
        lane = (TOPICS.reports, 0)
        first = make_report(id="evt-r1")
        second = make_report(id="evt-r2", time=first.time.replace(hour=first.time.hour + 1))
        await stage.on_message(upstream_message(first, 0, 0), "a")
        await stage.on_message(upstream_message(second, 0, 1), "b")
        assert stage.lane_through(lane) is None

        producer.pending[1].set_result(None)
        await stage.settle()
        assert stage.lane_through(lane) is None  # the first is still in flight
        producer.pending[0].set_result(None)
        await stage.settle()
        assert stage.lane_through(lane) == to_millis(second.time)
        assert stage.lane_through((TOPICS.reports, 1)) is None

    async def test_a_stamp_past_the_accepted_years_takes_its_lane_nowhere(self) -> None:
        """A record stamped 2200 (it will be dead-lettered; the stateful stage merges it at
        its partition's time) leaves the lane's time where it was: taken at face value it
        told the stateful stage that no report before 2200 could still come that way."""
        producer = FakeProducer()
        stage = forwarder(producer)
        lane = (TOPICS.reports, 0)
        first = make_report()
        await stage.on_message(upstream_message(first, 0, 0), "a")
        stray = upstream_message(make_report(), 0, 1)
        stray.timestamp = to_millis(datetime(2200, 1, 1, tzinfo=UTC)) / 1000
        await stage.on_message(stray, "b")
        await stage.settle()

        assert stage.lane_through(lane) == to_millis(first.time)
        assert producer.acked == ["a", "b"]

    async def test_in_live_mode_a_lane_goes_no_further_than_the_clock_ceiling(self) -> None:
        """A record stamped hours ahead takes its lane to the clock ceiling only, where the
        stateful stage merges it."""
        producer = FakeProducer()
        report = make_report()
        ceiling = to_millis(report.time) - 60_000
        stage = Forwarder(
            TOPICS, producer.send, producer.ack, partitions=PARTITIONS, ceiling=lambda: ceiling
        )
        await stage.on_message(upstream_message(report, 0, 0), "a")
        await stage.settle()

        assert stage.lane_through((TOPICS.reports, 0)) == ceiling

    async def test_delivered_end_follows_the_deliveries_offsets(self) -> None:
        """The end of a lane's delivered forwards per internal partition comes from the
        delivery metadata (one past the highest offset)."""

        @dataclass
        class Metadata:
            offset: int

        producer = FakeProducer(hold=True)
        stage = forwarder(producer)
        message = upstream_message(make_report(), 0, 0)
        await stage.on_message(message, "a")
        [fwd] = forwards(message, TOPICS, PARTITIONS)
        producer.pending[0].set_result(Metadata(41))  # type: ignore[arg-type]
        await stage.settle()

        lane = (TOPICS.reports, 0)
        assert stage.lane_delivered_end(lane, (fwd.topic, fwd.partition)) == 42
        assert stage.lane_delivered_end(lane, (TOPICS.internal_updates, fwd.partition)) == 0
        assert stage.lane_delivered_end((TOPICS.reports, 1), (fwd.topic, fwd.partition)) == 0


class TestStatefulStageReadsForwards:
    @staticmethod
    def shell(engine: Engine, kafka: FakeKafka) -> StreamShell:
        """A stateful stage reading the internal topics."""
        return StreamShell(
            engine, TOPICS, {}, kafka.send, kafka.ack, partitions=PARTITIONS,
            sources=TOPICS.internal,
        )  # fmt: skip

    async def test_forwards_are_decided_as_the_input_records_would_be(self, engine: Engine) -> None:
        """A report and its acknowledgement, forwarded from different upstream partitions,
        are decided and acknowledged by the stateful stage with no dead letter."""
        producer, kafka = FakeProducer(), FakeKafka()
        stage, shell = forwarder(producer), self.shell(engine, kafka)
        report, ack = make_report(), make_ack()
        await stage.on_message(upstream_message(report, 0, 10), "r")
        await stage.on_message(upstream_message(ack, 3, 20), "a")

        for index in range(2):
            await shell.on_message(producer.as_message(index, index), index)
        await shell.flush()

        assert "triage.dead_letter" not in {s.body["type"] for s in kafka.sent}
        assert {s.body["type"] for s in kafka.sent} >= {"triage.decision"}
        assert kafka.acked == [0, 1]

    async def test_a_repeated_forward_is_a_duplicate_without_new_content(
        self, engine: Engine
    ) -> None:
        """The same input forwarded twice (a crash between delivery and commit) gives its
        outputs once: the second copy is recognised by its event id."""
        producer, kafka = FakeProducer(), FakeKafka()
        stage, shell = forwarder(producer), self.shell(engine, kafka)
        message = upstream_message(make_report(), 2, 5)
        await stage.on_message(message, "first")
        await stage.on_message(message, "again")

        await shell.on_message(producer.as_message(0, 0), 0)
        first = len(kafka.sent)
        await shell.on_message(producer.as_message(1, 1), 1)
        await shell.flush()

        assert first > 0
        assert len(kafka.sent) == first
        assert producer.sent[0] == producer.sent[1]

    async def test_a_dead_letter_names_the_upstream_record_as_offline_does(
        self, engine: Engine
    ) -> None:
        """A garbage record's dead letter names its upstream topic, partition and offset,
        and is otherwise the offline replay's (same id, same header summary: the forward
        headers are not the record's)."""
        producer, kafka = FakeProducer(), FakeKafka()
        stage, shell = forwarder(producer), self.shell(engine, kafka)
        garbage = Message(
            TOPICS.updates, 2, 17, None, b"\xff not json", 1_770_000_000.5, OWN_HEADERS
        )
        await stage.on_message(garbage, "g")

        await shell.on_message(producer.as_message(0, 3), 0)
        await shell.flush()

        [letter] = [s.body for s in kafka.sent]
        offline = dead_letter(
            RawRecord(TOPICS.updates, None, garbage.value, from_millis(1_770_000_000_500),
                      headers=OWN_HEADERS),
            letter["reason"], letter["detail"], TOPICS,
        )  # fmt: skip
        assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == (
            "dv.case-updates.v1", 2, 17,
        )  # fmt: skip
        assert letter["id"] == offline.id
        assert letter["header_count"] == len(OWN_HEADERS)
        assert producer.sent[0].partition == KEYLESS_PARTITION


@dataclass
class FakeLanes:
    """The forwarding stage as the stateful stage sees it: the lanes it forwards, which
    are caught up, how far in time each got, and where its deliveries end."""

    assigned: set[tuple[str, int]] = field(default_factory=set)
    caught_up: set[tuple[str, int]] = field(default_factory=set)
    through: dict[tuple[str, int], int] = field(default_factory=dict)
    ends: dict[tuple[tuple[str, int], tuple[str, int]], int] = field(default_factory=dict)

    def lanes(self) -> frozenset[tuple[str, int]]:
        """The lanes it forwards."""
        return frozenset(self.assigned)

    def lane_caught_up(self, tp: tuple[str, int], since: float | None) -> bool:
        """Whether the lane forwarded all the broker has."""
        return tp in self.caught_up

    def lane_through(self, tp: tuple[str, int]) -> int | None:
        """The lane's latest forwarded time."""
        return self.through.get(tp)

    def lane_delivered_end(self, tp: tuple[str, int], target: tuple[str, int]) -> int:
        """One past the lane's last delivered forward's offset there."""
        return self.ends.get((tp, target), 0)


R0, R1, U2 = (TOPICS.reports, 0), (TOPICS.reports, 1), (TOPICS.updates, 2)


class TestLaneMerge:
    @staticmethod
    def shell(engine: Engine, kafka: FakeKafka, lanes: FakeLanes, **extra: Any) -> StreamShell:
        """A stateful stage reading the internal topics beside a forwarding stage."""
        return StreamShell(
            engine, TOPICS, {}, kafka.send, kafka.ack, partitions=PARTITIONS,
            sources=TOPICS.internal, lanes=lanes, **extra,
        )  # fmt: skip

    @staticmethod
    async def forwarded(*messages: Message) -> list[Message]:
        """``messages`` forwarded, as the stateful stage reads them (offsets per topic)."""
        producer = FakeProducer()
        stage = forwarder(producer)
        for message in messages:
            await stage.on_message(message, None)
        offsets: dict[str, int] = {}
        out = []
        for index, sent in enumerate(producer.sent):
            offsets[sent.topic] = offsets.get(sent.topic, -1) + 1
            out.append(producer.as_message(index, offsets[sent.topic]))
        return out

    async def test_an_update_waits_until_every_lane_has_forwarded_past_it(
        self, engine: Engine
    ) -> None:
        """An acknowledgement forwarded before its report (they came through different
        upstream partitions) waits while the report's lane has not forwarded up to the
        acknowledgement's time, then goes after the report: no ``unknown_case``."""
        kafka, lanes = FakeKafka(), FakeLanes(assigned={R0, U2})
        shell = self.shell(engine, kafka, lanes)
        report_event = make_report()
        ack_event = make_ack(time=report_event.time + timedelta(minutes=5))
        ack, report = await self.forwarded(
            upstream_message(ack_event, 2, 0), upstream_message(report_event, 0, 0)
        )

        await shell.on_message(ack, "ack")
        assert kafka.sent == []  # lane R0 has forwarded nothing yet
        lanes.through[R0] = to_millis(report_event.time) - 1
        await shell.tick()
        assert kafka.sent == []  # lane R0 is not past the acknowledgement yet
        lanes.through[R0] = to_millis(report_event.time)
        await shell.on_message(report, "report")
        await shell.flush()

        types = [s.body["type"] for s in kafka.sent]
        assert "triage.dead_letter" not in types
        assert types[0] == "triage.decision"

    async def test_a_lane_past_a_record_or_caught_up_does_not_hold_it(self, engine: Engine) -> None:
        """A record goes as soon as each other lane has forwarded past its time or all
        it has; lanes another worker forwards are not waited for."""
        kafka, lanes = FakeKafka(), FakeLanes(assigned={R0, R1, U2})
        shell = self.shell(engine, kafka, lanes)
        report = make_report()
        [message] = await self.forwarded(upstream_message(report, 0, 0))

        await shell.on_message(message, "report")
        assert kafka.sent == []
        lanes.through[R1] = to_millis(report.time) + 1
        await shell.tick()
        assert kafka.sent == []  # U2 has not moved
        lanes.caught_up.add(U2)
        await shell.tick()
        assert next(s.body["type"] for s in kafka.sent) == "triage.decision"

    async def test_lanes_are_merged_in_timestamp_order(self, engine: Engine) -> None:
        """Two reports of one victim from two upstream partitions, received newest first,
        are decided oldest first (the second decision sees the first report)."""
        kafka, lanes = FakeKafka(), FakeLanes(assigned={R0, R1})
        shell = self.shell(engine, kafka, lanes)
        first = make_report(id="evt-r1")
        second = make_report(id="evt-r2", time=first.time.replace(hour=first.time.hour + 1))
        late, early = await self.forwarded(
            upstream_message(second, 1, 0), upstream_message(first, 0, 0)
        )

        await shell.on_message(late, "late")
        assert kafka.sent == []
        lanes.through[R0] = to_millis(first.time)
        await shell.on_message(early, "early")
        lanes.caught_up.add(R0)
        await shell.tick()
        await shell.flush()

        decided = [
            s.body["source_event_id"] for s in kafka.sent if s.body["type"] == "triage.decision"
        ]
        assert decided == ["evt-r1", "evt-r2"]
        assert kafka.acked == ["late", "early"]  # in offset order, whatever the processing order

    async def test_delivered_forwards_not_yet_received_hold_the_partition(
        self, engine: Engine
    ) -> None:
        """A caught-up lane delivered a forward here that this stage has not read yet:
        nothing is released until it is read."""
        kafka = FakeKafka()
        [report] = await self.forwarded(upstream_message(make_report(), 0, 0))
        target = (TOPICS.internal_reports, report.partition)
        lanes = FakeLanes(assigned={R0, R1}, caught_up={R1}, ends={(R1, target): 3})
        shell = self.shell(engine, kafka, lanes)

        await shell.on_message(report, "report")
        await shell.tick()
        assert kafka.sent == []

        lanes.ends.clear()
        await shell.tick()
        assert next(s.body["type"] for s in kafka.sent) == "triage.decision"

    async def test_forwards_from_before_a_restart_hold_the_partition_until_read(
        self, engine: Engine
    ) -> None:
        """Restarted, the forwarding stage knows nothing of what a lane delivered before:
        a lane caught up upstream may have forwards in the internal partition this stage
        has not read. Nothing is released until that partition is read to its end
        (killed and restarted, updates went before the reports forwarded earlier)."""
        kafka = FakeKafka()
        report, ack = await self.forwarded(
            upstream_message(make_report(), 0, 0), upstream_message(make_ack(), 2, 0)
        )
        marks = {(TOPICS.internal_reports, report.partition): 1,
                 (TOPICS.internal_updates, ack.partition): 1}  # fmt: skip
        lanes = FakeLanes(assigned={R0, U2}, caught_up={R0, U2})
        shell = self.shell(engine, kafka, lanes, highwater=lambda t, p: marks.get((t, p), 0))

        await shell.on_message(report, "report")
        await shell.tick()
        assert kafka.sent == []  # the acknowledgement forwarded before is not read yet

        await shell.on_message(ack, "ack")
        await shell.tick()
        await shell.flush()
        assert kafka.acked == ["report", "ack"]

    async def test_a_partition_stops_waiting_after_lane_wait(self, engine: Engine) -> None:
        """A lane that never moves holds a partition at most ``lane_wait`` seconds; then
        its records go in arrival order."""
        kafka, lanes = FakeKafka(), FakeLanes(assigned={R0, R1})
        shell = self.shell(engine, kafka, lanes, lane_wait=0.05)
        [report] = await self.forwarded(upstream_message(make_report(), 0, 0))

        await shell.on_message(report, "report")
        assert kafka.sent == []
        await asyncio.sleep(0.06)
        await shell.tick()

        assert next(s.body["type"] for s in kafka.sent) == "triage.decision"


async def test_a_redelivered_pending_record_does_not_hold_the_acknowledgements(
    engine: Engine,
) -> None:
    """The consumer seeks back while records still wait in the merge: the copy of a
    pending offset is processed as a duplicate and is not a second pending entry, so
    the acknowledgements of later records are not held behind it for ever."""
    kafka, lanes = FakeKafka(), FakeLanes(assigned={R0, R1})
    shell = TestLaneMerge.shell(engine, kafka, lanes)
    base = make_report().time
    first, second, third = await TestLaneMerge.forwarded(
        upstream_message(make_report(), 0, 0),
        upstream_message(make_report(id="evt-2", time=base + timedelta(hours=1)), 0, 1),
        upstream_message(make_report(id="evt-3", time=base + timedelta(hours=2)), 0, 2),
    )

    await shell.on_message(first, "first")
    await shell.on_message(second, "second")
    await shell.on_message(first, "again")  # sought back: offset 0 again, still pending
    lanes.caught_up.update({R0, R1})
    await shell.tick()
    await shell.on_message(third, "third")
    await shell.tick()
    await shell.flush()

    assert {"first", "second", "third"} <= set(kafka.acked)
    assert all(not pending for pending in shell._unacked.values())
