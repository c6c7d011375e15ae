"""Write ``schemas/examples/``: synthetic input events and the records the engine makes of them.

Input examples are written as a producer would send them. Output examples are
never hand-written: the input examples are run through the real engine (and a
malformed record through real ingestion) and what comes out is saved.

Run from the repository root: ``.venv/bin/python schemas/generate_examples.py``.
Every value is synthetic; victim, responder and device references are invented.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from triage.events.inputs import INDICATOR_NAMES, InputEvent
from triage.events.outputs import OutputEvent
from triage.events.registry import INPUT_MODELS
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import RawRecord, Rejected, dead_letter, ingest
from triage.pipeline.state import VictimState
from triage.topics import Topics

EXAMPLES = Path(__file__).parent / "examples"
SOURCE = "urn:synthetic:example"
Body = dict[str, Any]


def _write(name: str, body: Body) -> None:
    path = EXAMPLES / f"{name}.json"
    path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def _event(name: str, body: Body) -> InputEvent:
    """Save an input example and return it parsed by its model."""
    _write(name, body)
    model = INPUT_MODELS[(body["type"], body.get("schema_version", 1))]
    return model.model_validate(body)  # type: ignore[return-value]


def _save(outputs: Iterable[OutputEvent], names: dict[str, str]) -> None:
    """Save the first output of each type/kind named in ``names`` (``type[:kind]`` → name)."""
    for record in outputs:
        kind = getattr(record, "kind", None) or getattr(record, "stage", None)
        name = names.pop(f"{record.type}:{kind}", None) or names.pop(record.type, None)
        if name is not None:
            _write(name, record.model_dump(mode="json"))


def _step(engine: Engine, state: VictimState | None, event: InputEvent) -> VictimState | None:
    step = engine.step(state, event, event.time)
    assert step.refusal is None, step.refusal
    return step.state


def _decided(state: VictimState | None) -> VictimState:
    """The state after a decision (fails loudly if the engine made none)."""
    if state is None or state.decision_id is None:
        raise RuntimeError("the engine made no decision for this example")
    return state


def _update(kind: str, n: int, at: str, victim: str, **fields: Any) -> Body:
    return {
        "id": f"upd-syn-{n:04d}",
        "source": "urn:synthetic:responder-app",
        "time": at,
        "type": kind,
        "schema_version": 1,
        "victim_ref": victim,
        **fields,
    }


def main() -> None:
    """Write every example."""
    EXAMPLES.mkdir(exist_ok=True)
    engine = Engine()

    # Victim 0001 (Arras): a report with indicators and a contact block, then updates.
    report = _event(
        "report.received.with-indicators-and-contact",
        {
            "specversion": "1.0",
            "id": "rpt-syn-0001",
            "source": "urn:synthetic:police-17",
            "time": "2026-03-02T21:14:00+01:00",
            "type": "report.received",
            "schema_version": 1,
            "victim_ref": "V-SYN0001",
            "suspect_ref": "S-SYN0001",
            "channel": "call_17_112",
            "commune": "62041",
            "reporter_role": "neighbour",
            "indicators": {
                "immediate_danger": "yes",
                "strangulation": "yes",
                "threat_to_kill": "yes",
                "separation": "yes",
                "children_present": "yes",
                "weapon": "no",
            },
            "injuries": "minor",
            "complaint_filed": False,
            "contact": {
                "name": "Synthetic-Person-0001",
                "phone": "+00 0000 0001",
                "address": "Synthetic-Address-0001, 62000 Arras",
                "notes": "Synthetic example: not a real person or case.",
            },
        },
    )
    step = engine.step(None, report, report.time)
    _save(
        step.outputs,
        {
            "triage.decision": "triage.decision.assessment",
            "triage.queue_record:new": "triage.queue_record.new-with-contact",
        },
    )
    state = step.state
    state = _decided(state)
    decision, queue = state.decision_id, state.assignments[0].queue
    t0 = report.time

    # Nobody acknowledges in time: the engine escalates when the stream clock passes the
    # deadline; 72h later the scheduled review goes to the high-risk queue, and its missed
    # acknowledgement (24h) escalates with stage "review".
    late = engine.step(state, None, t0 + timedelta(days=4, hours=1))
    _save(
        late.outputs,
        {
            "triage.escalation:ack": "triage.escalation.ack-overdue",
            "triage.queue_record:reassessment": "triage.queue_record.reassessment",
            "triage.escalation:review": "triage.escalation.review-overdue",
        },
    )

    def at(minutes: int) -> str:
        return (t0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")

    for name, body in (
        (
            "case.acknowledged.example",
            _update(
                "case.acknowledged",
                1,
                at(6),
                "V-SYN0001",
                responder_ref="R-SYN01",
                queue=queue,
                decision_id=decision,
            ),
        ),
        (
            "case.action_taken.on-scene",
            _update(
                "case.action_taken",
                2,
                at(19),
                "V-SYN0001",
                responder_ref="R-SYN01",
                queue=queue,
                decision_id=decision,
                action="on_scene",
            ),
        ),
        (
            "case.protection_granted.tgd",
            _update(
                "case.protection_granted",
                3,
                at(60 * 24 * 3),
                "V-SYN0001",
                responder_ref="R-SYN02",
                measure="tgd",
            ),
        ),
    ):
        state = _step(engine, state, _event(name, body))

    # A TGD alarm from the phone granted above.
    alarm = _event(
        "device.alarm.tgd-pressed",
        {
            "id": "alm-syn-0001",
            "source": "urn:synthetic:tgd-platform",
            "time": at(60 * 24 * 10),
            "type": "device.alarm",
            "schema_version": 1,
            "victim_ref": "V-SYN0001",
            "device_ref": "TGD-SYN0001",
            "alarm": "tgd_pressed",
            "commune": "62041",
        },
    )
    step = engine.step(state, alarm, alarm.time)
    _save(
        step.outputs,
        {
            "triage.decision": "triage.decision.alarm",
            "triage.queue_record:new": "triage.queue_record.alarm",
        },
    )
    state = step.state
    state = _decided(state)

    # Downgrades: without a second reviewer (rejected), then with one (applied).
    rejected = _event(
        "case.override.downgrade-without-second-reviewer",
        _update(
            "case.override",
            4,
            at(60 * 24 * 11),
            "V-SYN0001",
            responder_ref="R-SYN03",
            decision_id=state.decision_id,
            direction="down",
            new_level="P3",
            reason="protection_in_place",
        ),
    )
    step = engine.step(state, rejected, rejected.time)
    _save(step.outputs, {"triage.override_rejected": "triage.override_rejected.no-second-reviewer"})
    state = step.state
    state = _decided(state)
    down = _event(
        "case.override.downgrade-with-second-reviewer",
        _update(
            "case.override",
            5,
            at(60 * 24 * 11 + 30),
            "V-SYN0001",
            responder_ref="R-SYN03",
            decision_id=state.decision_id,
            direction="down",
            new_level="P3",
            reason="protection_in_place",
            second_reviewer="R-SYN04",
        ),
    )
    step = engine.step(state, down, down.time)
    _save(
        step.outputs,
        {
            "triage.decision": "triage.decision.override",
            "triage.queue_record:override": "triage.queue_record.override",
        },
    )
    state = step.state
    closed = _event(
        "case.closed.resolved",
        _update(
            "case.closed",
            6,
            at(60 * 24 * 40),
            "V-SYN0001",
            responder_ref="R-SYN01",
            outcome="resolved",
        ),
    )
    _step(engine, state, closed)

    # Victim 0002 (Calais): a report where nothing is known, sent by a third party.
    unknown = _event(
        "report.received.all-unknown",
        {
            "id": "rpt-syn-0002",
            "source": "urn:synthetic:hotline-3919",
            "time": "2026-03-05T10:02:00Z",
            "type": "report.received",
            "schema_version": 1,
            "victim_ref": "V-SYN0002",
            "channel": "hotline_3919",
            "commune": "62193",
            "reporter_role": "anonymous",
            "indicators": dict.fromkeys(INDICATOR_NAMES, "unknown"),
            "injuries": "unknown",
            "complaint_filed": False,
        },
    )
    step = engine.step(None, unknown, unknown.time)
    _save(step.outputs, {"triage.decision": "triage.decision.all-unknown"})
    state2 = step.state
    state2 = _decided(state2)

    # A professional raises victim 0002's level after a disclosure.
    up = _event(
        "case.override.upgrade",
        _update(
            "case.override",
            7,
            "2026-03-05T11:40:00Z",
            "V-SYN0002",
            responder_ref="R-SYN05",
            decision_id=state2.decision_id,
            direction="up",
            new_level="P2",
            reason="victim_disclosure",
        ),
    )
    state2 = _decided(_step(engine, state2, up))

    # Victim 0002 again: thirteen weekly P2 reviews pass without a new report or alarm; when
    # the next one falls due the case goes dormant. A report in July reactivates it.
    quiet = engine.step(state2, None, datetime.fromisoformat("2026-06-20T00:00:00+00:00"))
    _save(quiet.outputs, {"triage.case_dormant": "triage.case_dormant.no-incident-after-reviews"})
    again = _event(
        "report.received.reactivates-dormant-case",
        {
            "id": "rpt-syn-0003",
            "source": "urn:synthetic:police-17",
            "time": "2026-07-02T18:20:00Z",
            "type": "report.received",
            "schema_version": 1,
            "victim_ref": "V-SYN0002",
            "channel": "call_17_112",
            "commune": "62193",
            "reporter_role": "victim",
            "indicators": {"threat_to_kill": "no", "stalking": "yes"},
            "injuries": "none",
            "complaint_filed": False,
        },
    )
    step = engine.step(quiet.state, again, again.time)
    _save(step.outputs, {"triage.decision": "triage.decision.reactivated"})

    # Victim 0003 (Lens): an anti-approach bracelet zone breach, with no report before it.
    bar = _event(
        "device.alarm.bar-zone-breach",
        {
            "id": "alm-syn-0002",
            "source": "urn:synthetic:bar-platform",
            "time": "2026-03-07T02:31:00Z",
            "type": "device.alarm",
            "schema_version": 1,
            "victim_ref": "V-SYN0003",
            "device_ref": "BAR-SYN0003",
            "alarm": "bar_zone_breach",
            "commune": "62498",
        },
    )
    _step(engine, None, bar)

    if ("clock.watermark", 1) in INPUT_MODELS:
        _event(
            "clock.watermark.end-of-log",
            {
                "id": "wm-syn-0001",
                "source": "urn:synthetic:replay",
                "time": "2026-04-01T00:00:00Z",
                "type": "clock.watermark",
                "schema_version": 1,
            },
        )

    # A malformed record, through real ingestion: the dead letter keeps its bytes.
    topics = Topics()
    raw = RawRecord(
        topic=topics.reports,
        key=b"V-SYN0004",
        partition=0,
        offset=42,
        timestamp=datetime.fromisoformat("2026-03-08T08:00:00+00:00"),
        value=b'{"type": "report.received", "victim_ref": "V-SYN0004", "chan',
    )
    result = ingest(raw, topics)
    assert isinstance(result, Rejected)
    _save(
        [dead_letter(raw, result.reason, result.detail, topics)],
        {"triage.dead_letter": "triage.dead_letter.invalid-json"},
    )


if __name__ == "__main__":
    main()
