"""Input at the edges, each of which once crashed the worker, flooded a partition or lost
a report (found by this suite, fixed in 82d09bb, e0ae0e1, f4bfc9b and fbf944d).

1. Times near the ends of the datetime range raised OverflowError inside the core:
   one record crashed the worker, again after every restart. Input times are now
   bounded to 2000–2200 at ingestion and absurd Kafka timestamps clamped, then
   dead-lettered; an event just before 2200 may have deadlines after it.
2. A record dated decades ahead (its Kafka timestamp too) dragged its partition's
   stream clock there: every open case emitted every missed re-assessment and
   escalation at once. A jump of more than 90 days was then dead-lettered, which also
   refused legitimate reports after a quiet quarter (issue 13). Now, in live mode, an
   event is taken at most at wall clock + skew (clamped, counted, still decided); in
   replay mode the log is the truth (ingestion still refuses stamps outside 2000–2200
   and event times more than 24 h after their record timestamp).
3. Event ids are unique per CloudEvents ``source`` only: another channel's report
   reusing an id was dropped as a duplicate, and two victims' reports sharing one
   got the same decision id. Both now key on source and id.
4. ``triage publish`` met a non-string ``type`` with a traceback.
5. The worker merges its two input topics by Kafka timestamp. A stray stamp (a
   record the engine dead-letters anyway) held back every record behind it while the
   other topic overtook them: acknowledgements reached the engine before their reports
   (refused as unknown_case) and reports came late (escalations). A stamp past 2200 is
   now merged at the partition's time (its stream clock or, before any record is
   processed, the latest plausible stamp fetched), the first record seen included; a
   stamp before 2000 never becomes the reference. A stamp a quarter ahead of the
   partition was a stray too while such records were dead-lettered; since issue 13 it
   is plausible (a quiet partition) and merged at its stamp in replay mode, at wall
   clock + skew in live mode, where the processor takes it.
6. The 90-day clock-jump guard did not apply to clock watermarks: one dated 2199
   fired every timer of the partition. In live mode a watermark is clamped to wall
   clock + skew like any event now; in replay mode it is the log's truth.
"""

from __future__ import annotations

import asyncio
import base64
import warnings
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

with warnings.catch_warnings():  # kafka-python (imported by the shell) warns on import
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from triage.streaming.shell import StreamShell

from tests.shell_fakes import FakeKafka, Message
from triage.cli import cli
from triage.events.inputs import ReportReceived
from triage.events.outputs import DeadLetter, Decision, QueueRecord
from triage.events.wire import to_millis
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import RawRecord
from triage.pipeline.processor import Processor
from triage.testing import (
    VICTIM_REF,
    after,
    decision_id_for,
    make_ack,
    make_raw,
    make_report,
    make_watermark,
    raw_of,
)
from triage.topics import Topics

REPORT = orjson.loads(make_report().model_dump_json())
OTHER_VICTIM = "V-0002B3"


def _report_at(time: str, timestamp: datetime) -> RawRecord:
    return make_raw(orjson.dumps({**REPORT, "time": time}), timestamp=timestamp)


def _letters(outputs: Any) -> list[str]:
    return [o.reason for o in outputs if isinstance(o, DeadLetter)]


