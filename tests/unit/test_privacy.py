"""Privacy by construction: personal values from the input reach only queue records' contact.

Names, phone numbers, addresses and free text are replaced by random sentinel
strings; every output line is then searched for them, except the ``contact``
block of queue records, which exists for the responders who must reach the victim.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
from aiokafka.errors import KafkaConnectionError, KafkaError
from faust.types.tuples import TP
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from tests.factories import contact_blocks, contact_values, event_logs, sentinels
from triage.events.inputs import ContactBlock
from triage.events.outputs import DeadLetter
from triage.observability.redaction import render_library_message
from triage.pipeline.engine import Engine
from triage.pipeline.processor import Processor
from triage.replay.offline import replay_offline, to_raw
from triage.replay.records import LogRecord
from triage.replay.summary import Summary
from triage.testing import make_ack, make_override, make_raw, make_report, record_of
from triage.topics import Topics

Mutation = Callable[[dict[str, Any], str], None]


def strings(node: object) -> Iterator[str]:
    """Every string in a JSON value, keys included."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def outside_contact(line: bytes) -> tuple[object, bool]:
    """An output line as JSON with a queue record's contact removed, and whether one was."""
    parsed = orjson.loads(line)
    value = parsed["value"]
    removed = value.get("type") == "triage.queue_record" and value.pop("contact", None) is not None
    return parsed, removed


def assert_nothing_personal(line: bytes, personal: set[str]) -> bool:
    """Fail if a personal value occurs in ``line`` outside a queue record's contact block."""
    parsed, had_contact = outside_contact(line)
    leaked = {p for p in personal for s in strings(parsed) if p in s}
    assert not leaked, f"personal value outside a contact block: {parsed}"
    if not had_contact:
        assert not any(p.encode() in line for p in personal)
    return had_contact


class TestOutputsCarryNoPersonalData:
    @given(first=contact_blocks(), log=event_logs(with_contact=True))
    def test_contact_values_only_in_queue_record_contact(
        self, engine: Engine, first: tuple[ContactBlock, tuple[str, ...]], log: list[LogRecord]
    ) -> None:
        """No output but a queue record's contact block carries a name, phone, address or note."""
        log = [record_of(make_report(contact=first[0])), *log]
        personal = contact_values(log)
        summary = Summary()

        lines = [record.to_line() for record in replay_offline(log, engine, summary)]

        carried = [assert_nothing_personal(line, personal) for line in lines]
        assert any(carried)  # the contact block does reach the responders
        figures = orjson.dumps(summary.to_dict())
        assert not any(p.encode() in figures for p in personal)

    @given(first=contact_blocks(), log=event_logs(with_contact=True, garbage=False))
    def test_observations_carry_no_personal_data(
        self, engine: Engine, first: tuple[ContactBlock, tuple[str, ...]], log: list[LogRecord]
    ) -> None:
        """Observations (the source of metrics and logs) never carry a contact value or a victim."""
        log = [record_of(make_report(contact=first[0])), *log]
        personal = contact_values(log)
        topics = Topics()
        processor = Processor(engine, topics)

        observations = [o for r in log for o in processor.feed(to_raw(r, topics)).observations]

        text = repr(observations)
        assert not any(p in text for p in personal)
        assert "V-000" not in text


MUTATIONS: dict[str, Mutation] = {
    "extra field": lambda body, s: body.__setitem__(s, s),
    "extra contact field": lambda body, s: body.__setitem__("contact", {s: "x", "name": "y"}),
    "extra indicator": lambda body, s: body.__setitem__("indicators", {s: "yes"}),
    "commune": lambda body, s: body.__setitem__("commune", s),
    "channel": lambda body, s: body.__setitem__("channel", s),
    "victim_ref": lambda body, s: body.__setitem__("victim_ref", s),
    "suspect_ref": lambda body, s: body.__setitem__("suspect_ref", s),
    "reporter_role": lambda body, s: body.__setitem__("reporter_role", s),
    "time": lambda body, s: body.__setitem__("time", s),
    "id": lambda body, s: body.__setitem__("id", s),
    "source": lambda body, s: body.__setitem__("source", s),
    "contact as text": lambda body, s: body.__setitem__("contact", s),
    "name as list": lambda body, s: body.__setitem__("contact", {"name": [s, {s: s}]}),
    "name as object": lambda body, s: body.__setitem__("contact", {"name": {s: s}}),
    "phone too long": lambda body, s: body.__setitem__("contact", {"phone": s * 10}),
    "notes as number-ish": lambda body, s: body.__setitem__("contact", {"notes": {"n": s}}),
    "indicators as text": lambda body, s: body.__setitem__("indicators", s),
    "indicator value": lambda body, s: body.__setitem__("indicators", {"weapon": s}),
    "injuries": lambda body, s: body.__setitem__("injuries", s),
    "complaint_filed": lambda body, s: body.__setitem__("complaint_filed", s),
    "type": lambda body, s: body.__setitem__("type", s),
    "schema_version": lambda body, s: body.__setitem__("schema_version", s),
    "specversion": lambda body, s: body.__setitem__("specversion", s),
    "deep extra": lambda body, s: body.__setitem__("indicators", {"weapon": "yes", s: {s: [s]}}),
}
UPDATE_MUTATIONS: dict[str, Mutation] = {
    "decision_id": lambda body, s: body.__setitem__("decision_id", s),
    "queue": lambda body, s: body.__setitem__("queue", s),
    "responder_ref": lambda body, s: body.__setitem__("responder_ref", s),
    "reason": lambda body, s: body.__setitem__("reason", s),
    "second_reviewer": lambda body, s: body.__setitem__("second_reviewer", s),
    "new_level": lambda body, s: body.__setitem__("new_level", s),
    "extra field": lambda body, s: body.__setitem__(s, 1),
}


