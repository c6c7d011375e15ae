"""Corpus kinds that ingestion must reject or that test its edges: bytes, JSON, schema,
keys, timestamps, repeats, versions. Each builder returns one case (kind left empty).

Event times in the last weeks before 2200 are not here: they crash the core today
(``tests/fuzz/test_edges.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson

from triage.events.inputs import INDICATOR_NAMES, InputEvent, ReportReceived
from triage.events.registry import INPUT_MODELS
from triage.pipeline.ingest import MAX_BYTES
from triage.reliability.cases import REPORTS, UPDATES, Case, Expect, Probe, probe_of
from triage.testing import (
    make_ack,
    make_alarm,
    make_closed,
    make_override,
    make_protection,
    make_report,
)

if TYPE_CHECKING:
    from triage.reliability.corpus import CorpusBuilder

Builder = Callable[["CorpusBuilder"], Case]

_BAD_UTF8 = (b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80")
_NOT_JSON = (
    b"", b" ", b"\n", b"{", b"}", b"{'type': 'report.received'}", b'{"a": NaN',
    b"\x00", b'{"type": "report.received",}', b"undefined", b'{"a" 1}', b"[" * 5000,
    b'{"n": ' + b"9" * 400, b'{"s": "\\ud800"}', b"\xef\xbb\xbf{}",
)  # fmt: skip
_NON_FINITE = (b"NaN", b"Infinity", b"-Infinity")
_OUT_OF_RANGE_NUMBERS = (
    b"9223372036854775808", b"-9223372036854775809", b"18446744073709551616",
    b"9" * 400, b"1e400", b"-2.5e308", b"1E+999",
)  # fmt: skip
_NOT_OBJECTS = (b"[]", b"[1, 2]", b"1", b"-0.5", b'"report.received"', b"true", b"null")
_BAD_TYPES: tuple[object, ...] = (
    "report.deleted", "", "REPORT.RECEIVED", "triage.decision", "triage.dead_letter",
    None, 17, ["report.received"], {"type": "report.received"}, "report.received ",
)  # fmt: skip
_BAD_VERSIONS: tuple[object, ...] = (0, 3, 99, -1, "1", "2", 1.0, 2.0, True, None, [1], {"v": 1})
_UNKNOWN_COMMUNES = ("62999", "75056", "2A004", "97411", "59350", "00000")
_LANGUAGES = ("fr", "nl", "ar", "en", "pl", "tr", "es", "de", "uk", "ro")
_BAD_LANGUAGES: tuple[object, ...] = ("french", "FR", "fra", "f", "fr-BE", 12, True, ["fr"])
DROP = object()
"""A field value meaning: remove the field."""


def _dead(reason: str) -> Expect:
    return Expect("dead_letter", reason)


def _any_event(b: CorpusBuilder) -> InputEvent:
    """A valid event of a random input type about this case's victim (no setup needed:
    the record under test is rejected before the victim's state is looked at)."""
    common, fake = b.common("any"), "D-" + "0" * 24
    kind = b.rng.randrange(7)
    if kind == 0:
        return make_report(**common)
    if kind == 1:
        return make_alarm(**common, alarm=b.choice(("tgd_pressed", "bar_zone_breach")))
    if kind == 2:
        return make_ack(**common, decision_id=fake)
    if kind == 3:
        return make_override(**common, decision_id=fake)
    if kind == 4:
        return make_protection(**common)
    if kind == 5:
        return make_closed(**common)
    return make_ack(**common, decision_id=fake, queue="immediate")


@cache
def _required(model: type[InputEvent]) -> tuple[str, ...]:
    """The required fields of ``model`` but the envelope's type and version."""
    required = model.model_json_schema()["required"]
    return tuple(f for f in required if f not in ("type", "schema_version"))


def _topic_of(event: InputEvent) -> str:
    return probe_of(event).topic


def _with(body: dict[str, Any], field: str, value: object) -> dict[str, Any]:
    changed = dict(body)
    if value is DROP:
        changed.pop(field, None)
    else:
        changed[field] = value
    return changed


def _reason_for_bytes(value: bytes, otherwise: str) -> str:
    """The reason ingestion gives ``value`` for its size or encoding, else ``otherwise``."""
    if len(value) > MAX_BYTES:
        return "oversize"
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    return otherwise


