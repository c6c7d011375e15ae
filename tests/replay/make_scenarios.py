"""Write the golden scenario logs (``scenarios/*.jsonl``) from the triage.testing factories.

Run from the repository root::

    .venv/bin/python -m tests.replay.make_scenarios            # rewrite scenarios/*.jsonl
    .venv/bin/python -m tests.replay.make_scenarios --expected # and regenerate expected/

``--expected`` does for every scenario what ``triage replay scenarios/NAME.jsonl
--offline -o expected/NAME.jsonl`` does for one. Regenerate only after a change
whose new outputs you have read and meant (``triage replay … --expect …`` shows
them). Synthetic data only.
"""

from __future__ import annotations

import argparse
import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from triage.events.base import stable_id
from triage.events.inputs import InputEvent
from triage.pipeline.engine import Engine
from triage.replay.offline import replay_offline
from triage.replay.records import LogRecord, read_log, write_log
from triage.testing import (
    BASE_TIME,
    SECOND_REVIEWER_REF,
    UNKNOWN_COMMUNE,
    after,
    decision_id_for,
    make_ack,
    make_action,
    make_alarm,
    make_override,
    make_protection,
    make_report,
    make_watermark,
    record_of,
)

HERE = Path(__file__).parent
SCENARIOS = HERE / "scenarios"
EXPECTED = HERE / "expected"
REPORTS, UPDATES = "dv.reports.v1", "dv.case-updates.v1"

Scenario = Callable[[], list[LogRecord]]


def _handled(
    cause: InputEvent,
    queue: str,
    victim: str,
    ack: float,
    act: float,
    action: str = "victim_contacted",
) -> list[LogRecord]:
    """Acknowledgement and action on ``queue``, ``ack`` and ``act`` minutes after ``cause``
    (the report, alarm or override whose decision they answer)."""
    decision, start = decision_id_for(cause), cause.time
    common = {"victim_ref": victim, "decision_id": decision, "queue": queue}
    return [
        record_of(make_ack(time=start + timedelta(minutes=ack), **common)),
        record_of(make_action(time=start + timedelta(minutes=act), action=action, **common)),
    ]


def _end(**delta: float) -> LogRecord:
    return record_of(make_watermark(time=after(**delta)))


def strangulation_alone() -> list[LogRecord]:
    """Strangulation and nothing else: 5 points (P4 by total), the red flag sets P2."""
    victim = "V-SC01"
    report = make_report(victim_ref=victim, indicators={"strangulation": "yes"})
    return [record_of(report), *_handled(report, "high-risk", victim, 20, 6 * 60), _end(days=2)]


def threat_to_kill_plus_weapon() -> list[LogRecord]:
    """Threat to kill with a weapon: the combined floor makes it P1 (immediate queue)."""
    victim = "V-SC02"
    report = make_report(victim_ref=victim, indicators={"threat_to_kill": "yes", "weapon": "yes"})
    return [
        record_of(report),
        *_handled(report, "immediate", victim, 3, 12, "on_scene"),
        _end(hours=1),
    ]


def third_incident_within_a_year() -> list[LogRecord]:
    """Three reports without risk factors in 80 days: the third gets the MARAC floor, P2."""
    victim = "V-SC03"
    out: list[LogRecord] = []
    queues = ("standard", "standard", "high-risk")
    for day, queue in zip((0, 40, 80), queues, strict=True):
        report = make_report(victim_ref=victim, time=after(days=day), injuries="minor")
        out += [record_of(report), *_handled(report, queue, victim, 45, 20 * 60)]
    return [*out, _end(days=81)]


def tgd_alarm() -> list[LogRecord]:
    """A P2 case granted a grave-danger phone presses it: P1 at once, immediate queue."""
    victim = "V-SC04"
    report = make_report(victim_ref=victim, indicators={"weapon": "yes"})
    phone = make_protection(victim_ref=victim, measure="tgd", time=after(days=1))
    alarm = make_alarm(
        victim_ref=victim, alarm="tgd_pressed", device_ref="TGD-SC04", time=after(days=5)
    )
    return [
        record_of(report),
        *_handled(report, "high-risk", victim, 30, 5 * 60),
        record_of(phone),
        record_of(alarm),
        *_handled(alarm, "immediate", victim, 3, 14, "on_scene"),
        _end(days=5, hours=1),
    ]


