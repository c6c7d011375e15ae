"""The public test helpers: deterministic synthetic events and records."""

from __future__ import annotations

import pytest

from triage.events.base import Level
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import Accepted, ingest
from triage.replay.offline import to_raw
from triage.testing import (
    BASE_TIME,
    RESPONDER_REF,
    VICTIM_REF,
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
    make_watermark,
    raw_of,
    record_of,
)
from triage.topics import Topics

FACTORIES = [
    make_report,
    make_alarm,
    make_ack,
    make_action,
    make_override,
    make_protection,
    make_closed,
    make_watermark,
]


class TestFactories:
    @pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
    def test_defaults_are_deterministic(self, factory: object) -> None:
        """Building an event twice with the same arguments gives the same event and id."""
        assert callable(factory)
        assert factory() == factory()

    def test_different_content_different_id(self) -> None:
        """Events that differ in any field get different ids."""
        assert make_report().id != make_report(indicators={"weapon": "yes"}).id
        assert make_report().id != make_report(time=after(seconds=1)).id

    def test_explicit_id_is_kept(self) -> None:
        """An id given by the caller is used as is."""
        assert make_report(id="evt-42").id == "evt-42"

    def test_default_story(self) -> None:
        """The default events tell one story about one victim, starting at BASE_TIME."""
        report = make_report()

        assert (report.victim_ref, report.time) == (VICTIM_REF, BASE_TIME)
        assert make_ack().decision_id == decision_id_for(report)
        assert make_ack().time > report.time
        assert (make_override().new_level, make_override().responder_ref) == (
            Level.P1,
            RESPONDER_REF,
        )

    def test_alarm_device_follows_the_alarm(self) -> None:
        """A bracelet alarm gets a bracelet device reference by default."""
        assert make_alarm(alarm="bar_zone_breach").device_ref.startswith("BAR-")

    def test_decision_id_matches_the_engine(self, engine: Engine) -> None:
        """decision_id_for predicts the id of the engine's decision."""
        report = make_report()

        assert engine.step(None, report, report.time).outputs[0].id == decision_id_for(report)

    @pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__name__)
    def test_records_are_ingestible(self, factory: object, topics: Topics) -> None:
        """Every factory's event, as a log record or a raw record, passes ingestion."""
        assert callable(factory)
        event = factory()

        from_raw = ingest(raw_of(event), topics)
        from_log = ingest(to_raw(record_of(event), topics), topics)

        assert isinstance(from_raw, Accepted)
        assert isinstance(from_log, Accepted)
        assert from_raw.event == from_log.event == event

    def test_record_of_keys_and_stamps(self) -> None:
        """A log record is keyed by the victim and stamped with the event time."""
        record = record_of(make_ack())

        assert (record.topic, record.key, record.timestamp) == (
            "dv.case-updates.v1",
            VICTIM_REF,
            after(minutes=3),
        )
        assert record.headers["ce_type"] == "case.acknowledged"

    def test_watermark_has_no_key(self) -> None:
        """A watermark record has no key, like the replay tools send it."""
        assert record_of(make_watermark()).key is None
        assert raw_of(make_watermark()).key is None

    def test_raw_overrides(self) -> None:
        """Raw records accept overrides for topic, key, timestamp and coordinates."""
        raw = raw_of(make_report(), key=b"other", partition=2, offset=7)

        assert (raw.key, raw.partition, raw.offset) == (b"other", 2, 7)
        assert make_raw(b"x").value == b"x"