# -- bytes and JSON ------------------------------------------------------------------


def truncated_json(b: CorpusBuilder) -> Case:
    """A report with a contact block, cut short (perhaps inside a multi-byte character)."""
    contact, personal = b.contact()
    value = b.report(contact=contact).model_dump_json().encode()
    cut = value[: b.rng.randrange(1, len(value) - 1)]
    return Case("", b.probe(cut), _dead(_reason_for_bytes(cut, "invalid_json")), personal=personal)


def invalid_utf8(b: CorpusBuilder) -> Case:
    """A report with an invalid UTF-8 sequence spliced in somewhere."""
    contact, personal = b.contact()
    value = b.report(contact=contact).model_dump_json().encode()
    at = b.rng.randrange(len(value) + 1)
    spliced = value[:at] + b.choice(_BAD_UTF8) + value[at:]
    return Case("", b.probe(spliced), _dead("invalid_utf8"), personal=personal)


def not_json(b: CorpusBuilder) -> Case:
    """Bytes that are not JSON: empty, Python repr, a bare word, too deep, cut short…"""
    return Case("", b.probe(b.choice(_NOT_JSON)), _dead("invalid_json"))


def _add_member(value: bytes, member: bytes, *, inside: bytes = b"") -> bytes:
    """``value`` (compact JSON of an object) with ``member`` (raw ``"key":value`` text)
    added first to the object itself, or to the object opened by ``inside``
    (``b'"indicators":{'``)."""
    at = value.index(inside) + len(inside) if inside else 1
    return value[:at] + member + b"," + value[at:]


def duplicate_key(b: CorpusBuilder) -> Case:
    """A valid event with a key written twice, at the top or in a nested object: the
    victim (another one), an indicator (yes then unknown), the contact name (two
    sentinels). Either value alone would be valid; orjson alone keeps the last."""
    event = _any_event(b)
    value = orjson.dumps(b.body(event))
    personal: tuple[str, ...] = ()
    where = b.rng.randrange(3) if isinstance(event, ReportReceived) else 0
    if where == 0:
        value = _add_member(value, b'"victim_ref":"V-FZOTHER0001"')
    elif where == 1:
        indicator = b.choice(INDICATOR_NAMES).encode()
        value = _add_member(value, b'"' + indicator + b'":"yes"', inside=b'"indicators":{')
    else:
        first, second = b.sentinel("Name"), b.sentinel("Name")
        value = orjson.dumps({**b.body(event), "contact": {"name": second}})
        value = _add_member(value, orjson.dumps("name") + b":" + orjson.dumps(first),
                            inside=b'"contact":{')  # fmt: skip
        personal = (first, second)
    return Case("", b.probe(value, topic=_topic_of(event)), _dead("duplicate_key"),
                personal=personal)  # fmt: skip


def non_finite_number(b: CorpusBuilder) -> Case:
    """``NaN`` or an infinity (not JSON, though many encoders write them), alone, in an
    unknown field, as an indicator or as the schema version."""
    literal = b.choice(_NON_FINITE)
    value = orjson.dumps(b.body(b.report()))
    where = b.rng.randrange(4)
    if where == 0:
        value = literal
    elif where == 1:
        value = _add_member(value, b'"score":' + literal)
    elif where == 2:
        value = _add_member(value, b'"weapon":' + literal, inside=b'"indicators":{')
    else:
        value = value.replace(b'"schema_version":1', b'"schema_version":' + literal, 1)
    return Case("", b.probe(value), _dead("non_finite_number"))


def number_out_of_range(b: CorpusBuilder) -> Case:
    """An integer beyond signed 64 bits or a number that overflows a double, in an
    unknown field, as the schema version or in a list."""
    number = b.choice(_OUT_OF_RANGE_NUMBERS)
    value = orjson.dumps(b.body(b.report()))
    where = b.rng.randrange(3)
    if where == 0:
        value = _add_member(value, b'"count":' + number)
    elif where == 1:
        value = value.replace(b'"schema_version":1', b'"schema_version":' + number, 1)
    else:
        value = _add_member(value, b'"counts":[1,' + number + b"]")
    return Case("", b.probe(value), _dead("number_out_of_range"))


