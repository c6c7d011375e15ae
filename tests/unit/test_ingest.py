"""Ingestion: raw bytes in, Accepted or Rejected out; dead letters keep the original bytes."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from triage.cli import cli
from triage.events.base import evolve
from triage.events.outputs import DeadLetter
from triage.events.registry import INPUT_MODELS
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import (
    MAX_BYTES,
    REASONS,
    RETIRED_REASONS,
    Accepted,
    RawRecord,
    Rejected,
    dead_letter,
    describe_errors,
    ingest,
    strict_json_problem,
)
from triage.pipeline.observations import Refused
from triage.pipeline.processor import WAITABLE, Processor
from triage.testing import (
    BASE_TIME,
    VICTIM_REF,
    after,
    decision_id_for,
    make_ack,
    make_alarm,
    make_closed,
    make_raw,
    make_report,
    make_watermark,
    raw_of,
)
from triage.topics import Topics

SECRET = "Zq§Jeanne-Dupont-06-12-34-56-78"
"""A synthetic personal value; it must never appear in a rejection detail."""
DROP = object()


def report_body(**changes: Any) -> dict[str, Any]:
    """The default report as a JSON object, with fields changed (or removed with ``DROP``)."""
    body: dict[str, Any] = orjson.loads(make_report().model_dump_json())
    for name, value in changes.items():
        if value is DROP:
            del body[name]
        else:
            body[name] = value
    return body


def raw_json(body: object, **overrides: Any) -> RawRecord:
    """``body`` encoded as JSON on the reports topic, keyed by the default victim."""
    return make_raw(orjson.dumps(body), **overrides)


def report_with(members: bytes, *, replace: tuple[bytes, bytes] = (b"", b"")) -> bytes:
    """The default report's JSON with ``members`` (raw JSON text) added first, and one
    piece of its text replaced."""
    text = make_report().model_dump_json().encode().replace(*replace, 1)
    return b"{" + members + b"," + text[1:] if members else text


def rejected(record: RawRecord, topics: Topics) -> Rejected:
    """Ingest ``record``, which must be rejected."""
    result = ingest(record, topics)
    assert isinstance(result, Rejected), result
    return result


# reason code → the record that provokes it (ingestion reasons only)
INGEST_CASES: dict[str, Callable[[], RawRecord]] = {
    "oversize": lambda: make_raw(b" " * (MAX_BYTES + 1)),
    "invalid_utf8": lambda: make_raw(b'{"name": "\xff"}'),
    "invalid_json": lambda: make_raw(b'{"type": '),
    "not_an_object": lambda: make_raw(b"[1, 2]"),
    "unknown_event_type": lambda: raw_json(report_body(type="report.deleted")),
    "unsupported_schema_version": lambda: raw_json(report_body(schema_version=99)),
    "wrong_topic": lambda: raw_json(report_body(), topic=Topics().updates),
    "naive_timestamp": lambda: raw_json(report_body(time="2026-01-05T10:00:00")),
    "schema_violation": lambda: raw_json(report_body(commune="Arras")),
    "missing_key": lambda: raw_json(report_body(), key=None),
    "key_mismatch": lambda: raw_json(report_body(), key=b"V-9999ZZ"),
    "future_timestamp": lambda: raw_json(report_body(), timestamp=BASE_TIME - timedelta(hours=25)),
    "non_finite_number": lambda: make_raw(report_with(b'"score": NaN')),
    "number_out_of_range": lambda: make_raw(report_with(b'"count": 18446744073709551616')),
    "duplicate_key": lambda: make_raw(report_with(b'"victim_ref": "V-0002B3"')),
    "implausible_timestamp": lambda: raw_json(
        report_body(), timestamp=datetime(2300, 1, 1, tzinfo=UTC)
    ),
}


class TestIngest:
    def test_valid_report_is_accepted(self, topics: Topics) -> None:
        """A well-formed report on the reports topic, keyed by its victim, is accepted as is."""
        report = make_report(indicators={"weapon": "yes"})
        record = raw_of(report)

        result = ingest(record, topics)

        assert result == Accepted(report, record)

    @pytest.mark.parametrize(
        "event",
        [make_alarm(), make_ack(), make_closed()],
        ids=["alarm", "ack", "closed"],
    )
    def test_every_input_type_is_accepted_on_its_topic(self, topics: Topics, event: Any) -> None:
        """Alarms go on the reports topic, responders' updates on the updates topic."""
        assert isinstance(ingest(raw_of(event), topics), Accepted)

    def test_watermark_is_accepted_without_a_key(self, topics: Topics) -> None:
        """A clock watermark on the reports topic is accepted though it has no key."""
        mark = make_watermark()

        result = ingest(raw_of(mark), topics)

        assert isinstance(result, Accepted)
        assert result.event == mark

    def test_watermark_on_updates_topic(self, topics: Topics) -> None:
        """A clock watermark on the updates topic is wrong_topic."""
        assert (
            rejected(raw_of(make_watermark(), topic=topics.updates), topics).reason == "wrong_topic"
        )

    def test_watermark_far_in_the_future_is_rejected(self, topics: Topics) -> None:
        """A watermark more than 24 h after its record timestamp is future_timestamp."""
        record = raw_of(make_watermark(time=after(days=3650)), timestamp=BASE_TIME)

        result = ingest(record, topics)

        assert isinstance(result, Rejected)
        assert result.reason == "future_timestamp"

    def test_prefixed_topics(self) -> None:
        """With a topic prefix, records on the prefixed topics are accepted."""
        topics = Topics(prefix="test.")

        assert isinstance(ingest(raw_of(make_report(), topics=topics), topics), Accepted)

    def test_time_is_normalised_to_utc(self, topics: Topics) -> None:
        """An event time with an offset is accepted and normalised to UTC."""
        record = raw_json(report_body(time="2026-01-05T11:00:00+01:00"))

        result = ingest(record, topics)

        assert isinstance(result, Accepted)
        assert result.event.time == BASE_TIME

    @pytest.mark.parametrize("reason", sorted(INGEST_CASES))
    def test_reason_codes(self, topics: Topics, reason: str) -> None:
        """Each kind of bad record is rejected with its own reason code, keeping the record."""
        record = INGEST_CASES[reason]()

        result = rejected(record, topics)

        assert result.reason == reason
        assert result.record is record

    def test_every_ingestion_reason_is_covered(self) -> None:
        """The cases above cover every reason code that ingestion (not the engine) produces."""
        engine_reasons = {"unknown_case", "unknown_decision", "case_closed"}

        assert set(INGEST_CASES) == set(REASONS) - engine_reasons

    def test_retired_reasons_are_no_longer_given(self) -> None:
        """``clock_jump`` is listed for older dead letters only: no check gives it now."""
        assert "clock_jump" in RETIRED_REASONS
        assert not set(RETIRED_REASONS) & set(REASONS)

    def test_oversize_limit_is_configurable(self, topics: Topics) -> None:
        """A record just over a smaller limit is rejected before being parsed."""
        record = raw_of(make_report())

        result = ingest(record, topics, max_bytes=len(record.value) - 1)

        assert isinstance(result, Rejected)
        assert result.reason == "oversize"
        assert isinstance(ingest(record, topics, max_bytes=len(record.value)), Accepted)

    @pytest.mark.parametrize("value", [b'"a string"', b"42", b"null", b"true"])
    def test_json_scalars_are_not_objects(self, topics: Topics, value: bytes) -> None:
        """JSON that is not an object is rejected as not_an_object."""
        assert rejected(make_raw(value), topics).reason == "not_an_object"

    @pytest.mark.parametrize(
        "kind", [DROP, 42, None, "triage.decision", "REPORT.RECEIVED"], ids=repr
    )
    def test_type_missing_wrong_or_an_output(self, topics: Topics, kind: object) -> None:
        """A missing, non-string, unknown or output type is unknown_event_type."""
        assert rejected(raw_json(report_body(type=kind)), topics).reason == "unknown_event_type"

    @pytest.mark.parametrize("version", [DROP, 0, 99, "1", 1.0, None], ids=repr)
    def test_schema_version_must_be_a_known_int(self, topics: Topics, version: object) -> None:
        """A missing, unknown or non-integer schema version is unsupported_schema_version."""
        assert rejected(raw_json(report_body(schema_version=version)), topics).reason == (
            "unsupported_schema_version"
        )

    def test_boolean_schema_version_is_unsupported(self, topics: Topics) -> None:
        """``"schema_version": true`` is not a schema version."""
        result = ingest(raw_json(report_body(schema_version=True)), topics)

        assert isinstance(result, Rejected)
        assert result.reason == "unsupported_schema_version"

    def test_update_on_reports_topic(self, topics: Topics) -> None:
        """A responder's update on the reports topic is wrong_topic."""
        record = raw_of(make_ack(), topic=topics.reports)

        assert rejected(record, topics).reason == "wrong_topic"

    def test_record_on_an_output_topic(self, topics: Topics) -> None:
        """A record from a topic the worker does not consume is wrong_topic."""
        record = raw_of(make_report(), topic=topics.decisions)

        assert rejected(record, topics).reason == "wrong_topic"

    def test_unprefixed_topic_when_prefixed(self) -> None:
        """With a prefix configured, the unprefixed topic name is wrong_topic."""
        assert rejected(raw_of(make_report()), Topics(prefix="test.")).reason == "wrong_topic"

    def test_naive_timestamp_among_other_errors(self, topics: Topics) -> None:
        """A naive time is reported as naive_timestamp even beside other schema errors."""
        record = raw_json(report_body(time="2026-01-05T10:00:00", commune="Arras"))

        result = rejected(record, topics)

        assert result.reason == "naive_timestamp"
        assert "commune: string_pattern_mismatch" in result.detail

    @pytest.mark.parametrize(
        "changes",
        [
            {"victim_ref": DROP},
            {"channel": "pigeon"},
            {"indicators": {"weapon": "maybe"}},
            {"extra": 1},
            {"contact": {"name": "x", "email": "y"}},
            {"id": ""},
        ],
        ids=["missing", "literal", "nested-literal", "extra", "nested-extra", "empty-id"],
    )
    def test_schema_violations(self, topics: Topics, changes: dict[str, Any]) -> None:
        """Missing, mistyped and unexpected fields are schema violations."""
        assert rejected(raw_json(report_body(**changes)), topics).reason == "schema_violation"

    def test_alarm_device_must_match_its_kind(self, topics: Topics) -> None:
        """A bracelet alarm from a grave-danger phone is a schema violation."""
        body = orjson.loads(make_alarm().model_dump_json()) | {"alarm": "bar_zone_breach"}

        assert rejected(raw_json(body), topics).reason == "schema_violation"

    def test_future_timestamp_boundary(self, topics: Topics) -> None:
        """An event up to 24 h after its record timestamp is accepted; beyond that it is not."""
        event = make_report()
        at_limit = raw_of(event, timestamp=event.time - timedelta(hours=24))
        beyond = raw_of(event, timestamp=event.time - timedelta(hours=24, microseconds=1))

        assert isinstance(ingest(at_limit, topics), Accepted)
        assert rejected(beyond, topics).reason == "future_timestamp"

    def test_late_events_are_accepted(self, topics: Topics) -> None:
        """An event much older than its record timestamp (a late delivery) is accepted."""
        record = raw_of(make_report(), timestamp=after(days=30))

        assert isinstance(ingest(record, topics), Accepted)

    @pytest.mark.parametrize(
        "changes",
        [
            {"commune": SECRET},
            {"channel": SECRET},
            {"victim_ref": SECRET},
            {"time": SECRET},
            {"contact": SECRET},
            {"contact": {"name": [SECRET]}},
            {"contact": {"phone": SECRET * 3}},
            {"contact": {SECRET: "x"}},
            {"indicators": {SECRET: "yes"}},
            {"indicators": {"weapon": SECRET}},
            {SECRET: SECRET},
            {"type": SECRET},
            {"schema_version": SECRET},
        ],
        ids=lambda changes: "+".join(k if k != SECRET else "<secret>" for k in changes),
    )
    def test_detail_never_carries_input_values(
        self, topics: Topics, changes: dict[str, Any]
    ) -> None:
        """A rejection detail names fields and error codes, never a value or unknown key."""
        result = rejected(raw_json(report_body(**changes)), topics)

        assert SECRET not in result.detail
        assert "Zq§" not in result.detail