def bar_zone_breach() -> list[LogRecord]:
    """An anti-approach bracelet zone breach: P1, immediate and judicial queues."""
    victim = "V-SC05"
    report = make_report(
        victim_ref=victim,
        indicators={"threat_to_kill": "yes"},
        complaint_filed=True,
        commune="62080",
    )
    bracelet = make_protection(victim_ref=victim, measure="bar", time=after(days=2))
    alarm = make_alarm(
        victim_ref=victim, alarm="bar_zone_breach", device_ref="BAR-SC05", time=after(days=4)
    )
    return [
        record_of(report),
        *_handled(report, "high-risk", victim, 25, 8 * 60),
        *_handled(report, "judicial", victim, 50, 20 * 60, "referral"),
        record_of(bracelet),
        record_of(alarm),
        *_handled(alarm, "immediate", victim, 4, 18, "on_scene"),
        *_handled(alarm, "judicial", victim, 4, 19, "suspect_detained"),
        _end(days=4, hours=1),
    ]


def downgrade_without_second_reviewer() -> list[LogRecord]:
    """A downgrade by one person is rejected; the same with a second reviewer is applied."""
    victim = "V-SC06"
    report = make_report(victim_ref=victim, indicators={"strangulation": "yes"})
    alone = make_override(
        victim_ref=victim,
        decision_id=decision_id_for(report),
        direction="down",
        new_level="P3",
        reason="protection_in_place",
        time=after(days=2),
    )
    reviewed = make_override(
        victim_ref=victim,
        decision_id=decision_id_for(report),
        direction="down",
        new_level="P3",
        reason="protection_in_place",
        second_reviewer=SECOND_REVIEWER_REF,
        time=after(days=3),
    )
    return [
        record_of(report),
        *_handled(report, "high-risk", victim, 15, 4 * 60),
        record_of(alone),
        record_of(reviewed),
        *_handled(reviewed, "follow-up", victim, 120, 26 * 60),
        _end(days=4, hours=3),
    ]


def late_acknowledgement_escalates() -> list[LogRecord]:
    """P1 acknowledged after 8 min and acted on after 18: both deadlines escalate."""
    victim = "V-SC07"
    report = make_report(victim_ref=victim, indicators={"immediate_danger": "yes"})
    return [
        record_of(report),
        *_handled(report, "immediate", victim, 8, 18, "on_scene"),
        _end(hours=1),
    ]


def children_present() -> list[LogRecord]:
    """Children present and a separation: P3 follow-up plus the child-protection queue."""
    victim = "V-SC08"
    report = make_report(
        victim_ref=victim,
        reporter_role="school_staff",
        channel="school",
        indicators={"children_present": "yes", "separation": "yes"},
    )
    return [
        record_of(report),
        *_handled(report, "follow-up", victim, 120, 24 * 60),
        *_handled(report, "child-protection", victim, 180, 25 * 60, "referral"),
        _end(days=3),
    ]


def unknown_commune() -> list[LogRecord]:
    """A commune the unit directory does not know: the département desk, flagged."""
    victim = "V-SC09"
    report = make_report(
        victim_ref=victim,
        commune=UNKNOWN_COMMUNE,
        channel="online_platform",
        indicators={"stalking": "yes", "coercive_control": "yes"},
    )
    return [
        record_of(report),
        *_handled(report, "follow-up", victim, 10 * 60, 30 * 60),
        _end(days=3),
    ]


def review_kind_and_deadlines() -> list[LogRecord]:
    """A P1 case handled at once and left open: 72h later its scheduled review goes to
    the high-risk queue (never the immediate one), kind ``reassessment``, with the review
    deadlines (ack 24h, action 48h), not the danger-now ones. Nobody acknowledges it in a
    day: one escalation, stage ``review``. The late acknowledgement and the action in time
    end it."""
    victim = "V-SC11"
    report = make_report(victim_ref=victim, indicators={"immediate_danger": "yes"})
    review = {"victim_ref": victim, "decision_id": decision_id_for(report), "queue": "high-risk"}
    return [
        record_of(report),
        *_handled(report, "immediate", victim, 3, 12, "on_scene"),
        record_of(make_ack(time=after(days=4, hours=2), **review)),
        record_of(make_action(time=after(days=4, hours=20), action="victim_contacted", **review)),
        _end(days=5, hours=1),
    ]