def not_an_object(b: CorpusBuilder) -> Case:
    """JSON that is not an object (a scalar, or an array holding a whole report)."""
    whole = b.rng.random() < 0.3
    value = orjson.dumps([b.body(b.report())]) if whole else b.choice(_NOT_OBJECTS)
    return Case("", b.probe(value), _dead("not_an_object"))


def oversize(b: CorpusBuilder) -> Case:
    """More than 64 KiB: a report with huge notes, or huge invalid bytes."""
    name = b.sentinel("Name")
    if b.rng.random() < 0.7:
        body = b.body(b.report())
        body["contact"] = {
            "name": name,
            "notes": b.sentinel("notes") * b.rng.randrange(4_500, 9_000),
        }
        value = orjson.dumps(body)
    else:
        value = b"\xff" + name.encode() * b.rng.randrange(4_500, 9_000)
    assert len(value) > MAX_BYTES
    return Case("", b.probe(value), _dead("oversize"), personal=(name,))


# -- envelope ------------------------------------------------------------------------


def unknown_event_type(b: CorpusBuilder) -> Case:
    """A valid event whose ``type`` is missing, not a string, unknown or an output's."""
    event = _any_event(b)
    body = _with(b.body(event), "type", DROP if b.rng.random() < 0.15 else b.choice(_BAD_TYPES))
    return Case("", b.probe(body, topic=_topic_of(event)), _dead("unknown_event_type"))


def unsupported_schema_version(b: CorpusBuilder) -> Case:
    """A valid event whose ``schema_version`` is missing or not one registered for it."""
    event = _any_event(b)
    versions = tuple(
        v for v in _BAD_VERSIONS if not (type(v) is int and (event.type, v) in INPUT_MODELS)
    )
    version = DROP if b.rng.random() < 0.15 else b.choice(versions)
    body = _with(b.body(event), "schema_version", version)
    return Case("", b.probe(body, topic=_topic_of(event)), _dead("unsupported_schema_version"))


def wrong_topic(b: CorpusBuilder) -> Case:
    """A valid event on the other input topic."""
    event = _any_event(b)
    other = UPDATES if _topic_of(event) == REPORTS else REPORTS
    return Case("", b.probe(b.body(event), topic=other), _dead("wrong_topic"))


# -- schema --------------------------------------------------------------------------


def _report_damage(b: CorpusBuilder) -> tuple[str, object, tuple[str, ...]]:
    """A field of a report and a wrong value for it, and the sentinels that value holds."""
    s = b.sentinel("Name")
    options: tuple[tuple[str, object], ...] = (
        ("channel", 17), ("commune", 62041), ("complaint_filed", "yes"), ("complaint_filed", 1),
        ("indicators", "all"), ("indicators", ["weapon"]), ("indicators", {"weapon": True}),
        ("injuries", 3), ("time", 1767607200), ("time", None), ("victim_ref", [b.victim]),
        ("id", 123), ("contact", s), ("contact", {"name": 42}), ("contact", {"name": [s]}),
        ("contact", {"phone": {"n": s}}), ("suspect_ref", {"ref": s}), ("reporter_role", s),
        ("commune", f"62041 {s}"), ("channel", s), ("injuries", [s, {s: s}]),
        ("indicators", {"weapon": s}), ("source", ""), ("id", "has space"),
        ("victim_ref", "v-lowercase"), ("commune", "6204"), ("suspect_ref", s),
        ("contact", {"phone": "0612" * 20}), ("specversion", "0.3"),
    )  # fmt: skip
    field, value = b.choice(options)
    return field, value, (s,) if s in orjson.dumps(value).decode() else ()


def wrong_types(b: CorpusBuilder) -> Case:
    """A report with one field of the wrong type or shape (some holding a sentinel)."""
    field, value, personal = _report_damage(b)
    body = _with(b.body(b.report()), field, value)
    return Case("", b.probe(body), _dead("schema_violation"), personal=personal)


def missing_field(b: CorpusBuilder) -> Case:
    """A valid event without one of its required fields."""
    event = _any_event(b)
    field = b.choice(_required(type(event)))
    body = _with(b.body(event), field, DROP)
    return Case("", b.probe(body, topic=_topic_of(event)), _dead("schema_violation"))


