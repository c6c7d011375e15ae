"""``triage record`` on the real embedded broker: a published log comes back record for record."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.integration.kafka_helpers import publish, settings_for
from triage.analysis.cli import EventTime
from triage.broker.provision import provision
from triage.cli import cli
from triage.generate import GeneratorConfig, generate_log
from triage.pipeline.engine import Engine
from triage.replay.recorder import Recorder, RecordWindow
from triage.replay.records import LogRecord, read_log
from triage.settings import TriageSettings
from triage.topics import Topics

pytestmark = pytest.mark.integration

Fields = tuple[str, str | None, object, bytes, tuple[tuple[str, str], ...]]


def _fields(record: LogRecord) -> Fields:
    return (
        record.topic,
        record.key,
        record.timestamp,
        record.value,
        tuple(sorted(record.headers.items())),
    )


@pytest.fixture(scope="module")
def published(broker) -> tuple[TriageSettings, list[LogRecord]]:  # type: ignore[no-untyped-def]
    """A generated log (with malformed records) published onto a fresh, prefixed pipeline."""
    settings = settings_for(broker.bootstrap, f"r{uuid.uuid4().hex[:8]}.")
    provision(settings)
    config = GeneratorConfig(victims=40, days=10, start=date(2026, 3, 2), seed=9, bad_rate=0.05)
    records = list(generate_log(config, Engine()))
    publish(settings, records, watermark=False)
    return settings, records


def _record(settings: TriageSettings, window: RecordWindow) -> list[LogRecord]:
    assert settings.kafka_bootstrap is not None
    canonical = list(Topics().inputs)
    recorder = Recorder(settings.kafka_bootstrap, canonical, naming=settings.topics, window=window)
    recorder.run()
    return recorder.records()


class TestRecord:
    """Recording the input topics back into an event log."""

    def test_caught_up_gives_back_every_record(
        self, published: tuple[TriageSettings, list[LogRecord]]
    ) -> None:
        """Key, timestamp, value bytes and headers of every published record come back, under
        canonical topic names, ordered by timestamp."""
        settings, records = published
        recorded = _record(settings, RecordWindow(caught_up=True))
        assert Counter(map(_fields, recorded)) == Counter(map(_fields, records))
        stamps = [r.timestamp for r in recorded]
        assert stamps == sorted(stamps)
        assert {r.topic for r in recorded} == {"dv.reports.v1", "dv.case-updates.v1"}
        assert any(not r.value.startswith(b"{") for r in recorded)  # raw bytes kept

    def test_window_keeps_records_stamped_inside_it(
        self, published: tuple[TriageSettings, list[LogRecord]]
    ) -> None:
        """--from and --until keep exactly the records stamped in [from, until)."""
        settings, records = published
        since = records[len(records) // 4].timestamp
        until = records[len(records) // 2].timestamp + timedelta(milliseconds=1)
        recorded = _record(settings, RecordWindow(since=since, until=until, caught_up=True))
        inside = [r for r in records if since <= r.timestamp < until]
        assert Counter(map(_fields, recorded)) == Counter(map(_fields, inside))

    def test_until_alone_stops_once_past_it(
        self, published: tuple[TriageSettings, list[LogRecord]]
    ) -> None:
        """Without --caught-up, a past --until stops the recording at the partitions' ends."""
        settings, records = published
        until = records[-1].timestamp - timedelta(days=2)
        recorded = _record(settings, RecordWindow(until=until))
        assert Counter(map(_fields, recorded)) == Counter(
            _fields(r) for r in records if r.timestamp < until
        )

    def test_command_writes_a_log_that_replays(
        self, published: tuple[TriageSettings, list[LogRecord]], tmp_path: Path
    ) -> None:
        """``triage record --caught-up -o FILE`` writes the log; it replays like the original."""
        settings, records = published
        out = tmp_path / "recorded.jsonl"
        result = CliRunner(env={"TRIAGE_TOPIC_PREFIX": settings.topic_prefix}).invoke(
            cli,
            [
                "record",
                "--topics",
                "inputs",
                "--caught-up",
                "--bootstrap",
                str(settings.kafka_bootstrap),
                "-o",
                str(out),
            ],
        )
        assert result.exit_code == 0, result.output
        assert f"recorded {len(records)} of {len(records)} records" in result.stderr
        assert Counter(map(_fields, read_log(out))) == Counter(map(_fields, records))

    def test_missing_topic_is_an_error(
        self, published: tuple[TriageSettings, list[LogRecord]], tmp_path: Path
    ) -> None:
        """Recording a topic that does not exist fails with one line naming it."""
        settings, _ = published
        result = CliRunner().invoke(
            cli,
            [
                "record",
                "--topics",
                "dv.nowhere.v1",
                "--caught-up",
                "--bootstrap",
                str(settings.kafka_bootstrap),
                "-o",
                str(tmp_path / "x.jsonl"),
            ],
        )
        assert result.exit_code != 0
        assert "dv.nowhere.v1" in str(result.exception)


class TestRecordOptions:
    """Mistakes in ``triage record``'s options, caught before any broker is contacted."""

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--from", "2026-03-02T10:00:00"], "has no time zone"),
            (["--from", "last tuesday"], "is not an ISO-8601 date or time"),
            (["--from", "2026-03-03", "--until", "2026-03-02T23:00:00Z"], "before --until"),
        ],
    )
    def test_bad_times_are_usage_errors(
        self, args: list[str], message: str, tmp_path: Path
    ) -> None:
        """A time without a zone, an unreadable one, or an empty window exits 2 and says why."""
        result = CliRunner().invoke(
            cli, ["record", *args, "--bootstrap", "127.0.0.1:9", "-o", str(tmp_path / "x.jsonl")]
        )
        assert result.exit_code == 2
        assert message in result.output

    def test_a_date_is_utc_midnight(self) -> None:
        """``--from 2026-03-02`` keeps records from 2026-03-02T00:00:00Z on."""
        window = RecordWindow(since=EventTime().convert("2026-03-02", None, None))
        assert window.since is not None
        assert window.since.isoformat() == "2026-03-02T00:00:00+00:00"
        assert window.keeps(window.since)
        assert not window.keeps(window.since - timedelta(milliseconds=1))
