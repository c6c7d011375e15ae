"""The soak's verdict (``triage.reliability.soak.check``): what counts as missing, as a
second decision id, as an exact copy or a non-identical duplicate."""

from __future__ import annotations

import orjson
import pytest

from triage.events.outputs import OutputEvent
from triage.pipeline.engine import Engine
from triage.pipeline.processor import Processor
from triage.reliability.soak import SoakConfig, check
from triage.testing import after, make_raw, make_report, raw_of
from triage.topics import Topics


def values(outputs: list[OutputEvent]) -> list[bytes]:
    return [o.model_dump_json().encode() for o in outputs]


@pytest.fixture(name="offline")
def _offline(engine: Engine) -> list[bytes]:
    """Two reports (decisions, queue records, a breach) and a dead letter."""
    processor = Processor(engine, Topics())
    out: list[OutputEvent] = []
    for record in (
        raw_of(make_report(indicators={"immediate_danger": "yes"})),
        make_raw(b"not json", timestamp=after(minutes=1)),
        raw_of(make_report(victim_ref="V-0002B3", time=after(minutes=9))),
    ):
        out += processor.feed(record).outputs
    return values(out)


def kinds(offline: list[bytes]) -> set[str]:
    return {orjson.loads(v)["type"] for v in offline}


class TestSoakCheck:
    def test_the_offline_outputs_pass(self, offline: list[bytes]) -> None:
        """The offline outputs themselves: nothing missing, one id per report, no copies."""
        assert kinds(offline) >= {"triage.decision", "triage.escalation", "triage.dead_letter"}

        figures, failures = check([], offline, offline)

        assert failures == []
        assert (figures["reports"], figures["missing"]) == (2, 0)
        assert figures["decision_ids_per_report"] == {"max": 1, "reports_with_more_than_one": 0}

    def test_exact_copies_are_counted_not_failed(self, offline: list[bytes]) -> None:
        """Redelivered records (a dead letter with other coordinates included) are copies."""
        letter = next(orjson.loads(v) for v in offline if b"triage.dead_letter" in v)
        moved = orjson.dumps({**letter, "source_partition": 3, "source_offset": 41})

        figures, failures = check([], offline, [*offline, *offline[:2], moved])

        assert failures == []
        assert figures["decision_records"]["exact_copies"] == 1
        assert figures["dead_letters"]["exact_copies"] == 1

    def test_a_missing_decision_fails(self, offline: list[bytes]) -> None:
        """A report the offline replay decides and the worker did not: ``missing``."""
        first = next(v for v in offline if b"triage.decision" in v)

        figures, failures = check([], offline, [v for v in offline if v != first])

        assert figures["missing"] == 1
        assert "missing" in failures

    def test_a_duplicate_that_differs_fails(self, offline: list[bytes]) -> None:
        """The same queue record id with another content is a non-identical duplicate."""
        record = next(orjson.loads(v) for v in offline if b"triage.queue_record" in v)
        changed = orjson.dumps({**record, "unit": "ELSEWHERE"})

        figures, failures = check([], offline, [*offline, changed])

        assert figures["queue_records"]["non_identical_duplicates"] == 1
        assert "non_identical_duplicates" in failures

    def test_an_escalation_only_kafka_has_is_counted_and_named(self, offline: list[bytes]) -> None:
        """A record the offline replay never makes (an escalation whose acknowledgement
        reached the broker after a later report) is counted and named by type and id; the
        run warns about it (it is publication order, not a lost or changed record)."""
        escalation = next(orjson.loads(v) for v in offline if b"triage.escalation" in v)
        extra = orjson.dumps({**escalation, "id": "E-not-offline"})

        figures, failures = check([], offline, [*offline, extra])

        assert figures["offline"]["ids_only_through_kafka"] == 1
        assert figures["offline"]["examples"] == ["triage.escalation E-not-offline"]
        assert "different_from_offline" not in failures

    def test_one_content_that_differs_from_offline_fails(self, offline: list[bytes]) -> None:
        """Every Kafka copy agreeing is not enough: the content must be offline's."""
        record = next(orjson.loads(v) for v in offline if b"triage.queue_record" in v)
        changed = orjson.dumps({**record, "unit": "ELSEWHERE"})
        outputs = [changed if orjson.loads(v)["id"] == record["id"] else v for v in offline]

        figures, failures = check([], offline, outputs)

        assert figures["queue_records"]["non_identical_duplicates"] == 0
        assert figures["offline"]["different_content"] == 1
        assert "different_from_offline" in failures

    def test_a_second_decision_id_for_a_report_fails(self, offline: list[bytes]) -> None:
        """Two decisions with different ids for one report (a non-deterministic id) fail."""
        decision = next(orjson.loads(v) for v in offline if b"triage.decision" in v)
        other = orjson.dumps({**decision, "id": "D-" + "e" * 24})

        figures, failures = check([], offline, [*offline, other])

        assert figures["decision_ids_per_report"] == {"max": 2, "reports_with_more_than_one": 1}
        assert "reports_with_more_than_one_decision_id" in failures

    def test_a_missing_dead_letter_fails(self, offline: list[bytes]) -> None:
        """A record the offline replay dead-letters must reach the dead-letter topic."""
        kept = [v for v in offline if b"triage.dead_letter" not in v]

        figures, failures = check([], offline, kept)

        assert figures["dead_letters"]["missing"] == 1
        assert "dead_letters_missing" in failures

    def test_totals_count_every_output_type(self, offline: list[bytes]) -> None:
        """The headline figures: reports decided, and copies and differing repeats of any type."""
        escalation = next(orjson.loads(v) for v in offline if b"triage.escalation" in v)
        changed = orjson.dumps({**escalation, "stage": "other"})

        figures, _ = check([], offline, [*offline, offline[0], changed])

        assert figures["decided"] == figures["reports"] == 2
        assert figures["exact_copies"] == 1
        assert figures["non_identical_duplicates"] == 1

    def test_config_is_validated(self) -> None:
        """A soak of almost nothing, a negative number of faults or an unknown kind is refused."""
        with pytest.raises(ValueError, match="events"):
            SoakConfig(events=10)
        with pytest.raises(ValueError, match="faults"):
            SoakConfig(faults=-1)
        with pytest.raises(ValueError, match="fault must be one of"):
            SoakConfig(fault="flood")  # type: ignore[arg-type]