class TestStrictJson:
    def test_a_duplicate_key_is_refused_whichever_value_wins(self, topics: Topics) -> None:
        """A report naming two victims is refused, though either one alone is valid."""
        result = rejected(make_raw(report_with(b'"victim_ref": "V-0002B3"')), topics)

        assert (result.reason, result.detail) == ("duplicate_key", "victim_ref: duplicate_key")

    @pytest.mark.parametrize(
        ("value", "detail"),
        [
            (
                report_with(b"", replace=(b'"weapon":"unknown"', b'"weapon":"no","weapon":"yes"')),
                "indicators.weapon",
            ),
            (
                report_with(b"", replace=(b'"contact":null', b'"contact":{"name":"A","name":"B"}')),
                "contact.name",
            ),
            (report_with(b'"x": [1, {"weapon": 1, "weapon": 2}]'), "<unknown-field>.1.weapon"),
            (report_with(b'"a\\u003a": 1, "a:": 2'), "<unknown-field>"),
            (report_with(b'"\\u0074ype": "report.received"'), "type"),
        ],
        ids=["nested", "contact", "in-a-list", "escaped-colon", "escaped-key"],
    )
    def test_duplicates_at_any_depth(self, topics: Topics, value: bytes, detail: str) -> None:
        """A key twice in any object, however it is spelled, is refused with its path."""
        result = rejected(make_raw(value), topics)

        assert (result.reason, result.detail) == ("duplicate_key", f"{detail}: duplicate_key")

    @pytest.mark.parametrize(
        "members",
        [b'"score": NaN', b'"score": Infinity', b'"score": -Infinity', b'"x": [1, NaN]'],
        ids=["nan", "inf", "-inf", "in-a-list"],
    )
    def test_non_finite_numbers_are_refused(self, topics: Topics, members: bytes) -> None:
        """NaN and the infinities are not JSON: non_finite_number, not invalid_json."""
        assert rejected(make_raw(report_with(members)), topics).reason == "non_finite_number"

    @pytest.mark.parametrize(
        "number",
        [b"9223372036854775808", b"-9223372036854775809", b"18446744073709551616",
         b"9" * 400, b"1e400", b"-1.5e309"],
        ids=["int64-max+1", "int64-min-1", "uint64-max+1", "400-digits", "1e400", "-1.5e309"],
    )  # fmt: skip
    def test_numbers_out_of_range_are_refused(self, topics: Topics, number: bytes) -> None:
        """Integers beyond signed 64 bits and numbers that overflow a double are refused."""
        result = rejected(make_raw(report_with(b'"count": ' + number)), topics)

        assert (result.reason, result.detail) == (
            "number_out_of_range",
            "<unknown-field>: number_out_of_range",
        )

    @pytest.mark.parametrize(
        "text", ['{"n": 9223372036854775807}', '{"n": -9223372036854775808}', '{"n": 1e308}']
    )
    def test_numbers_at_the_limits_are_in_range(self, text: str) -> None:
        """The signed 64-bit bounds and large finite doubles are strict JSON."""
        assert strict_json_problem(text) is None

    @pytest.mark.parametrize("key", sorted(INPUT_MODELS), ids=lambda k: f"{k[0]}.v{k[1]}")
    def test_no_input_model_takes_a_free_number(self, key: tuple[str, int]) -> None:
        """Every number an input model accepts is a constant (its schema version), so a
        record holding an integer beyond 64 bits is refused anyway; ingestion looks for
        one only then (a new number field would need the check on every record)."""
        numbers: list[dict[str, Any]] = []

        def walk(node: object) -> None:
            if isinstance(node, dict):
                if node.get("type") in ("integer", "number"):
                    numbers.append(node)
                for child in node.values():
                    walk(child)
            elif isinstance(node, list):
                for child in node:
                    walk(child)

        walk(INPUT_MODELS[key].model_json_schema())

        assert numbers
        assert all("const" in n for n in numbers), numbers

    def test_a_top_level_nan(self, topics: Topics) -> None:
        """``NaN`` alone is a non-finite number at the root, not a scalar."""
        result = rejected(make_raw(b"NaN"), topics)

        assert (result.reason, result.detail) == ("non_finite_number", "(root): non_finite_number")

    def test_every_problem_is_named_and_the_first_reason_wins(self, topics: Topics) -> None:
        """With several problems, the reason is the first in check order; all are listed."""
        members = b'"victim_ref": "V-0002B3", "score": [NaN], "n": 1e999'

        result = rejected(make_raw(report_with(members)), topics)

        assert result.reason == "non_finite_number"
        assert result.detail == (
            "victim_ref: duplicate_key; <unknown-field>.0: non_finite_number;"
            " <unknown-field>: number_out_of_range"
        )

    def test_broken_json_with_nan_is_invalid_json(self, topics: Topics) -> None:
        """Text that is not JSON even with NaN allowed stays invalid_json."""
        assert rejected(make_raw(b'{"a": NaN'), topics).reason == "invalid_json"

    @pytest.mark.parametrize(
        "members",
        [b'"Zq\\u00a7-Jeanne": 1, "Zq\\u00a7-Jeanne": 2', f'"{SECRET}": 1e999'.encode()],
        ids=["duplicate", "out-of-range"],
    )
    def test_detail_never_names_an_unknown_key(self, topics: Topics, members: bytes) -> None:
        """A key that is not a known field is masked in the detail, as in schema errors."""
        result = rejected(make_raw(report_with(members)), topics)

        assert "Zq" not in result.detail
        assert "Jeanne" not in result.detail

    @pytest.mark.parametrize(
        "change",
        [
            {"contact": {"notes": "ratio 1\\u003a2 at 12:30"}},
            {"contact": {"phone": "0" * 30}},
            {"contact": {"notes": "\\u00e9t\\u00e9"}},
        ],
        ids=["escaped-colon", "long-digit-run", "escapes"],
    )
    def test_valid_reports_that_take_the_exact_check_are_accepted(
        self, topics: Topics, change: dict[str, Any]
    ) -> None:
        """Escapes and long digit runs inside strings send a record to the exact check,
        which accepts it."""
        value = orjson.dumps(report_body(**change)).replace(b"\\\\u", b"\\u")

        assert isinstance(ingest(make_raw(value), topics), Accepted)

    @given(
        tree=st.recursive(
            st.none() | st.integers(-(2**63), 2**63 - 1) | st.text(":a\\é\"", max_size=4),
            lambda children: st.lists(children, max_size=3)
            | st.lists(st.tuples(st.sampled_from(["a", ":", "a:", "é", "\\"]), children),
                       max_size=4),
            max_leaves=12,
        ),
        style=st.tuples(st.booleans(), st.booleans(), st.booleans()),
    )  # fmt: skip
    def test_duplicates_are_found_exactly(
        self, tree: object, style: tuple[bool, bool, bool]
    ) -> None:
        """Any object tree, written compact or not, with or without escapes, is refused
        as duplicate_key exactly when one of its objects has a key twice."""
        text = _write([("x", tree)], *style)
        has_duplicate = _has_duplicate(tree)
        members = text.encode()[1:-1]
        value = report_with(b"") if style[2] else report_with(b"").replace(b",", b", ")
        value = b"{" + members + b"," + value[1:]

        result = ingest(make_raw(value), Topics())

        assert isinstance(result, Rejected)
        assert (result.reason == "duplicate_key") == has_duplicate