def unknown_field(b: CorpusBuilder) -> Case:
    """A valid report with an unknown key (named by a sentinel) at the top or nested."""
    key, value = b.sentinel("Name"), b.sentinel("0612")
    body = b.body(b.report(indicators={"weapon": "yes"}))
    where = b.rng.randrange(3)
    if where == 0:
        body[key] = value
    elif where == 1:
        body["indicators"] = {**body["indicators"], key: "yes"}
    else:
        body["contact"] = {"name": value, key: {key: [value]}}
    return Case("", b.probe(body), _dead("schema_violation"), personal=(key, value))


def huge_field(b: CorpusBuilder) -> Case:
    """A report whose name is tens of kilobytes (under the record size limit)."""
    name = b.sentinel("Name") * b.rng.randrange(1_000, 2_500)
    body = b.body(b.report())
    body["contact"] = {"name": name}
    value = orjson.dumps(body)
    assert len(value) <= MAX_BYTES
    return Case("", b.probe(value), _dead("schema_violation"), personal=(name,))


def alarm_device_mismatch(b: CorpusBuilder) -> Case:
    """A grave-danger-phone alarm from a bracelet (and the other way round)."""
    alarm = b.choice(("tgd_pressed", "bar_zone_breach"))
    device = "BAR-01" if alarm == "tgd_pressed" else "TGD-01"
    body = b.body(make_alarm(**b.common("alarm"), alarm=alarm))
    body["device_ref"] = device
    return Case("", b.probe(body), _dead("schema_violation"))


# -- time and keys -------------------------------------------------------------------


def naive_timestamp(b: CorpusBuilder) -> Case:
    """A valid event whose time has no offset."""
    event = _any_event(b)
    naive = event.time.replace(tzinfo=None).isoformat(
        timespec=b.choice(("seconds", "milliseconds"))
    )
    body = _with(b.body(event), "time", naive)
    return Case("", b.probe(body, topic=_topic_of(event)), _dead("naive_timestamp"))


def future_timestamp(b: CorpusBuilder) -> Case:
    """A report dated more than 24 h after its record timestamp (up to ten years)."""
    ahead = timedelta(hours=24, seconds=b.rng.randrange(1, 10 * 365 * 86_400))
    at = b.tick()
    body = _with(b.body(b.report()), "time", (at + ahead).isoformat())
    return Case(
        "", Probe(REPORTS, b.victim.encode(), orjson.dumps(body), at), _dead("future_timestamp")
    )


_IMPLAUSIBLE = (
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC),
    datetime(2200, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, tzinfo=UTC),
)
_OUT_OF_RANGE = (
    "0001-01-01T00:00:00Z", "0001-01-01T00:30:00+01:00", "1999-12-31T23:59:59Z",
    "2200-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "9999-12-31T23:30:00-01:00",
)  # fmt: skip


def implausible_timestamp(b: CorpusBuilder) -> Case:
    """A valid report whose Kafka timestamp is before 2000 or from 2200 on (any producer
    may set one)."""
    body = b.body(b.report())
    value, key = orjson.dumps(body), b.victim.encode()
    return Case(
        "", Probe(REPORTS, key, value, b.choice(_IMPLAUSIBLE)), _dead("implausible_timestamp")
    )


def event_time_out_of_range(b: CorpusBuilder) -> Case:
    """A report dated before 2000 or after 2200, up to the ends of the datetime range."""
    when = b.choice(_OUT_OF_RANGE)
    body = _with(b.body(b.report()), "time", when)
    # Times whose UTC form overflows a datetime fail validation; the others are
    # well-formed but refused as implausible.
    overflows = when in ("0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00")
    return Case(
        "", b.probe(body), _dead("schema_violation" if overflows else "implausible_timestamp")
    )


# No kind for a record months after its partition's last one: it is not malformed (a
# quiet partition; the log is the truth) and, accepted, it moves the clock of every case
# in the stream. The processor's and the shell's tests cover it (TestQuietPartitions).


def missing_key(b: CorpusBuilder) -> Case:
    """A valid report published without a key."""
    return Case("", b.probe(b.body(b.report()), key=None), _dead("missing_key"))