def dormancy_and_reactivation() -> list[LogRecord]:
    """A P3 case, two reports ten days apart, handled and left open. Its monthly reviews
    (days 40, 70, 100) go unanswered and escalate with stage ``review``; after the third
    with no new report or alarm (P3's ``dormant_after_reviews``), on day 130 the case goes
    dormant: a ``triage.case_dormant`` record, no more reviews. On day 150 a third report
    reactivates it with its history: the third incident within 12 months meets the
    repeat-incidents floor (P2), the decision names the dormancy record in
    ``reactivated_from``, its queue record starts with the reason ``reactivated``."""
    victim = "V-SC12"
    first = make_report(
        victim_ref=victim, indicators={"separation": "yes", "substance_abuse": "yes"}
    )
    second = make_report(victim_ref=victim, time=after(days=10), indicators={})
    third = make_report(victim_ref=victim, time=after(days=150), indicators={})
    return [
        record_of(first),
        *_handled(first, "follow-up", victim, 60, 24 * 60),
        record_of(second),
        *_handled(second, "follow-up", victim, 60, 24 * 60),
        record_of(third),
        _end(days=151),
    ]


def level_after_a_review() -> list[LogRecord]:
    """Two P2 cases reported again 10 days later (past P2's 7-day cadence), handled and
    left open; each 7-day review is done on day 7. Each first report was P2 by its serious
    injuries alone (4 points: P3 by total, the red flag sets P2). V-SC13's second report
    has no red flag (one prior incident: 2 points, P4 by total), so the level steps down
    one level only, to P3, the follow-up queue, the decision naming the floor
    ``stepped_down_after_review``. V-SC14's second report is also below P2 by total
    (threat to kill 5 + 2: P3) but the threat is a red flag: the case stays P2 (floors
    ``threat_to_kill`` and ``open_case_level``)."""
    out: list[LogRecord] = []
    for victim, later in (("V-SC13", {}), ("V-SC14", {"threat_to_kill": "yes"})):
        first = make_report(victim_ref=victim, injuries="serious")
        second = make_report(victim_ref=victim, time=after(days=10), indicators=later)
        queue = "follow-up" if victim == "V-SC13" else "high-risk"
        review = {"victim_ref": victim, "decision_id": decision_id_for(first), "queue": "high-risk"}
        out += [
            record_of(first),
            *_handled(first, "high-risk", victim, 30, 6 * 60),
            # The 7-day review (day 7), acknowledged and done the same day.
            record_of(make_ack(time=after(days=7, hours=2), **review)),
            record_of(
                make_action(time=after(days=7, hours=5), action="victim_contacted", **review)
            ),
            record_of(second),
            *_handled(second, queue, victim, 60, 20 * 60),
        ]
    return [*out, _end(days=11)]


def combination_floor() -> list[LogRecord]:
    """A separation and stalking after it, nothing else: 7 points (P3 by total), but the
    combination floor ``separation_and_stalking`` (DASH professional judgement) makes it
    P2, the high-risk queue."""
    victim = "V-SC15"
    report = make_report(victim_ref=victim, indicators={"separation": "yes", "stalking": "yes"})
    return [record_of(report), *_handled(report, "high-risk", victim, 40, 8 * 60), _end(days=2)]