# kafka-python 3.0.12 calls deprecated importlib.resources functions when publish
# imports it; with filterwarnings=error that would fail the first test importing it.
@pytest.mark.filterwarnings(r"ignore:(read|open)_text is deprecated:DeprecationWarning")
class TestPublishRefusesLaxJson:
    @pytest.mark.parametrize(
        ("members", "reason"),
        [
            (b'"victim_ref": "V-0002B3"', "duplicate_key"),
            (b'"score": NaN', "non_finite_number"),
            (b'"count": 1e400', "number_out_of_range"),
            (b'"count": 18446744073709551616', "number_out_of_range"),
        ],
        ids=["duplicate", "nan", "overflow", "big-int"],
    )
    def test_publish_names_the_reason_and_sends_nothing(self, members: bytes, reason: str) -> None:
        """``triage publish`` refuses what the worker would dead-letter, in one line
        (no broker is reached: the port is closed)."""
        result = CliRunner().invoke(
            cli, ["publish", "-", "--bootstrap", "127.0.0.1:9"], input=report_with(members)
        )

        assert result.exit_code == 1
        assert result.output.startswith(f"error: not published: {reason} (")


def _write(node: object, ascii_only: bool, escape_colons: bool, compact: bool) -> str:
    """``node`` as JSON; lists of (key, value) tuples are objects, duplicates kept;
    non-ASCII characters and colons in strings escaped or not; compact or spaced."""
    comma, colon = (",", ":") if compact else (", ", ": ")
    style = (ascii_only, escape_colons, compact)
    if isinstance(node, list) and node and all(isinstance(n, tuple) for n in node):
        inner = comma.join(f"{_write(k, *style)}{colon}{_write(v, *style)}" for k, v in node)
        return "{" + inner + "}"
    if isinstance(node, list):
        return "[" + comma.join(_write(n, *style) for n in node) + "]"
    text = json.dumps(node, ensure_ascii=ascii_only)
    return text.replace(":", "\\u003a") if escape_colons else text


