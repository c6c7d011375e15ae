"""Offline replay: an event log in, output records out, the same bytes every time."""

from __future__ import annotations

import base64
import io

from hypothesis import given

from tests.factories import event_logs, feed_each, flatten, replay_lines
from triage.events.outputs import DeadLetter
from triage.events.wire import cloudevents_headers, format_timestamp, output_key
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import dead_letter
from triage.replay.offline import replay_offline, to_log_record, to_raw
from triage.replay.records import LogRecord, write_records
from triage.replay.summary import Summary
from triage.routing.units import UnitDirectory
from triage.scoring.rules import RuleSet
from triage.testing import BASE_TIME, VICTIM_REF, make_raw, make_report, record_of
from triage.topics import Topics


class TestToRaw:
    def test_log_line_as_consumed(self) -> None:
        """A log record becomes the raw record the worker would consume, topic prefixed."""
        record = record_of(make_report())

        raw = to_raw(record, Topics(prefix="test."))

        assert (raw.topic, raw.key, raw.value, raw.timestamp) == (
            "test.dv.reports.v1",
            VICTIM_REF.encode(),
            record.value,
            BASE_TIME,
        )
        assert (raw.partition, raw.offset) == (None, None)
        assert dict(raw.headers)["ce_type"] == b"report.received"


class TestOutputKey:
    def test_victim_outputs_are_keyed_by_victim(self, engine: Engine) -> None:
        """Decisions and queue records are keyed by the victim reference."""
        step = engine.step(None, make_report(), BASE_TIME)

        assert {output_key(o) for o in step.outputs} == {VICTIM_REF}

    def test_dead_letter_keeps_the_input_key(self, topics: Topics) -> None:
        """A dead letter is keyed like the record it keeps, or not at all."""
        keyed = dead_letter(make_raw(b"{"), "invalid_json", "", topics)
        unkeyed = dead_letter(make_raw(b"{", key=None), "invalid_json", "", topics)
        binary = dead_letter(make_raw(b"{", key=b"\xff"), "invalid_json", "", topics)

        assert (output_key(keyed), output_key(unkeyed), output_key(binary)) == (
            VICTIM_REF,
            None,
            None,
        )


class TestToLogRecord:
    def test_cloudevents_headers(self, engine: Engine, topics: Topics) -> None:
        """Output lines carry CloudEvents headers matching the record."""
        decision = engine.step(None, make_report(), BASE_TIME).outputs[0]

        record = to_log_record(decision, topics)

        assert (
            record.headers
            == cloudevents_headers(decision)
            == {
                "ce_specversion": "1.0",
                "ce_id": decision.id,
                "ce_type": "triage.decision",
                "ce_source": "urn:triage:engine",
                "ce_time": format_timestamp(BASE_TIME),
                "content-type": "application/json",
            }
        )
        assert (record.topic, record.key, record.timestamp) == (
            "dv.decisions.v1",
            VICTIM_REF,
            BASE_TIME,
        )

    def test_canonical_topic_names(self, engine: Engine) -> None:
        """Logs name topics canonically, whatever the deployment prefix."""
        decision = engine.step(None, make_report(), BASE_TIME).outputs[0]

        assert to_log_record(decision, Topics(prefix="x.")).topic == "dv.decisions.v1"


class TestReplayOffline:
    def test_outputs_in_processing_order(self, engine: Engine, topics: Topics) -> None:
        """Replay yields the processor's outputs, in order, as log records."""
        records = [record_of(make_report()), LogRecord(topics.reports, VICTIM_REF, BASE_TIME, b"{")]

        outputs = list(replay_offline(records, engine))

        assert [o.topic for o in outputs] == [
            "dv.decisions.v1",
            "dv.queue.standard.v1",
            "dv.deadletter.v1",
        ]
        letter = DeadLetter.model_validate_json(outputs[-1].value)
        assert base64.b64decode(letter.value_b64) == b"{"

    def test_fills_the_summary(self, engine: Engine) -> None:
        """Replay counts events and folds observations into the summary."""
        summary = Summary()

        list(replay_offline([record_of(make_report())], engine, summary))

        assert summary.events == 1
        assert summary.to_dict()["decisions_by_level"]["P4"] == 1

    @given(log=event_logs())
    def test_same_log_twice_same_bytes(self, engine: Engine, log: list[LogRecord]) -> None:
        """Replaying the same log twice gives byte-identical output."""
        first, second = io.BytesIO(), io.BytesIO()

        write_records(first, replay_offline(log, engine))
        write_records(second, replay_offline(log, engine))

        assert first.getvalue() == second.getvalue()

    @given(log=event_logs(max_events=8))
    def test_fresh_engine_same_bytes(
        self, rules: RuleSet, units: UnitDirectory, log: list[LogRecord]
    ) -> None:
        """A freshly built engine replays a log to the same bytes: no hidden state."""
        assert replay_lines(log, Engine(rules, units)) == replay_lines(log, Engine(rules, units))

    @given(log=event_logs(max_events=8))
    def test_log_round_trip_does_not_change_outputs(
        self, engine: Engine, log: list[LogRecord]
    ) -> None:
        """Writing a log to lines and reading it back replays to the same outputs."""
        reread = [LogRecord.from_line(record.to_line()) for record in log]

        assert replay_lines(reread, engine) == replay_lines(log, engine)

    @given(log=event_logs(max_events=8))
    def test_matches_the_processor(self, engine: Engine, log: list[LogRecord]) -> None:
        """Offline replay is the processor fed record by record (what the worker runs)."""
        batches, _ = feed_each(log, engine)

        assert replay_lines(log, engine) == flatten(batches)
