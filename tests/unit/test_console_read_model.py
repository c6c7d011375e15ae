"""The console's read model: pure projection, SQLite store, view models, privacy."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from tests.factories import contact_values
from triage.console import reads, views
from triage.console.projection import (
    CaseSeen,
    TimelineEntry,
    WorkAnswered,
    WorkUpserted,
    case_key,
    project,
    role_of,
)
from triage.console.store import ReadModel
from triage.events.base import Level
from triage.events.outputs import QueueRecord
from triage.generate import GeneratorConfig, generate_log
from triage.pipeline.engine import Engine
from triage.replay.offline import replay_offline
from triage.replay.records import LogRecord
from triage.testing import make_ack, make_override, make_report, record_of
from triage.topics import Topics

SECRET = b"s" * 32
TOPICS = Topics()
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _log() -> list[LogRecord]:
    config = GeneratorConfig(victims=25, days=4, start=date(2026, 3, 2), seed=5, bad_rate=0.0)
    return list(generate_log(config, Engine()))


@pytest.fixture(scope="module")
def log() -> list[LogRecord]:
    """A small synthetic log (reports with contact blocks, and responders' updates)."""
    return _log()


@pytest.fixture(scope="module")
def outputs(log: list[LogRecord]) -> list[LogRecord]:
    """The offline replay's outputs of :func:`log`."""
    return list(replay_offline(log, Engine()))


def _feed(model: ReadModel, records: list[LogRecord]) -> int:
    rows = []
    for offset, record in enumerate(records):
        role = role_of(record.topic, TOPICS)
        rows.append((record.topic, 0, offset, project(role, record.value, SECRET) if role else []))
    return model.apply(rows)


def _queue_record(**changes: object) -> QueueRecord:
    body = {
        "id": "Q-1", "source": "triage", "time": T0.isoformat(), "victim_ref": "V-ABCD1234",
        "decision_id": "D-" + "a" * 24, "kind": "new", "queue": "immediate", "level": "P1",
        "unit": "PN-ARRAS", "unit_flagged": False,
        "ack_due": (T0 + timedelta(minutes=5)).isoformat(),
        "action_due": (T0 + timedelta(minutes=15)).isoformat(), "rules_version": "r1",
        "reasons": ["immediate_danger"],
        "contact": {"name": "SENTINEL-NAME", "phone": "SENTINEL-PHONE", "notes": "SENTINEL-NOTE"},
    } | changes  # fmt: skip
    return QueueRecord.model_validate(body)


class TestProject:
    """One record in, row changes out."""

    def test_a_queue_record_opens_work_without_its_contact_block(self) -> None:
        """A queue record gives the case, its work item and a timeline line; nothing of
        its contact block is in any change."""
        record = _queue_record()
        changes = project("queue", record.model_dump_json().encode(), SECRET)
        assert [type(c) for c in changes] == [CaseSeen, WorkUpserted, TimelineEntry]
        assert "SENTINEL" not in repr(changes)

    def test_a_decision_carries_its_whole_explanation(self, outputs: list[LogRecord]) -> None:
        """A decision's timeline line holds every factor with answer and points, floors,
        rules version and queue deadlines."""
        record = next(r for r in outputs if b'"triage.decision"' in r.value)
        body = orjson.loads(record.value)
        (_seen, entry) = project("decisions", record.value, SECRET)
        assert isinstance(entry, TimelineEntry)
        assert entry.detail["rules_version"] == body["rules_version"]
        assert len(entry.detail["contributions"]) == len(body["contributions"])
        assert {"factor", "answer", "points", "source"} == set(entry.detail["contributions"][0])
        assert entry.detail["queues"][0]["ack_due"] == body["queues"][0]["ack_due"].replace(
            "Z", "+00:00"
        )

    def test_an_acknowledgement_answers_its_work(self) -> None:
        """case.acknowledged names the decision and queue it answers."""
        ack = make_ack()
        changes = project("updates", ack.model_dump_json().encode(), SECRET)
        answered = [c for c in changes if isinstance(c, WorkAnswered)]
        assert answered == [WorkAnswered(ack.decision_id, ack.queue, "ack", ack.time)]

    @pytest.mark.parametrize("value", [b"", b"[1]", b'{"type": "x"}', b"\xff", b'{"type": 3}'])
    def test_unreadable_records_change_nothing(self, value: bytes) -> None:
        """What the console cannot read is skipped (the worker dead-letters bad input)."""
        assert project("updates", value, SECRET) == []

    def test_a_report_on_the_updates_topic_changes_nothing(self) -> None:
        """Only the event types of a topic are projected from it."""
        assert project("updates", make_report().model_dump_json().encode(), SECRET) == []

    def test_case_keys_are_opaque_and_stable(self) -> None:
        """The key in URLs is the same for one victim and secret, says nothing of the
        reference, and differs under another secret."""
        key = case_key(SECRET, "V-ABCD1234")
        assert key == case_key(SECRET, "V-ABCD1234")
        assert "ABCD" not in key
        assert key != case_key(b"t" * 32, "V-ABCD1234")


class TestReadModel:
    """The SQLite projection and its offsets."""

    def test_applying_the_log_twice_changes_nothing(
        self, tmp_path: Path, outputs: list[LogRecord], log: list[LogRecord]
    ) -> None:
        """Rows are idempotent upserts: the same records twice give the same tables."""
        model = ReadModel(tmp_path / "rm.sqlite3")
        records = [*outputs, *(r for r in log if r.topic == TOPICS.updates)]
        _feed(model, records)
        first = {t: model.query(f"SELECT * FROM {t} ORDER BY 1") for t in ("work", "timeline")}
        _feed(model, records)
        again = {t: model.query(f"SELECT * FROM {t} ORDER BY 1") for t in ("work", "timeline")}
        assert {t: [tuple(r) for r in rows] for t, rows in first.items()} == {
            t: [tuple(r) for r in rows] for t, rows in again.items()
        }
        assert len(first["work"]) > 0

    def test_offsets_move_with_their_rows_only(self, tmp_path: Path) -> None:
        """A batch that fails half-way leaves neither its rows nor its offsets."""
        model = ReadModel(tmp_path / "rm.sqlite3")
        good = project("queue", _queue_record().model_dump_json().encode(), SECRET)
        model.apply([("q", 0, 0, good)])

        def broken() -> object:
            yield ("q", 0, 1, good)
            raise RuntimeError("lost connection")

        with pytest.raises(RuntimeError):
            model.apply(broken())  # type: ignore[arg-type]
        assert model.offsets() == {("q", 0): 1}

    def test_rebuild_forgets_rows_and_offsets(self, tmp_path: Path) -> None:
        """--rebuild starts from nothing: the topics are read again from the start."""
        model = ReadModel(tmp_path / "rm.sqlite3")
        model.apply(
            [("q", 0, 4, project("queue", _queue_record().model_dump_json().encode(), SECRET))]
        )
        model.rebuild()
        assert model.offsets() == {}
        assert model.query("SELECT count(*) FROM work")[0][0] == 0

    def test_acknowledged_work_waits_for_action_and_acted_work_leaves(self, tmp_path: Path) -> None:
        """Open work moves from waiting for an acknowledgement to waiting for action,
        and leaves the list once acted on."""
        model = ReadModel(tmp_path / "rm.sqlite3")
        record = _queue_record()
        model.apply([("q", 0, 0, project("queue", record.model_dump_json().encode(), SECRET))])
        assert [w["acknowledged"] for w in reads.open_work(model)] == [0]
        ack = make_ack(
            victim_ref=record.victim_ref, decision_id=record.decision_id, queue="immediate"
        )
        model.apply([("u", 0, 0, project("updates", ack.model_dump_json().encode(), SECRET))])
        assert [w["acknowledged"] for w in reads.open_work(model)] == [1]
        acted = ack.model_copy(update={"type": "case.action_taken", "id": "a2"}).model_dump()
        acted["action"] = "on_scene"
        model.apply([("u", 0, 1, project("updates", orjson.dumps(acted, default=str), SECRET))])
        assert reads.open_work(model) == []

    def test_no_contact_data_reaches_the_file(
        self, tmp_path: Path, outputs: list[LogRecord], log: list[LogRecord]
    ) -> None:
        """The read model's file holds none of the contact blocks' strings."""
        model = ReadModel(tmp_path / "rm.sqlite3")
        _feed(model, outputs)
        model.close()
        secrets = contact_values(outputs)
        assert secrets, "the synthetic log should carry contact blocks"
        data = b"".join(p.read_bytes() for p in tmp_path.iterdir())
        assert not [s for s in secrets if s.encode() in data]


class TestViews:
    """View models: deadlines, order, words."""

    def test_times_are_shown_in_paris(self) -> None:
        """UTC+1 in winter, UTC+2 in summer."""
        assert views.paris(datetime(2026, 1, 10, 12, 0, tzinfo=UTC)) == "10/01/2026 13:00"
        assert views.paris("2026-07-10T12:00:00+00:00") == "10/07/2026 14:00"

    @pytest.mark.parametrize(
        ("seconds", "text"),
        [(42, "in 42 s"), (299, "in 4 min 59 s"), (3900, "in 1 h 05 min"), (-90, "1 min 30 s late"),
         (90_000, "in 1 d 1 h")],
    )  # fmt: skip
    def test_remaining_time(self, seconds: int, text: str) -> None:
        """The countdown's first value, late shown as late."""
        assert views.remaining(T0 + timedelta(seconds=seconds), T0) == text

    def test_open_work_is_grouped_and_sorted_by_deadline(self) -> None:
        """Per queue and unit, nearest deadline first; escalations under supervisor."""

        def row(wid: str, queue: str, ack_minutes: int, level: str = "P2") -> dict[str, object]:
            return {
                "case_key": wid, "victim_ref": "V-ABCD1234", "decision_id": "D-" + "a" * 24,
                "queue": queue, "unit": "PN-ARRAS", "level": level, "kind": "reassessment",
                "acknowledged": 0, "ack_due": (T0 + timedelta(minutes=ack_minutes)).isoformat(),
                "action_due": (T0 + timedelta(hours=9)).isoformat(),
            }  # fmt: skip

        escalation = {
            "case_key": "e", "victim_ref": "V-ABCD1234", "decision_id": "D-" + "b" * 24,
            "queue": "immediate", "unit": "PN-ARRAS", "level": "P1", "stage": "ack",
            "deadline": (T0 - timedelta(minutes=3)).isoformat(), "fields": "[]",
        }  # fmt: skip
        groups = views.open_work(
            [row("late", "high-risk", 50), row("soon", "high-risk", 5), row("i", "immediate", 9)],
            [escalation], T0,
        )  # fmt: skip
        assert [(g.queue, [i.case_key for i in g.items]) for g in groups] == [
            ("immediate", ["i"]), ("high-risk", ["soon", "late"]), ("supervisor", ["e"]),
        ]  # fmt: skip
        assert groups[1].items[0].kind == "review"
        assert views.units_of([row("x", "immediate", 1)], []) == ["PN-ARRAS"]
        assert views.open_work([row("x", "immediate", 1)], [], T0, unit="PN-LENS") == []
        assert groups[2].items[0].kind == "escalation"
        assert groups[2].items[0].overdue

    def test_the_pipelines_refusal_is_said_in_words(self) -> None:
        """An override rejected for want of a second reviewer reads so."""
        entry = {
            "kind": "override_rejected",
            "detail": json.dumps({"reason_code": "missing_second_reviewer"}),
        }
        assert views.answer_text([entry]) == "override rejected: second reviewer required"
        assert views.answer_text([]) == "sent; waiting for the pipeline"

    def test_the_author_of_a_downgrade_may_not_confirm_it(self, tmp_path: Path) -> None:
        """On the case page the proposal's author sees it awaiting another person."""
        model = ReadModel(tmp_path / "rm.sqlite3")
        record = _queue_record()
        model.apply([("q", 0, 0, project("queue", record.model_dump_json().encode(), SECRET))])
        key = case_key(SECRET, record.victim_ref)
        proposal = {
            "proposal_id": "p1", "new_level": "P2", "reason": "protection_in_place",
            "author": "R-AL01", "time": T0.isoformat(), "confirmed_by": None,
        }  # fmt: skip
        case = reads.case(model, key)
        assert case is not None
        page = views.case_page(case, reads.open_work(model, key), reads.timeline(model, key),
                               [], [], [proposal], "R-AL01", T0)  # fmt: skip
        assert not page.proposals[0].may_confirm
        other = views.case_page(case, [], [], [], [], [proposal], "R-BO02", T0)
        assert other.proposals[0].may_confirm
        assert Level.P1.value in {w.level for w in page.work}


def test_overrides_project_as_updates() -> None:
    """An override's timeline line names direction, level, reason and second reviewer."""
    override = make_override()
    (entry,) = [c for c in project("updates", override.model_dump_json().encode(), SECRET)
                if isinstance(c, TimelineEntry)]  # fmt: skip
    assert entry.detail["direction"] == override.direction
    assert entry.detail["second_reviewer"] == override.second_reviewer


class TestOverrideMovesWork:
    """An override to another level's queue withdraws the work in the old one, as the
    pipeline does (it escalates only the new item); a case downgraded from P1 no longer
    shows its immediate-queue item."""

    @staticmethod
    def _records() -> list[LogRecord]:
        report = make_report(indicators={"immediate_danger": "yes"})
        first = replay_offline([record_of(report)], Engine())
        decision = next(r for r in first if b'"triage.decision"' in r.value)
        override = make_override(
            decision_id=orjson.loads(decision.value)["id"], direction="down",
            new_level=Level.P2, reason="protection_in_place", second_reviewer="R-02",
        )  # fmt: skip
        return list(replay_offline([record_of(report), record_of(override)], Engine()))

    @staticmethod
    def _open_queues(tmp_path: Path, records: list[LogRecord]) -> list[str]:
        rules = Engine().rules
        level_queues = {level.value: sla.queue for level, sla in rules.sla.items()}
        model = ReadModel(tmp_path / "read.sqlite3")
        rows = []
        for offset, record in enumerate(records):
            role = role_of(record.topic, TOPICS)
            changes = project(role, record.value, SECRET, level_queues) if role else []
            rows.append((record.topic, 0, offset, changes))
        model.apply(rows)
        return sorted(item["queue"] for item in reads.open_work(model))

    def test_the_old_queues_work_is_withdrawn(self, tmp_path: Path) -> None:
        records = self._records()
        assert self._open_queues(tmp_path, records) == ["high-risk"]

    def test_whatever_order_the_topics_are_read_in(self, tmp_path: Path) -> None:
        """The console reads decisions and queue topics separately: the override's
        decision may come before the queue record it moves."""
        records = self._records()
        decisions = [r for r in records if r.topic == TOPICS.decisions]
        others = [r for r in records if r.topic != TOPICS.decisions]
        assert self._open_queues(tmp_path, decisions + others) == ["high-risk"]