def _has_duplicate(node: object) -> bool:
    if isinstance(node, list) and node and all(isinstance(n, tuple) for n in node):
        keys = [k for k, _ in node]
        return len(set(keys)) < len(keys) or any(_has_duplicate(v) for _, v in node)
    if isinstance(node, list):
        return any(_has_duplicate(n) for n in node)
    return False


class TestDescribeErrors:
    def test_known_fields_are_named(self) -> None:
        """Known field names and list indexes are kept in the location."""
        errors = [
            {"loc": ("contact", "name"), "type": "string_type"},
            {"loc": ("x", 0), "type": "t"},
        ]

        assert describe_errors(errors) == "contact.name: string_type; <unknown-field>.0: t"

    def test_unknown_keys_are_masked(self) -> None:
        """A key that is not a field of any input model is masked: it may be personal."""
        errors = [{"loc": ("indicators", "Jeanne Dupont"), "type": "extra_forbidden"}]

        assert describe_errors(errors) == "indicators.<unknown-field>: extra_forbidden"

    def test_root_errors(self) -> None:
        """An error on the whole object is located at (root)."""
        assert describe_errors([{"loc": (), "type": "value_error"}]) == "(root): value_error"

    def test_at_most_limit_errors(self) -> None:
        """Beyond the limit, errors are counted, not listed."""
        errors = [{"loc": ("id",), "type": f"e{i}"} for i in range(7)]

        detail = describe_errors(errors, limit=5)

        assert detail.count("id:") == 5
        assert detail.endswith("(+2 more)")