LAST_HOUR = datetime(9999, 12, 31, 23, tzinfo=UTC)
EXTREME_TIMES = {
    "event-in-year-1": (
        _report_at("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)), "implausible_timestamp"
    ),
    "year-1-with-offset": (
        _report_at("0001-01-01T00:30:00+01:00", after()), "schema_violation"
    ),
    "event-in-december-9999": (
        _report_at("9999-12-01T00:00:00Z", after()), "implausible_timestamp"
    ),
    "record-timestamp-9999": (raw_of(make_report(), timestamp=LAST_HOUR), "implausible_timestamp"),
    "record-timestamp-1970": (
        raw_of(make_report(), timestamp=datetime(1970, 1, 1, tzinfo=UTC)), "implausible_timestamp"
    ),
}  # fmt: skip


@pytest.mark.parametrize(("record", "reason"), EXTREME_TIMES.values(), ids=EXTREME_TIMES.keys())
def test_extreme_times_are_dead_lettered_not_raised(
    engine: Engine, record: RawRecord, reason: str
) -> None:
    """A time at the edge of what Python can represent is refused with a reason code,
    and the next valid report is still decided."""
    processor = Processor(engine, Topics())

    batch = processor.feed(record)

    assert _letters(batch.outputs) == [reason]
    after_it = processor.feed(raw_of(make_report(victim_ref=OTHER_VICTIM, time=after(hours=1))))
    assert any(isinstance(o, Decision) for o in after_it.outputs)


@pytest.mark.parametrize(
    "day", [datetime(2199, 11, 15, tzinfo=UTC), datetime(2199, 12, 31, tzinfo=UTC)]
)
def test_an_event_just_before_2200_is_decided_or_dead_lettered(
    engine: Engine, day: datetime
) -> None:
    """A report dated weeks before the upper bound of event times does not crash."""
    processor = Processor(engine, Topics())

    batch = processor.feed(raw_of(make_report(time=day)))

    assert any(isinstance(o, Decision | DeadLetter) for o in batch.outputs)


def test_a_kafka_timestamp_past_year_9999_is_dead_lettered(engine: Engine) -> None:
    """A record whose Kafka timestamp is beyond year 9999 goes to the dead-letter topic."""
    kafka = FakeKafka()

    async def run() -> None:
        shell = StreamShell(engine, Topics(), {}, kafka.send, kafka.ack, partitions=4)
        record = raw_of(make_report())
        message = Message(record.topic, 0, 0, record.key, record.value, 253_402_300_800.0)
        await shell.on_message(message, "token")
        await shell.flush()

    asyncio.run(run())

    assert [body["reason"] for body in kafka.bodies()] == ["implausible_timestamp"]


FAR = datetime(2100, 1, 1, tzinfo=UTC)


def _five_open_cases(engine: Engine) -> Processor:
    processor = Processor(engine, Topics())
    for i in range(5):
        processor.feed(raw_of(make_report(victim_ref=f"V-{i:04d}FL", indicators={"weapon": "yes"})))
    return processor


def test_a_record_from_the_far_future_does_not_flood_the_partition(engine: Engine) -> None:
    """In live mode one record dated 2100 (its Kafka timestamp too) among cases opened in
    2026 is decided at the clock ceiling and touches no other case (it used to be
    dead-lettered as a clock jump: a report never triaged)."""
    processor = _five_open_cases(engine)
    far = make_report(victim_ref="V-9999FL", time=FAR)

    batch = processor.feed(raw_of(far), ceiling=after(minutes=2))

    assert {type(o) for o in batch.outputs} == {Decision, QueueRecord}
    assert {o.victim_ref for o in batch.outputs if isinstance(o, Decision | QueueRecord)} == {
        "V-9999FL"
    }
    assert processor.clock == after(minutes=2)


def test_in_replay_mode_a_record_from_the_far_future_is_the_logs_truth(engine: Engine) -> None:
    """Without a ceiling (replay mode) the same record is decided at its own time: the log
    says it happened then, and ingestion only refuses stamps from 2200 on."""
    processor = _five_open_cases(engine)

    batch = processor.feed(raw_of(make_report(victim_ref="V-9999FL", time=FAR)))

    assert [o.time for o in batch.outputs if isinstance(o, Decision)] == [FAR]
    assert processor.clock == FAR


Arrival = tuple[str, bytes | None, bytes, datetime]
"""A consumed record: (topic, key, value, Kafka timestamp)."""


def through_one_partition(engine: Engine, arrivals: list[Arrival]) -> list[dict[str, Any]]:
    """Feed ``arrivals`` (in this order) to a shell as partition 0 of both input topics,
    every record already in the broker; what it sent."""
    topics, kafka = Topics(), FakeKafka()
    ends: dict[str, int] = {}
    for topic, *_ in arrivals:
        ends[topic] = ends.get(topic, 0) + 1

    async def run() -> None:
        shell = StreamShell(engine, topics, {}, kafka.send, kafka.ack, partitions=4,
                            highwater=lambda topic, _p: ends.get(topic, 0))  # fmt: skip
        offsets: dict[str, int] = {}
        for topic, key, value, stamp in arrivals:
            offset = offsets[topic] = offsets.get(topic, -1) + 1
            message = Message(topic, 0, offset, key, value, to_millis(stamp) / 1000)
            await shell.on_message(message, offset)
        await shell.tick()
        await shell.flush()

    asyncio.run(run())
    return kafka.bodies()


def _arrival(event: Any, stamp: datetime | None = None) -> Arrival:
    topic = Topics().updates if event.type.startswith("case.") else Topics().reports
    value = event.model_dump_json().encode()
    return topic, event.victim_ref.encode(), value, stamp or event.time


def _p1(victim: str, time: datetime) -> ReportReceived:
    return make_report(victim_ref=victim, time=time, indicators={"immediate_danger": "yes"})


R0 = _p1("V-0004D5", after(minutes=-5))
R1 = _p1(VICTIM_REF, after())
A1 = make_ack(time=after(minutes=3), queue="immediate", decision_id=decision_id_for(R1))
R2 = _p1("V-0005E6", after(hours=2))
STRAY = make_report(victim_ref=OTHER_VICTIM, id="stray")
U = make_ack(victim_ref="V-0003C4", time=after(days=2))
STRAYS = {
    # Stamped far ahead after a plausible record (fixed in e0ae0e1).
    "far-ahead-after-others": (
        [_arrival(R0), _arrival(STRAY, datetime(9999, 12, 31, tzinfo=UTC)), _arrival(R1),
         _arrival(A1)], 1,
    ),
    # The first record the shell sees on the partition is stamped 9999 (fixed in fbf944d,
    # as the next two).
    "far-ahead-first": (
        [_arrival(STRAY, datetime(9999, 12, 31, tzinfo=UTC)), _arrival(R1), _arrival(A1)], 0
    ),
    # The first one is stamped 1970: it used to become the reference, every later record
    # looked far ahead and was merged at 1970: R2 went before A1, R1 breached.
    "far-behind-first": (
        [_arrival(STRAY, datetime(1970, 1, 1, tzinfo=UTC)), _arrival(R1), _arrival(R2),
         _arrival(A1)], 0,
    ),
    # A fourth case, a record 91 days ahead of the reports behind it on its topic, was a
    # stray while such records were dead-lettered (clock_jump). It is plausible since
    # issue 13 and merged at its stamp: see test_a_report_after_a_quiet_quarter_...
}  # fmt: skip


def by_time(engine: Engine, arrivals: list[Arrival]) -> set[str]:
    """The ids a processor outputs for ``arrivals`` taken in timestamp order."""
    processor = Processor(engine, Topics())
    ids: set[str] = set()
    for topic, key, value, stamp in sorted(arrivals, key=lambda a: a[3]):
        ids |= {o.id for o in processor.feed(RawRecord(topic, key, value, stamp)).outputs}
    return ids


def what_the_stray_changes(engine: Engine, arrivals: list[Arrival], stray: int) -> set[str]:
    """Outputs for the other records that differ from their timestamp-order replay."""
    sent = through_one_partition(engine, arrivals)
    stray_value = base64.b64encode(arrivals[stray][2]).decode()
    others = {s["id"] for s in sent if s.get("value_b64") != stray_value}
    rest = arrivals[:stray] + arrivals[stray + 1 :]
    return others ^ by_time(engine, rest)


@pytest.mark.parametrize(("arrivals", "stray"), STRAYS.values(), ids=STRAYS.keys())
def test_a_stray_stamp_changes_nothing_for_the_others(
    engine: Engine, arrivals: list[Arrival], stray: int
) -> None:
    """Wherever a record stamped absurdly far from its partition (dead-lettered) comes,
    it is merged in its place: the others give what they give in timestamp order."""
    assert what_the_stray_changes(engine, arrivals, stray) == set()


QUIET_R = _p1(VICTIM_REF, after())
QUIET_U = make_ack(time=after(days=50), queue="immediate", decision_id=decision_id_for(QUIET_R))
QUIET_LATER = _p1("V-0005E6", after(days=100))


def test_a_report_after_a_quiet_quarter_is_merged_at_its_stamp(engine: Engine) -> None:
    """A report 100 days after the one before it on its topic, fetched before an update
    stamped between them, is merged at its stamp and decided: the shell gives what the
    processor gives in timestamp order (it was merged as a stray ahead of the update and
    dead-lettered as a clock jump)."""
    arrivals = [_arrival(QUIET_R), _arrival(QUIET_LATER), _arrival(QUIET_U)]

    sent = through_one_partition(engine, arrivals)

    assert {s["id"] for s in sent} == by_time(engine, arrivals)
    assert decision_id_for(QUIET_LATER) in {s["id"] for s in sent}


def test_a_watermark_from_the_far_future_does_not_flood_the_partition(engine: Engine) -> None:
    """In live mode a clock watermark decades ahead moves the stream clock only to the
    ceiling: no deadline after it fires (it was refused as a clock jump)."""
    processor = Processor(engine, Topics())
    processor.feed(raw_of(make_report(indicators={"weapon": "yes"})))

    batch = processor.feed(raw_of(make_watermark(time=FAR), timestamp=FAR), after(minutes=2))

    assert (batch.outputs, processor.clock) == ([], after(minutes=2))
    assert "clock_clamped" in {o.kind for o in batch.observations}


class TestEventIdsAreOnlyUniquePerSource:
    def test_same_id_from_another_source_is_not_lost(self, engine: Engine) -> None:
        """Two different reports about one victim from two channels that happen to use the
        same id: the second (strangulation, a threat to kill) is decided."""
        processor = Processor(engine, Topics())
        first = make_report(id="42", source="urn:dv:channel:17")
        second = make_report(
            id="42",
            source="urn:dv:channel:114",
            time=after(minutes=5),
            indicators={"strangulation": "yes", "threat_to_kill": "yes"},
        )
        processor.feed(raw_of(first))

        batch = processor.feed(raw_of(second))

        assert [o.source_event_id for o in batch.outputs if isinstance(o, Decision)] == ["42"]

    def test_same_id_for_two_victims_gives_two_decision_ids(self, engine: Engine) -> None:
        """Reports about two victims that share an id get two different decision ids."""
        processor = Processor(engine, Topics())
        first = make_report(id="42", source="urn:dv:channel:17")
        second = make_report(id="42", source="urn:dv:channel:114", victim_ref=OTHER_VICTIM)

        ids = [
            o.id
            for r in (first, second)
            for o in processor.feed(raw_of(r)).outputs
            if isinstance(o, Decision)
        ]

        assert len(ids) == 2
        assert ids[0] != ids[1]

    def test_a_true_repeat_is_still_a_duplicate(self, engine: Engine) -> None:
        """The same source and id again is a redelivery: counted, nothing produced."""
        processor = Processor(engine, Topics())
        report = make_report(id="42", source="urn:dv:channel:17")
        processor.feed(raw_of(report))

        batch = processor.feed(raw_of(report, timestamp=after(minutes=1)))

        assert batch.outputs == []
        assert "duplicate" in {o.kind for o in batch.observations}


@pytest.mark.parametrize("kind", [["report.received"], {"t": 1}, 17], ids=["list", "object", "int"])
def test_publish_refuses_a_type_that_is_not_a_string_in_one_line(kind: object) -> None:
    """``triage publish`` answers an event whose type is not a string with one line."""
    body = {**REPORT, "type": kind}
    result = CliRunner().invoke(
        cli, ["publish", "-", "--bootstrap", "127.0.0.1:9"], input=orjson.dumps(body)
    )

    assert result.exit_code == 1
    assert result.output.startswith("error: not published: unknown_event_type")
