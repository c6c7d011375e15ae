"""Hypothesis strategies and replay helpers shared by the unit tests.

The plain event factories live in :mod:`triage.testing` (public); what is here
needs hypothesis, which is a test-only dependency.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from hypothesis import strategies as st

from triage.events.base import QUEUE_NAMES, Level
from triage.events.inputs import INDICATOR_NAMES, ContactBlock
from triage.events.outputs import OutputEvent
from triage.pipeline.engine import Engine
from triage.pipeline.processor import Processor
from triage.replay.offline import replay_offline, to_log_record, to_raw
from triage.replay.records import LogRecord
from triage.testing import (
    BASE_TIME,
    RESPONDER_REF,
    RURAL_COMMUNE,
    SECOND_REVIEWER_REF,
    UNKNOWN_COMMUNE,
    URBAN_COMMUNE,
    after,
    decision_id_for,
    make_ack,
    make_action,
    make_alarm,
    make_closed,
    make_override,
    make_protection,
    make_raw,
    make_report,
    record_of,
)
from triage.topics import Topics

__test__ = False  # helpers, not tests

VICTIMS = ("V-0001A2", "V-0002B3", "V-0003C4")
COMMUNES = (URBAN_COMMUNE, RURAL_COMMUNE, UNKNOWN_COMMUNE)
WORK_QUEUES = tuple(q for q in QUEUE_NAMES if q != "supervisor")
FAKE_DECISION = "D-000000000000000000000000"
LEVELS = tuple(Level)

answers = st.sampled_from(("yes", "no", "unknown"))
injuries = st.sampled_from(("none", "minor", "serious", "unknown"))


@st.composite
def answer_maps(draw: st.DrawFn, *, yes_weight: int = 1) -> dict[str, str]:
    """Indicator answers, mostly ``unknown`` or ``no``, some ``yes``."""
    pool = ("unknown",) * 3 + ("no",) * 2 + ("yes",) * yes_weight
    return {name: draw(st.sampled_from(pool)) for name in INDICATOR_NAMES}


# Sentinels carry characters outside the base64 alphabet, so they cannot turn up
# by chance inside a dead letter's base64 copy of the input.
sentinels = st.builds(
    lambda n, tail: f"Zq§{n:04d}{tail}¤",
    st.integers(0, 9999),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8),
)


@st.composite
def contact_blocks(draw: st.DrawFn) -> tuple[ContactBlock, tuple[str, ...]]:
    """A contact block of fresh sentinel strings, and those strings."""
    values = [draw(sentinels) + str(i) for i in range(4)]
    block = ContactBlock(name=values[0], phone=values[1][:40], address=values[2], notes=values[3])
    used = (block.name, block.phone, block.address, block.notes)
    return block, tuple(v for v in used if v is not None)


GARBAGE = (
    b"not json",
    b"\xff\xfe\x00",
    b"[1, 2, 3]",
    b'{"type": "report.deleted", "schema_version": 1}',
    b'{"type": "report.received", "schema_version": 9}',
    b'{"type": "report.received", "schema_version": 1, "id": "x"}',
)


@st.composite
def event_logs(
    draw: st.DrawFn,
    *,
    max_events: int = 14,
    garbage: bool = True,
    with_contact: bool = False,
) -> list[LogRecord]:
    """A plausible event log: reports, alarms and responders' updates for a few victims.

    Time mostly moves forward (minutes to days), sometimes stands still or steps
    back a little, as records from different sources do. Updates name a decision
    the victim really has (when there is one) or a made-up one.
    """
    victims = draw(st.lists(st.sampled_from(VICTIMS), min_size=1, max_size=3, unique=True))
    kinds = ["report"] * 4 + ["alarm", "ack", "ack", "action", "override", "protection", "closed"]
    if garbage:
        kinds.append("garbage")
    decisions: dict[str, list[str]] = {v: [] for v in victims}
    minutes = 0
    records: list[LogRecord] = []
    for _ in range(draw(st.integers(1, max_events))):
        minutes += draw(
            st.sampled_from((0, -7, 1, 3, 12, 45, 180, 60 * 30, 60 * 24 * 4, 60 * 24 * 9))
        )
        when = after(minutes=minutes)
        victim = draw(st.sampled_from(victims))
        kind = draw(st.sampled_from(kinds))
        common: dict[str, Any] = {"victim_ref": victim, "time": when}
        known = decisions[victim]
        decision = (
            draw(st.sampled_from(known)) if known and draw(st.integers(0, 5)) else FAKE_DECISION
        )
        if kind == "report":
            contact = (
                draw(st.none() | contact_blocks().map(lambda pair: pair[0]))
                if with_contact
                else None
            )
            event: Any = make_report(
                **common,
                indicators=draw(answer_maps()),
                injuries=draw(injuries),
                commune=draw(st.sampled_from(COMMUNES)),
                complaint_filed=draw(st.booleans()),
                contact=contact,
            )
            known.append(decision_id_for(event))
        elif kind == "alarm":
            event = make_alarm(
                **common, alarm=draw(st.sampled_from(("tgd_pressed", "bar_zone_breach")))
            )
            known.append(decision_id_for(event))
        elif kind == "ack":
            event = make_ack(
                **common, decision_id=decision, queue=draw(st.sampled_from(WORK_QUEUES))
            )
        elif kind == "action":
            event = make_action(
                **common, decision_id=decision, queue=draw(st.sampled_from(WORK_QUEUES))
            )
        elif kind == "override":
            event = make_override(
                **common,
                decision_id=decision,
                direction=draw(st.sampled_from(("up", "down"))),
                new_level=draw(st.sampled_from(LEVELS)),
                second_reviewer=draw(st.sampled_from((None, RESPONDER_REF, SECOND_REVIEWER_REF))),
            )
            known.append(decision_id_for(event))
        elif kind == "protection":
            event = make_protection(**common)
        elif kind == "closed":
            event = make_closed(**common)
        else:
            raw = make_raw(draw(st.sampled_from(GARBAGE)), key=victim.encode(), timestamp=when)
            records.append(LogRecord(Topics().reports, victim, when, raw.value))
            continue
        records.append(record_of(event))
    return records


def replay_lines(records: Iterable[LogRecord], engine: Engine) -> list[bytes]:
    """Every output of an offline replay, as event-log lines."""
    return [record.to_line() for record in replay_offline(records, engine)]


def feed_each(
    records: Sequence[LogRecord], engine: Engine, *, flush: bool = False
) -> tuple[list[list[bytes]], Processor]:
    """Feed ``records`` through one processor; the output lines of each feed, and the processor.

    With ``flush``, a last batch holds the timers already overdue at the final stream
    clock (those a late event created after the clock had passed them).
    """
    topics = Topics()
    processor = Processor(engine, topics)

    def lines(outputs: Iterable[OutputEvent]) -> list[bytes]:
        return [to_log_record(out, topics).to_line() for out in outputs]

    batches = [lines(processor.feed(to_raw(record, topics)).outputs) for record in records]
    if flush and processor.clock is not None:
        batches.append(lines(processor.advance(processor.clock).outputs))
    return batches, processor


def flatten(batches: Iterable[list[bytes]]) -> list[bytes]:
    """Per-feed output lines as one list, in order."""
    return [line for batch in batches for line in batch]


__all__ = [
    "BASE_TIME",
    "GARBAGE",
    "answer_maps",
    "contact_blocks",
    "event_logs",
    "feed_each",
    "flatten",
    "injuries",
    "replay_lines",
    "sentinels",
]


def contact_values(log: Iterable[LogRecord]) -> set[str]:
    """Every non-empty string in the contact blocks of the log's records (the personal
    data that must reach nothing but a queue record's contact block)."""
    found: set[str] = set()
    for record in log:
        try:
            body = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            continue
        if isinstance(body, dict) and isinstance(body.get("contact"), dict):
            found.update(v for v in body["contact"].values() if isinstance(v, str) and v)
    return found