class TestDeadLetter:
    def test_keeps_original_bytes_and_coordinates(self) -> None:
        """A dead letter keeps the value and key bytes, the topic, partition, offset and reason."""
        topics = Topics(prefix="test.")
        record = make_raw(b"\xff\x00 not json", topic="test.dv.reports.v1", partition=3, offset=41)

        letter = dead_letter(record, "invalid_utf8", "invalid UTF-8 at byte 0", topics)

        assert base64.b64decode(letter.value_b64) == record.value
        assert letter.key_b64 is not None
        assert base64.b64decode(letter.key_b64) == VICTIM_REF.encode()
        assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
            "dv.reports.v1",
            3,
            41,
        )
        assert (letter.reason, letter.detail, letter.time) == (
            "invalid_utf8",
            "invalid UTF-8 at byte 0",
            BASE_TIME,
        )

    def test_record_without_key(self, topics: Topics) -> None:
        """A record without a key gives a dead letter without a key."""
        letter = dead_letter(make_raw(b"x", key=None), "missing_key", "", topics)

        assert letter.key_b64 is None

    def test_id_depends_on_content_not_offset(self, topics: Topics) -> None:
        """The same bad record gives the same id wherever it was read; other bytes, another id."""
        first = dead_letter(make_raw(b"x", offset=1), "invalid_json", "", topics)
        again = dead_letter(make_raw(b"x", offset=99, partition=2), "invalid_json", "", topics)
        other = dead_letter(make_raw(b"y", offset=1), "invalid_json", "", topics)

        assert first.id == again.id != other.id


