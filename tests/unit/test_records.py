"""The event-log line format: timestamps, lines, files."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from triage.errors import EventLogError
from triage.events.wire import format_timestamp, from_millis, to_millis
from triage.replay.records import LogRecord, parse_timestamp, read_log, write_log, write_records
from triage.testing import BASE_TIME, make_report, record_of

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
json_objects = st.dictionaries(
    text,
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
        max_leaves=8,
    ),
    max_size=4,
)
millis_times = st.integers(0, 4_102_444_800_000).map(from_millis)


@st.composite
def log_records(draw: st.DrawFn) -> LogRecord:
    """Any record a log may hold: a JSON object or arbitrary bytes, millisecond timestamps."""
    value = draw(json_objects.map(orjson.dumps) | st.binary(max_size=40))
    return LogRecord(
        topic=draw(text),
        key=draw(st.none() | text),
        timestamp=draw(millis_times),
        value=value,
        headers=draw(st.dictionaries(text, text, max_size=3)),
    )


class TestTimestamps:
    def test_format_is_utc_milliseconds_with_z(self) -> None:
        """Timestamps are written in UTC with milliseconds and a Z, whatever the input zone."""
        when = datetime(2026, 1, 5, 11, 0, 0, 123_999, tzinfo=timezone(timedelta(hours=1)))

        assert format_timestamp(when) == "2026-01-05T10:00:00.123Z"

    @pytest.mark.parametrize(
        "text_", ["2026-01-05T10:00:00.000Z", "2026-01-05T10:00:00Z", "2026-01-05T11:00:00+01:00"]
    )
    def test_parse_accepts_any_offset(self, text_: str) -> None:
        """Any ISO-8601 time with an offset parses to the same UTC instant."""
        parsed = parse_timestamp(text_)

        assert parsed == BASE_TIME
        assert parsed.tzinfo is UTC

    def test_parse_refuses_naive(self) -> None:
        """A timestamp without a timezone is refused."""
        with pytest.raises(ValueError, match="timezone"):
            parse_timestamp("2026-01-05T10:00:00")

    @given(millis_times)
    def test_round_trip(self, when: datetime) -> None:
        """Formatting then parsing gives back a millisecond-precision instant."""
        assert parse_timestamp(format_timestamp(when)) == when

    @given(st.integers(0, 2**42))
    def test_millis_round_trip(self, millis: int) -> None:
        """Kafka millisecond timestamps convert to datetimes and back exactly."""
        assert to_millis(from_millis(millis)) == millis

    def test_absurd_millis_are_clamped(self) -> None:
        """Kafka's -1 (no timestamp) and values past year 9999 become the nearest datetime."""
        assert from_millis(-1) == from_millis(0)
        assert from_millis(2**62).year == 9999

    def test_millis_truncate_microseconds(self) -> None:
        """Sub-millisecond precision is dropped, never rounded up."""
        assert to_millis(datetime(1970, 1, 1, 0, 0, 0, 1999, tzinfo=UTC)) == 1