def deadline_across_a_public_holiday() -> list[LogRecord]:
    """A P3 report (a separation alone, 4 points) on Wednesday 23 December 2026 at 10:00
    in Paris: its action deadline of two working days skips Christmas (Friday 25, a French
    public holiday) and the weekend, and falls on Monday 28 at 10:00, not on Friday. The
    action on Monday morning is in time: no escalation."""
    victim = "V-SC16"
    report = make_report(
        victim_ref=victim,
        time=datetime(2026, 12, 23, 9, 0, tzinfo=UTC),
        indicators={"separation": "yes"},
    )
    monday_morning = (4 * 24 + 23) * 60  # Monday 28 December, 09:00 in Paris
    return [
        record_of(report),
        *_handled(report, "follow-up", victim, 120, monday_morning),
        record_of(make_watermark(time=datetime(2026, 12, 29, 12, 0, tzinfo=UTC))),
    ]


def _raw(
    value: bytes, *, topic: str = REPORTS, key: str | None = "V-SC10", minutes: float = 5
) -> LogRecord:
    return LogRecord(topic, key, BASE_TIME + timedelta(minutes=minutes), value, {})


def malformed_records() -> list[LogRecord]:
    """Every kind of unusable record goes to the dead-letter topic, original bytes kept."""
    victim = "V-SC10"
    report = make_report(victim_ref=victim, indicators={"separation": "yes"})
    body = orjson.loads(report.model_dump_json())

    def variant(name: str, **changes: object) -> bytes:
        return orjson.dumps({**body, "id": f"evt-bad-{name}", **changes})

    stranger_ack = make_ack(victim_ref="V-SC1X", decision_id=stable_id("D", "nothing", "x"))
    wrong_decision = make_ack(
        victim_ref=victim, decision_id=stable_id("D", "other", "x"), time=after(minutes=9)
    )
    return [
        record_of(report),
        _raw(b'{"type": "report.received", "victim_ref": "V-SC', minutes=1),  # cut short
        _raw(b"\xff\xfe not utf-8", minutes=2),
        _raw(b"[1, 2, 3]", minutes=3),
        _raw(variant("type", type="report.deleted"), minutes=4),
        _raw(variant("version", schema_version=9), minutes=5),
        _raw(record_of(make_ack(victim_ref=victim)).value, minutes=6),  # an update on reports
        _raw(variant("channel", channel="carrier_pigeon"), minutes=7),
        _raw(variant("naive", time="2026-01-05T10:07:00"), minutes=7),  # no time zone
        _raw(variant("future", time="2026-01-07T10:00:00Z"), minutes=8),  # two days ahead
        _raw(variant("nokey", reporter_role="witness"), key=None, minutes=8),
        _raw(variant("otherkey", reporter_role="neighbour"), key="V-SC1Y", minutes=8),
        record_of(stranger_ack, topic=UPDATES),
        record_of(wrong_decision),
        _raw(base64.b64decode("AAECAwQ="), topic=UPDATES, minutes=10),
        _end(hours=2),  # past the update grace (1h): the orphan updates are dead-lettered then
    ]


ALL: dict[str, Scenario] = {
    fn.__name__: fn
    for fn in (
        strangulation_alone,
        threat_to_kill_plus_weapon,
        third_incident_within_a_year,
        tgd_alarm,
        bar_zone_breach,
        downgrade_without_second_reviewer,
        late_acknowledgement_escalates,
        children_present,
        unknown_commune,
        malformed_records,
        review_kind_and_deadlines,
        dormancy_and_reactivation,
        level_after_a_review,
        combination_floor,
        deadline_across_a_public_holiday,
    )
}
"""Every golden scenario by name (the file stem)."""


def main() -> None:
    """Write every scenario log; with ``--expected``, its expected outputs too."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--expected", action="store_true", help="also regenerate expected/")
    args = parser.parse_args()
    SCENARIOS.mkdir(exist_ok=True)
    EXPECTED.mkdir(exist_ok=True)
    for name, build in ALL.items():
        path = SCENARIOS / f"{name}.jsonl"
        # In timestamp order, as a topic partition delivers them (the sort is stable).
        count = write_log(path, sorted(build(), key=lambda r: r.timestamp))
        line = f"{path.relative_to(HERE)}: {count} records"
        if args.expected:
            out = EXPECTED / f"{name}.jsonl"
            n = write_log(out, replay_offline(read_log(path), Engine()))
            line += f" → {out.relative_to(HERE)}: {n} outputs"
        print(line)


if __name__ == "__main__":
    main()