def _after_report(record: RawRecord) -> list[RawRecord]:
    return [raw_of(make_report()), record]


# Engine refusals: records that ingest fine but that the victim's state cannot accept.
REFUSAL_CASES: dict[str, Callable[[], list[RawRecord]]] = {
    "unknown_case": lambda: [raw_of(make_ack())],
    "unknown_decision": lambda: _after_report(raw_of(make_ack(decision_id="D-" + "0" * 24))),
    "case_closed": lambda: [
        raw_of(make_report()),
        raw_of(make_closed(time=after(minutes=1))),
        raw_of(make_ack(decision_id=decision_id_for(make_report()), time=after(minutes=2))),
    ],
}


class TestDeadLettersThroughProcessor:
    @pytest.mark.parametrize("reason", REASONS)
    def test_every_reason_becomes_a_dead_letter_with_the_original_bytes(
        self, engine: Engine, topics: Topics, reason: str
    ) -> None:
        """Every reason code ends as a dead letter whose base64 value is the input's bytes."""
        records = REFUSAL_CASES[reason]() if reason in REFUSAL_CASES else [INGEST_CASES[reason]()]
        processor = Processor(engine, topics)
        for record in records[:-1]:
            processor.feed(record)
        bad = records[-1]

        batch = processor.feed(bad)
        outputs, observations = list(batch.outputs), list(batch.observations)
        if reason in WAITABLE:
            # An update naming a case or decision its victim does not have waits the
            # rule set's grace for it, then gets the same dead letter.
            assert not any(isinstance(o, DeadLetter) for o in outputs)
            grace = engine.rules.update_grace
            assert grace is not None
            assert grace.delta is not None
            assert processor.clock is not None
            later = processor.advance(processor.clock + grace.delta * 2)
            outputs, observations = list(later.outputs), list(later.observations)

        letters = [o for o in outputs if isinstance(o, DeadLetter)]
        assert [letter.reason for letter in letters] == [reason]
        assert base64.b64decode(letters[0].value_b64) == bad.value
        assert [o.reason for o in observations if isinstance(o, Refused)] == [reason]

    def test_refusal_leaves_state_unchanged(self, engine: Engine, topics: Topics) -> None:
        """A refused update does not change the victim's state (its decisions, open work
        and timers): while it waits for its case it is only held beside them."""
        processor = Processor(engine, topics)
        processor.feed(raw_of(make_report()))
        before = processor.states[VICTIM_REF]

        processor.feed(raw_of(make_ack(decision_id="D-" + "0" * 24)))

        after = processor.states[VICTIM_REF]
        assert len(after.waiting) == 1
        assert evolve(after, waiting=()) == before
