"""The wire format: CloudEvents headers, record keys, times, and who imports it."""

from __future__ import annotations

import ast
import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest

import triage
from triage.events.outputs import DeadLetter
from triage.events.wire import (
    CONTENT_TYPE,
    cloudevents_headers,
    format_timestamp,
    from_millis,
    output_key,
    to_millis,
)
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import dead_letter
from triage.testing import BASE_TIME, VICTIM_REF, make_raw, make_report, make_watermark
from triage.topics import Topics

PACKAGE = Path(triage.__file__).parent


def letter_keyed(key: bytes | None) -> DeadLetter:
    """The dead letter of an unparsable record with ``key``."""
    return dead_letter(make_raw(b"{", key=key), "invalid_json", "", Topics())


def imported_modules(package: str) -> set[str]:
    """Every ``triage.…`` module imported anywhere in ``triage/<package>``."""
    found: set[str] = set()
    for path in (PACKAGE / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("triage.")}


class TestHeaders:
    def test_an_output_carries_the_cloudevents_binary_headers(self, engine: Engine) -> None:
        """A decision's headers are its envelope in the CloudEvents Kafka binding, in order."""
        decision = engine.step(None, make_report(), BASE_TIME).outputs[0]

        assert cloudevents_headers(decision) == {
            "ce_specversion": "1.0",
            "ce_id": decision.id,
            "ce_type": "triage.decision",
            "ce_source": decision.source,
            "ce_time": "2026-01-05T10:00:00.000Z",
            "content-type": CONTENT_TYPE,
        }

    def test_inputs_get_the_same_headers(self) -> None:
        """An input event (a report, a watermark) gets headers of the same form."""
        report, mark = make_report(), make_watermark()

        assert cloudevents_headers(report)["ce_type"] == "report.received"
        assert cloudevents_headers(mark)["ce_id"] == mark.id
        assert list(cloudevents_headers(report)) == list(cloudevents_headers(mark))


class TestKeys:
    def test_an_output_about_a_victim_is_keyed_by_the_victim(self, engine: Engine) -> None:
        """Decisions and queue records are keyed by the victim reference."""
        outputs = engine.step(None, make_report(), BASE_TIME).outputs

        assert {output_key(o) for o in outputs} == {VICTIM_REF}

    @pytest.mark.parametrize(
        ("key", "expected"),
        [
            (VICTIM_REF.encode(), VICTIM_REF),
            (None, None),
            (b"\xff\xfe", None),
            (b"Synthetic Name", None),
            (b"V-" + b"A" * 40, None),
        ],
        ids=["victim-ref", "no-key", "not-utf8", "a-name", "too-long"],
    )
    def test_a_dead_letter_reuses_only_a_well_formed_victim_key(
        self, key: bytes | None, expected: str | None
    ) -> None:
        """A dead letter keeps the bad record's key only when it is a victim reference."""
        letter = letter_keyed(key)

        assert output_key(letter) == expected
        if key is not None:
            assert letter.key_b64 == base64.b64encode(key).decode()


class TestTimes:
    def test_millis_round_trip(self) -> None:
        """A millisecond timestamp converts to a UTC time and back exactly."""
        when = datetime(2026, 1, 5, 10, 0, 0, 123_000, tzinfo=UTC)

        assert from_millis(to_millis(when)) == when
        assert format_timestamp(when) == "2026-01-05T10:00:00.123Z"


class TestOneWay:
    @pytest.mark.parametrize("package", ["streaming", "replay"])
    def test_streaming_and_replay_take_the_wire_format_from_events(self, package: str) -> None:
        """The live shell and the replay tools both import events.wire, not each other."""
        other = "triage.replay" if package == "streaming" else "triage.streaming"
        modules = imported_modules(package)

        assert "triage.events.wire" in modules
        assert not {m for m in modules if m == other or m.startswith(other + ".")}
