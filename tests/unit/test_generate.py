"""The synthetic log generator: deterministic, ordered, valid, realistic enough."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest

from triage.events.outputs import DeadLetter
from triage.generate import GeneratorConfig, generate_log
from triage.generate.malformed import MALFORMED_KINDS, MalformedRecords
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import Accepted, ingest
from triage.pipeline.observations import UpdateWaiting, WaitOutcome
from triage.pipeline.processor import WAITABLE, Processor
from triage.replay.offline import replay_offline, to_raw
from triage.replay.records import LogRecord
from triage.replay.summary import Summary
from triage.topics import Topics

SMALL = GeneratorConfig(victims=200, days=30, start=date(2026, 1, 1), seed=7)
WIDER = GeneratorConfig(victims=800, days=60, start=date(2026, 3, 1), seed=11)
EXPECTED_REASON = {
    "truncated_json": "invalid_json",
    "invalid_utf8": "invalid_utf8",
    "json_array": "not_an_object",
    "wrong_types": "schema_violation",
    "unknown_event_type": "unknown_event_type",
    "unsupported_schema_version": "unsupported_schema_version",
    "missing_field": "schema_violation",
    "naive_timestamp": "naive_timestamp",
    "future_timestamp": "future_timestamp",
    "missing_key": "missing_key",
    "key_mismatch": "key_mismatch",
    "oversize": "oversize",
    "wrong_topic": "wrong_topic",
    "unknown_victim_ack": "unknown_case",
    "unknown_decision_override": "unknown_decision",
}


def lines(config: GeneratorConfig, engine: Engine) -> list[bytes]:
    """The generated log as JSON Lines."""
    return [record.to_line() for record in generate_log(config, engine)]


def values(records: list[LogRecord]) -> list[dict[str, Any]]:
    """The JSON object values of ``records``."""
    return [orjson.loads(record.value) for record in records]


def strip_contact(value: Any) -> Any:
    """``value`` with every ``contact`` field removed, at any depth."""
    if isinstance(value, dict):
        return {k: strip_contact(v) for k, v in value.items() if k != "contact"}
    if isinstance(value, list):
        return [strip_contact(v) for v in value]
    return value


@pytest.fixture(name="wider", scope="module")
def _wider(engine: Engine) -> tuple[list[LogRecord], list[LogRecord], Summary]:
    """A bigger log (800 victims, 60 days), its offline replay outputs and summary."""
    records = list(generate_log(WIDER, engine))
    summary = Summary()
    outputs = list(replay_offline(records, engine, summary))
    return records, outputs, summary


class TestGenerate:
    def test_same_seed_same_bytes(self, engine: Engine) -> None:
        """The same configuration and seed give a byte-identical log."""
        assert lines(SMALL, engine) == lines(SMALL, engine)

    def test_different_seed_different_log(self, engine: Engine) -> None:
        """Another seed gives another log."""
        other = GeneratorConfig(victims=200, days=30, start=date(2026, 1, 1), seed=8)
        assert lines(SMALL, engine) != lines(other, engine)

    def test_timestamps_never_go_back_and_stay_in_the_period(self, engine: Engine) -> None:
        """Records come in non-decreasing timestamp order, all inside [start, start + days)."""
        config = GeneratorConfig(victims=200, days=30, start=date(2026, 1, 1), bad_rate=0.1)
        stamps = [record.timestamp for record in generate_log(config, engine)]
        start = datetime(2026, 1, 1, tzinfo=UTC)
        assert stamps == sorted(stamps)
        assert start <= stamps[0]
        assert stamps[-1] < start + timedelta(days=30)

    def test_record_envelope(self, engine: Engine) -> None:
        """Each record is keyed by victim, stamped with its event time, and carries CE headers."""
        records = list(generate_log(SMALL, engine))
        for record, value in zip(records, values(records), strict=True):
            assert record.key == value["victim_ref"]
            assert record.timestamp == datetime.fromisoformat(value["time"])
            assert record.timestamp.microsecond % 1000 == 0
            assert record.headers == {
                "ce_type": value["type"],
                "ce_id": value["id"],
                "ce_source": value["source"],
                "ce_specversion": "1.0",
            }
            expected_topic = (
                "dv.reports.v1"
                if value["type"] in ("report.received", "device.alarm")
                else "dv.case-updates.v1"
            )
            assert record.topic == expected_topic
        ids = [value["id"] for value in values(records)]
        assert ids == [f"evt-7-{n}" for n in range(1, len(ids) + 1)]

    def test_references_are_pseudonymous(self, engine: Engine) -> None:
        """Victim, suspect, responder and device references follow their prefixes."""
        for value in values(list(generate_log(SMALL, engine))):
            assert re.fullmatch(r"V-[0-9A-F]{8}", value["victim_ref"])
            if value.get("suspect_ref") is not None:
                assert re.fullmatch(r"S-[0-9A-F]{8}", value["suspect_ref"])
            if "responder_ref" in value:
                assert re.fullmatch(r"R-[0-9A-Z]+[0-9]{2}", value["responder_ref"])
            if value["type"] == "device.alarm":
                prefix = "TGD-" if value["alarm"] == "tgd_pressed" else "BAR-"
                assert value["device_ref"].startswith(prefix)

    def test_every_good_record_is_accepted(self, engine: Engine) -> None:
        """Ingestion accepts every record the generator writes when bad_rate is 0."""
        topics = Topics()
        for record in generate_log(SMALL, engine):
            assert isinstance(ingest(to_raw(record, topics), topics), Accepted)

    def test_replay_decides_every_report(
        self, wider: tuple[list[LogRecord], list[LogRecord], Summary]
    ) -> None:
        """Offline replay decides each report and alarm, and refuses nothing."""
        records, outputs, summary = wider
        sources = Counter(value["type"] for value in values(records))
        decided = Counter(
            value["source_event_type"]
            for value in values(outputs)
            if value["type"] == "triage.decision" and value["kind"] != "override"
        )
        assert decided["report.received"] == sources["report.received"] > 0
        assert decided["device.alarm"] == sources["device.alarm"]
        assert summary.dead_letters == Counter()
        assert summary.ignored == Counter()

    def test_replay_shows_acks_breaches_and_overrides(
        self, wider: tuple[list[LogRecord], list[LogRecord], Summary]
    ) -> None:
        """Responders acknowledge most work, miss some deadlines, and override now and then."""
        _, _, summary = wider
        acks = sum(len(samples) for samples in summary.ack_seconds.values())
        assert acks > 1000
        assert sum(summary.breaches.values()) > 0
        assert {level for level, _ in summary.breaches} >= {"P1", "P2", "P3"}
        assert summary.overrides["up"] > 0
        assert summary.overrides["down"] > 0
        assert sum(summary.overrides_rejected.values()) > 0

    def test_responders_name_routed_decisions(
        self, wider: tuple[list[LogRecord], list[LogRecord], Summary]
    ) -> None:
        """Every acknowledgement and action names a (decision, queue) the engine routed."""
        records, outputs, _ = wider
        routed = {
            (value["decision_id"], value["queue"])
            for value in values(outputs)
            if value["type"] == "triage.queue_record"
        }
        progress = [
            (value["decision_id"], value["queue"])
            for value in values(records)
            if value["type"] in ("case.acknowledged", "case.action_taken")
        ]
        assert progress
        assert set(progress) <= routed

    def test_realistic_shape(self, wider: tuple[list[LogRecord], list[LogRecord], Summary]) -> None:
        """Many channels, repeat victims, unknown communes, all levels with P3/P4 dominant."""
        records, _, summary = wider
        reports = [value for value in values(records) if value["type"] == "report.received"]
        assert len({report["channel"] for report in reports}) >= 8
        per_victim = Counter(report["victim_ref"] for report in reports)
        assert 1 in per_victim.values()
        assert max(per_victim.values()) >= 2
        assert summary.unknown_communes > 0
        levels = summary.decisions
        assert all(levels[level] > 0 for level in ("P1", "P2", "P3", "P4"))
        assert levels["P3"] + levels["P4"] > sum(levels.values()) / 2
        assert levels["P1"] < levels["P4"]
        yes = sum(report["indicators"]["strangulation"] == "yes" for report in reports)
        assert 0.05 < yes / len(reports) < 0.2
        types = Counter(value["type"] for value in values(records))
        assert types["case.closed"] > 0
        assert types["case.protection_granted"] > 0

    def test_contact_values_stay_in_contact_fields(
        self, wider: tuple[list[LogRecord], list[LogRecord], Summary]
    ) -> None:
        """Contact details appear only inside ``contact`` fields, in inputs and outputs alike."""
        records, outputs, _ = wider
        contacts = [
            value["contact"] for value in values(records) if value.get("contact") is not None
        ]
        assert contacts
        assert all(c["name"].startswith("Synthetic-Person-") for c in contacts)
        assert all(c["phone"].startswith("+33 6 39 98 ") for c in contacts)
        secrets = {v for contact in contacts for v in contact.values() if v}
        for record in [*records, *outputs]:
            text = orjson.dumps(strip_contact(orjson.loads(record.value))).decode()
            assert not any(secret in text for secret in secrets)

    def test_malformed_records_become_dead_letters(self, engine: Engine) -> None:
        """With bad_rate > 0 the bad records are dead-lettered and the good ones still decided."""
        config = replace(SMALL, bad_rate=0.2)
        records = list(generate_log(config, engine))
        bad = [r for r in records if r.headers["ce_id"].startswith("bad-")]
        good = [r for r in records if not r.headers["ce_id"].startswith("bad-")]
        summary = Summary()

        outputs = list(replay_offline(records, engine, summary))

        assert [r.to_line() for r in good] == lines(SMALL, engine)
        assert 0.12 < len(bad) / len(records) < 0.28
        assert sum(o.topic == "dv.deadletter.v1" for o in outputs) == len(bad)
        assert sum(summary.dead_letters.values()) == len(bad)
        assert len(summary.dead_letters) >= 10
        reports = sum(r.headers["ce_type"] == "report.received" for r in good)
        assert summary.decision_kinds["assessment"] == reports

    @pytest.mark.parametrize("kind", MALFORMED_KINDS)
    def test_each_malformed_kind_has_its_reason(self, engine: Engine, kind: str) -> None:
        """Each kind of malformed record is refused with the reason code it is meant to exercise."""
        good = next(iter(generate_log(SMALL, engine)))
        processor = Processor(engine, Topics())
        processor.feed(to_raw(good, Topics()))
        bad = MalformedRecords(GeneratorConfig(seed=7, bad_rate=0.5)).make(kind, good)

        batch = processor.feed(to_raw(bad, Topics()))
        outputs = list(batch.outputs)
        if EXPECTED_REASON[kind] in WAITABLE:
            # An update for an unknown case or decision waits the rule set's grace for
            # it, then gets its dead letter.
            assert UpdateWaiting(WaitOutcome.WAITING) in batch.observations
            assert not any(isinstance(o, DeadLetter) for o in outputs)
            grace = engine.rules.update_grace
            assert grace is not None
            assert grace.delta is not None
            assert processor.clock is not None
            outputs = list(processor.advance(processor.clock + grace.delta * 2).outputs)

        letters = [o for o in outputs if isinstance(o, DeadLetter)]
        assert [letter.reason for letter in letters] == [EXPECTED_REASON[kind]]

    def test_config_is_validated(self) -> None:
        """Nonsense sizes and rates are refused when the configuration is built."""
        with pytest.raises(ValueError, match="victims"):
            GeneratorConfig(victims=0)
        with pytest.raises(ValueError, match="bad_rate"):
            GeneratorConfig(bad_rate=1.0)