def key_mismatch(b: CorpusBuilder) -> Case:
    """A valid report keyed by another victim, an empty key, bytes that are not UTF-8,
    or a name."""
    s = b.sentinel("Name")
    key = b.choice((b"V-OTHER0001", b"", b"\xff\xfe", s.encode(), b.victim.lower().encode()))
    personal = (s,) if key == s.encode() else ()
    return Case("", b.probe(b.body(b.report()), key=key), _dead("key_mismatch"), personal=personal)


# -- valid records at the edges --------------------------------------------------------


def unknown_commune(b: CorpusBuilder) -> Case:
    """A valid report from a commune the unit directory does not know: decided, flagged."""
    report = b.report(commune=b.choice(_UNKNOWN_COMMUNES))
    return Case("", probe_of(report), Expect("decided", flagged=True), event_id=report.id)


def valid_with_contact(b: CorpusBuilder) -> Case:
    """A valid report with a contact block of sentinels: decided; the sentinels may reach
    the queue record's contact block, and nowhere else."""
    contact, personal = b.contact()
    report = b.report(contact=contact, indicators={"threat_to_kill": "yes"})
    return Case("", probe_of(report), Expect("decided"), event_id=report.id, personal=personal)


def alarm_new_victim(b: CorpusBuilder) -> Case:
    """A device alarm for a victim with no case yet: decided (danger now); without a
    commune, routed to the département desk and flagged."""
    commune = b.choice(("62041", "62080", None))
    alarm = make_alarm(
        **b.common("alarm"), alarm=b.choice(("tgd_pressed", "bar_zone_breach")), commune=commune
    )
    return Case("", probe_of(alarm), Expect("decided", flagged=commune is None), event_id=alarm.id)


def duplicate_report(b: CorpusBuilder) -> Case:
    """The same report twice (a redelivery or a resend): the second is a duplicate."""
    report = b.report(indicators={"weapon": "yes"})
    first = probe_of(report)
    again = b.probe(first.value)
    return Case("", again, Expect("duplicate"), setup=(first,), event_id=report.id)


def duplicate_update(b: CorpusBuilder) -> Case:
    """The same acknowledgement twice: the second is a duplicate."""
    report = b.report()
    ack = make_ack(**b.common("ack"), decision_id=b.decision_of(report))
    again = b.probe(probe_of(ack).value, topic=UPDATES)
    return Case("", again, Expect("duplicate"), (probe_of(report), probe_of(ack)), ack.id)


# -- schema version 2 of report.received ---------------------------------------------


def report_v2(b: CorpusBuilder) -> Case:
    """A version-2 report with the reporter's language: decided like version 1."""
    report = b.report(indicators={"separation": "yes", "stalking": "yes"})
    body = {**b.body(report), "schema_version": 2, "language": b.choice(_LANGUAGES)}
    return Case("", b.probe(body), Expect("decided"), event_id=report.id)


def report_v2_bad_language(b: CorpusBuilder) -> Case:
    """A version-2 report whose language is not an ISO 639-1 code."""
    body = {**b.body(b.report()), "schema_version": 2, "language": b.choice(_BAD_LANGUAGES)}
    return Case("", b.probe(body), _dead("schema_violation"))


def report_v1_with_language(b: CorpusBuilder) -> Case:
    """A version-1 report carrying the version-2 field: v1 has no such field."""
    body = {**b.body(b.report()), "language": b.choice(_LANGUAGES)}
    return Case("", b.probe(body), _dead("schema_violation"))


MALFORMED: dict[str, Builder] = {
    fn.__name__: fn
    for fn in (
        truncated_json, invalid_utf8, not_json, duplicate_key, non_finite_number,
        number_out_of_range, not_an_object, oversize, unknown_event_type,
        unsupported_schema_version, wrong_topic, wrong_types, missing_field, unknown_field,
        huge_field, alarm_device_mismatch, naive_timestamp, future_timestamp,
        implausible_timestamp, event_time_out_of_range, missing_key,
        key_mismatch, unknown_commune, valid_with_contact, alarm_new_victim, duplicate_report,
        duplicate_update, report_v2, report_v2_bad_language, report_v1_with_language,
    )
}  # fmt: skip
"""Builders by kind name."""