class TestLogRecord:
    def test_json_value_is_inline(self) -> None:
        """A record whose value is a compact JSON object is written inline, readable."""
        record = LogRecord.of_json("dv.reports.v1", "V-0001A2", BASE_TIME, {"a": 1})

        line = record.to_line()

        assert orjson.loads(line) == {
            "topic": "dv.reports.v1",
            "key": "V-0001A2",
            "timestamp": "2026-01-05T10:00:00.000Z",
            "headers": {},
            "value": {"a": 1},
        }

    @pytest.mark.parametrize(
        "value", [b"\xff\xfe", b"[1,2]", b'{"a": 1}', b'{"a":1,"a":2}', b"not json"], ids=repr
    )
    def test_other_values_are_kept_byte_for_byte(self, value: bytes) -> None:
        """Values that are not compact JSON objects are kept exactly, in base64."""
        record = LogRecord("t", None, BASE_TIME, value)

        line = orjson.loads(record.to_line())

        assert "value" not in line
        assert LogRecord.from_line(record.to_line()).value == value

    def test_event_record_round_trip(self) -> None:
        """A record made from an event reads back identical."""
        record = record_of(make_report())

        assert LogRecord.from_line(record.to_line()) == record

    @given(log_records())
    def test_line_round_trip(self, record: LogRecord) -> None:
        """Any record survives to_line and from_line unchanged."""
        assert LogRecord.from_line(record.to_line()) == record

    @given(log_records())
    def test_to_line_is_deterministic(self, record: LogRecord) -> None:
        """The same record always gives the same bytes, on one line."""
        assert record.to_line() == record.to_line()
        assert b"\n" not in record.to_line()

    @pytest.mark.parametrize(
        ("line", "message"),
        [
            (b"{", "not JSON"),
            (b"[]", "not a JSON object"),
            (
                b'{"key": null, "timestamp": "2026-01-05T10:00:00Z", "value": {}}',
                "missing field 'topic'",
            ),
            (b'{"topic": "t", "value": {}}', "missing field 'timestamp'"),
            (
                b'{"topic": 1, "timestamp": "2026-01-05T10:00:00Z", "value": {}}',
                "topic must be a string",
            ),
            (
                b'{"topic": "t", "key": 5, "timestamp": "2026-01-05T10:00:00Z", "value": {}}',
                "key a string",
            ),
            (
                b'{"topic": "t", "timestamp": "2026-01-05T10:00:00Z", "headers": {"a": 1}, '
                b'"value": {}}',
                "headers",
            ),
            (b'{"topic": "t", "timestamp": "2026-01-05T10:00:00Z"}', "missing field 'value'"),
            (
                b'{"topic": "t", "timestamp": "2026-01-05T10:00:00Z", "value_b64": "!!"}',
                "not base64",
            ),
            (b'{"topic": "t", "timestamp": "yesterday", "value": {}}', "ISO-8601"),
            (b'{"topic": "t", "timestamp": "2026-01-05T10:00:00", "value": {}}', "timezone"),
            (b'{"topic": "t", "timestamp": 17000, "value": {}}', "ISO-8601"),
        ],
    )
    def test_malformed_lines(self, line: bytes, message: str) -> None:
        """A malformed line raises ValueError with a plain reason."""
        with pytest.raises(ValueError, match=message):
            LogRecord.from_line(line)


class TestLogFiles:
    def test_write_then_read(self, tmp_path: Path) -> None:
        """A written log reads back record for record; blank lines are skipped."""
        records = [record_of(make_report(time=BASE_TIME + timedelta(minutes=m))) for m in range(3)]
        path = tmp_path / "log.jsonl"

        assert write_log(path, records) == 3
        path.write_bytes(path.read_bytes() + b"\n  \n")

        assert list(read_log(path)) == records

    def test_write_records_to_a_stream(self) -> None:
        """Records are written one per line, each ending with a newline."""
        handle = io.BytesIO()

        count = write_records(handle, [record_of(make_report())] * 2)

        assert count == 2
        assert handle.getvalue().count(b"\n") == 2

    def test_bad_line_is_named(self, tmp_path: Path) -> None:
        """A bad line raises EventLogError naming the file and the line number."""
        path = tmp_path / "log.jsonl"
        path.write_bytes(record_of(make_report()).to_line() + b"\n{oops\n")

        with pytest.raises(EventLogError, match=r"log\.jsonl:2: line is not JSON"):
            list(read_log(path))

    def test_missing_file(self, tmp_path: Path) -> None:
        """Reading a missing log raises EventLogError, not OSError."""
        with pytest.raises(EventLogError, match="cannot open"):
            list(read_log(tmp_path / "absent.jsonl"))

    def test_unwritable_path(self, tmp_path: Path) -> None:
        """Writing into a directory that does not exist raises EventLogError."""
        with pytest.raises(EventLogError, match="cannot write"):
            write_log(tmp_path / "no" / "such" / "dir.jsonl", [])
