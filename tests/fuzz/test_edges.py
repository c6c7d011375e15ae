"""Input at the edges, each of which once crashed the worker, flooded a partition or lost
a report (found by this suite, fixed in 82d09bb), and one that still does (xfail).

1. Times near the ends of the datetime range raised OverflowError inside the core:
   one record crashed the worker, again after every restart. Event times are now
   bounded to 2000–2200 and absurd Kafka timestamps clamped, then dead-lettered.
2. A record dated decades ahead (its Kafka timestamp too) dragged its partition's
   stream clock there: every open case emitted every missed re-assessment and
   escalation at once. A jump of more than 90 days is now dead-lettered.
3. Event ids are unique per CloudEvents ``source`` only: another channel's report
   reusing an id was dropped as a duplicate, and two victims' reports sharing one
   got the same decision id. Both now key on source and id.
4. ``triage publish`` met a non-string ``type`` with a traceback.
5. Still open: an event dated in the last weeks before 2200 computes deadlines past
   2200, which the output models refuse: a ValidationError crashes the core.
6. Still open: the worker merges its two input topics by Kafka timestamp, so one
   record stamped far ahead (year 9999, or a 90-day jump: both dead-lettered
   anyway) holds back every record behind it on its topic while the other topic's
   records overtake them: acknowledgements reach the engine before their reports
   (dead-lettered as unknown_case), reports come late (floods of escalations), and
   the worker's outputs differ from the offline replay's.
"""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

with warnings.catch_warnings():  # kafka-python (imported by the shell) warns on import
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from triage.streaming.shell import StreamShell

from triage.cli import cli
from triage.events.outputs import DeadLetter, Decision
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import RawRecord
from triage.pipeline.processor import Processor
from triage.replay.records import to_millis
from triage.testing import after, make_ack, make_raw, make_report, raw_of
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


@dataclass
class _Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: float
    headers: Any = ()


def test_a_kafka_timestamp_past_year_9999_is_dead_lettered(engine: Engine) -> None:
    """A record whose Kafka timestamp is beyond year 9999 goes to the dead-letter topic."""
    sent: list[bytes] = []

    async def send(topic: str, key: Any, value: bytes, headers: Any, ts: float) -> Any:
        sent.append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def ack(_token: Any) -> None:
        return None

    async def run() -> None:
        shell = StreamShell(engine, Topics(), {}, send, ack, partitions=4)
        record = raw_of(make_report())
        message = _Message(record.topic, 0, 0, record.key, record.value, 253_402_300_800.0)
        await shell.on_message(message, "token")
        await shell.flush()

    asyncio.run(run())

    assert [orjson.loads(v)["reason"] for v in sent] == ["implausible_timestamp"]


def test_a_record_from_the_far_future_does_not_flood_the_partition(engine: Engine) -> None:
    """One record dated 2100 (its Kafka timestamp too) among cases opened in 2026 is
    dead-lettered as a clock jump, and produces nothing else."""
    processor = Processor(engine, Topics())
    for i in range(5):
        processor.feed(raw_of(make_report(victim_ref=f"V-{i:04d}FL", indicators={"weapon": "yes"})))
    far = make_report(victim_ref="V-9999FL", time=datetime(2100, 1, 1, tzinfo=UTC))

    batch = processor.feed(raw_of(far))

    assert _letters(batch.outputs) == ["clock_jump"]
    assert len(batch.outputs) == 1


@pytest.mark.xfail(
    strict=True,
    reason="BUG: StreamShell merges the input topics by raw Kafka timestamp; a record "
    "stamped far ahead (dead-lettered anyway) makes later records of the other topic "
    "overtake everything behind it: an acknowledgement is refused as unknown_case",
)
def test_a_far_future_stamp_does_not_let_updates_overtake_reports(engine: Engine) -> None:
    """Reports topic: a record stamped 9999, then a report; updates topic: its
    acknowledgement. As offline, the report is decided and then acknowledged."""
    topics, sent = Topics(), []
    report = make_report()
    ack = make_ack(time=after(minutes=3))
    bad = raw_of(make_report(victim_ref=OTHER_VICTIM, id="stamped-9999"))

    async def send(topic: str, key: Any, value: bytes, headers: Any, ts: float) -> Any:
        sent.append(orjson.loads(value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def ack_token(_token: Any) -> None:
        return None

    async def run() -> None:
        ends = {topics.reports: 2, topics.updates: 1}
        shell = StreamShell(engine, topics, {}, send, ack_token, partitions=4,
                            highwater=lambda topic, _p: ends[topic])  # fmt: skip
        arrivals = [
            _Message(topics.reports, 0, 0, bad.key, bad.value, 253_402_214_400.0),
            _Message(topics.reports, 0, 1, *_kv(report), to_millis(report.time) / 1000),
            _Message(topics.updates, 0, 0, *_kv(ack), to_millis(ack.time) / 1000),
        ]
        for message in arrivals:
            await shell.on_message(message, message.offset)
        await shell.tick()
        await shell.flush()

    asyncio.run(run())

    letters = [(s["reason"], s["source_topic"]) for s in sent if s["type"] == "triage.dead_letter"]
    assert letters == [("implausible_timestamp", topics.reports)]


def _kv(event: Any) -> tuple[bytes, bytes]:
    return event.victim_ref.encode(), event.model_dump_json().encode()


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