def dead_letters_for(value: bytes, topic: str, engine: Engine) -> list[DeadLetter]:
    """Feed one record through a fresh processor; the dead letters it produced."""
    topics = Topics()
    batch = Processor(engine, topics).feed(make_raw(value, topic=topic))
    return [o for o in batch.outputs if isinstance(o, DeadLetter)]


def assert_letter_is_clean(letter: DeadLetter, secret: str) -> None:
    """Fail if ``secret`` is anywhere in a dead letter but its base64 copy of the input."""
    assert secret not in letter.detail
    visible = letter.model_dump(mode="json", exclude={"value_b64", "key_b64"})
    assert not any(secret in s for s in strings(visible))


class TestDeadLettersCarryNoInputValues:
    @given(
        secret=sentinels,
        names=st.lists(st.sampled_from(sorted(MUTATIONS)), min_size=1, max_size=3, unique=True),
    )
    def test_bad_report(self, engine: Engine, secret: str, names: list[str]) -> None:
        """A report made invalid by fields or values holding a personal value gives a dead
        letter whose detail names fields and codes only."""
        body = orjson.loads(make_report().model_dump_json())
        for name in names:
            MUTATIONS[name](body, secret)

        letters = dead_letters_for(orjson.dumps(body), Topics().reports, engine)

        assert len(letters) == 1
        assert_letter_is_clean(letters[0], secret)

    @given(
        secret=sentinels,
        names=st.lists(
            st.sampled_from(sorted(UPDATE_MUTATIONS)), min_size=1, max_size=2, unique=True
        ),
        override=st.booleans(),
    )
    def test_bad_update(
        self, engine: Engine, secret: str, names: list[str], override: bool
    ) -> None:
        """A responder's update holding a personal value where it does not belong gives a
        clean dead letter (or a refusal for a victim without a case, equally clean)."""
        event = make_override() if override else make_ack()
        body = orjson.loads(event.model_dump_json())
        for name in names:
            UPDATE_MUTATIONS[name](body, secret)

        letters = dead_letters_for(orjson.dumps(body), Topics().updates, engine)

        assert len(letters) == 1
        assert_letter_is_clean(letters[0], secret)


class _Named(BaseModel):
    victim_ref: int


def _validation_error(secret: str) -> ValidationError:
    try:
        _Named.model_validate({"victim_ref": secret})
    except ValidationError as exc:
        return exc
    raise AssertionError("a sentinel validated as a number")


WRAPS: dict[str, Callable[[str], object]] = {
    "as is": lambda s: s,
    "in a dict": lambda s: {"name": s, "ok": 1},
    "dict key": lambda s: {s: 1},
    "bytes": lambda s: s.encode(),
    "in a list": lambda s: [s, 1],
    "in a set": lambda s: {s},
    "in a tuple": lambda s: (s, 9092),
    "as a partition's topic": lambda s: TP(s, 1),
    "offsets of a partition": lambda s: {TP("dv.reports.v1", 0): s},
    "ValueError": lambda s: ValueError(s),
    "pydantic error": _validation_error,
    "JSON error": lambda s: orjson.JSONDecodeError(f"bad {s}", s, 0),
    "inside a Kafka error": lambda s: KafkaError(ValueError(s)),
    "object": lambda s: type("Obj", (), {"__repr__": lambda self: s, "__str__": lambda self: s})(),
}
TEMPLATES = (
    "%s",
    "Processing %r failed: %s",
    "Setting newly assigned partitions %s for group %s",
    'Unable connect to "%s:%s": %s',
    "topic %r",
    "host=%s",
    "%(group)s %(value)s",
)
ascii_names = st.from_regex(r"[A-Z][a-z]{2,12}( [A-Z][a-z]{2,12}){0,2}", fullmatch=True)
"""Person-like ASCII names: what the name shape of a group or topic could confuse."""


class TestLibraryLogArgumentsCarryNoPersonalData:
    @given(
        secret=sentinels,
        wrap=st.sampled_from(sorted(WRAPS)),
        template=st.sampled_from(TEMPLATES),
        position=st.integers(0, 2),
    )
    def test_non_ascii_sentinels_never_shown(
        self, secret: str, wrap: str, template: str, position: int
    ) -> None:
        """A personal value (outside the characters of a Kafka name), however wrapped and
        wherever a library puts it, even where a group, topic or host goes, is not shown."""
        value = WRAPS[wrap](secret)
        if "%(" in template:
            args: object = {"group": value, "value": value}
        else:
            count = template.count("%")
            filler: list[object] = [KafkaConnectionError("Connection at 127.0.0.1:9092 closed")]
            args = tuple(value if i == position % count else (9092 if i == 1 else filler[0])
                         for i in range(count))  # fmt: skip

        text = render_library_message(template, args)

        assert secret not in text
        assert "<redacted:" in text

    @given(name=ascii_names, wrap=st.sampled_from(sorted(set(WRAPS) - {"as a partition's topic"})))
    def test_names_in_plain_positions_never_shown(self, name: str, wrap: str) -> None:
        """A person-like name in a position the template does not name is not shown.

        (A partition's topic field is a topic name by construction: it is shown when it
        has the shape of one.)"""
        text = render_library_message("Processing %s / %r failed", (WRAPS[wrap](name),) * 2)

        assert name not in text
