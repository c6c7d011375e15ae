"""Intents become concrete events, and events become event-log records.

Ids are ``evt-<seed>-<n>`` with ``n`` counting the events written, so they are
deterministic and unique. An intent that no longer makes sense against the
engine's current state (case closed, record superseded…) gives no event.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from triage.events.base import Level
from triage.events.inputs import (
    CaseAcknowledged,
    CaseActionTaken,
    CaseClosed,
    CaseOverride,
    DeviceAlarm,
    InputEvent,
    ProtectionGranted,
    ReportReceived,
)
from triage.generate.identities import MEASURE_SERVICE
from triage.generate.intents import (
    Alarm,
    Closure,
    Intent,
    Override,
    Progress,
    Protection,
    Report,
)
from triage.generate.population import Victim
from triage.pipeline.state import VictimState
from triage.replay.records import LogRecord
from triage.topics import REPORT_TYPES

REPORTS_TOPIC = "dv.reports.v1"
UPDATES_TOPIC = "dv.case-updates.v1"


def log_record(event: InputEvent) -> LogRecord:
    """The event as a Kafka record: keyed by victim, stamped with the event time."""
    topic = REPORTS_TOPIC if event.type in REPORT_TYPES else UPDATES_TOPIC
    headers = {
        "ce_type": event.type,
        "ce_id": event.id,
        "ce_source": event.source,
        "ce_specversion": event.specversion,
    }
    value = event.model_dump(mode="json", exclude_defaults=False)
    return LogRecord.of_json(topic, event.victim_ref, event.time, value, headers)


def _level(rank: int) -> Level:
    return Level(f"P{5 - rank}")


class EventFactory:
    """Builds events from intents, numbering them in the order they are written."""

    def __init__(self, seed: int, victims: Mapping[str, Victim]) -> None:
        self._seed = seed
        self._victims = victims
        self._count = 0

    def _next_id(self) -> str:
        self._count += 1
        return f"evt-{self._seed}-{self._count}"

    def build(self, intent: Intent, at: datetime, state: VictimState | None) -> InputEvent | None:
        """The event for ``intent`` at ``at`` given the victim's state, or None to drop it."""
        if isinstance(intent, Report):
            return self._report(intent, at)
        if isinstance(intent, Alarm):
            victim = self._victims[intent.victim_ref]
            return DeviceAlarm(
                id=self._next_id(),
                source=f"urn:dv:device:{intent.device_ref[:3].lower()}",
                time=at,
                victim_ref=intent.victim_ref,
                device_ref=intent.device_ref,
                alarm=intent.alarm,
                commune=victim.commune,
            )
        if state is None or not state.open or state.level is None:
            return None
        if isinstance(intent, Progress):
            return self._progress(intent, at, state)
        if isinstance(intent, Protection):
            if intent.measure in state.protections:
                return None
            return ProtectionGranted(
                id=self._next_id(),
                source=f"urn:dv:responder:{MEASURE_SERVICE[intent.measure]}",
                time=at,
                victim_ref=intent.victim_ref,
                responder_ref=intent.responder,
                measure=intent.measure,
            )
        if isinstance(intent, Closure):
            if self._victims[intent.victim_ref].epoch != intent.epoch:
                return None  # newer work arrived; a later closure is planned
            return CaseClosed(
                id=self._next_id(),
                source=f"urn:dv:responder:{intent.service}",
                time=at,
                victim_ref=intent.victim_ref,
                responder_ref=intent.responder,
                outcome=intent.outcome,
            )
        return self._override(intent, at, state, state.level)

    def _report(self, intent: Report, at: datetime) -> ReportReceived:
        draft = intent.draft
        return ReportReceived(
            id=self._next_id(),
            source=f"urn:dv:channel:{draft.channel.replace('_', '-')}",
            time=at,
            victim_ref=draft.victim.ref,
            suspect_ref=draft.victim.suspect,
            channel=draft.channel,
            commune=draft.victim.commune,
            reporter_role=draft.reporter_role,
            indicators=draft.indicators,
            injuries=draft.injuries,
            complaint_filed=draft.complaint_filed,
            contact=draft.contact,
        )

    def _progress(
        self, intent: Progress, at: datetime, state: VictimState
    ) -> CaseAcknowledged | CaseActionTaken | None:
        item = state.assignment(intent.queue)
        if item is None or item.decision_id != intent.decision_id:
            return None  # done already, or superseded by a newer decision
        common = {
            "source": f"urn:dv:responder:{intent.service}",
            "time": at,
            "victim_ref": intent.victim_ref,
            "responder_ref": intent.responder,
            "queue": intent.queue,
            "decision_id": intent.decision_id,
        }
        if intent.action is None:
            if item.acked_at is not None:
                return None
            return CaseAcknowledged.model_validate({"id": self._next_id(), **common})
        return CaseActionTaken.model_validate(
            {"id": self._next_id(), **common, "action": intent.action}
        )

    def _override(
        self, intent: Override, at: datetime, state: VictimState, level: Level
    ) -> CaseOverride | None:
        if intent.mode == "up":
            if level is Level.P1:
                return None
            new_level, direction = _level(level.rank + 1), "up"
        else:
            if level is Level.P4:
                return None
            new_level, direction = _level(level.rank - 1), "down"
        reviewer = {
            "up": None,
            "down": intent.reviewer,
            "down_no_reviewer": None,
            "down_self_review": intent.responder,
        }[intent.mode]
        if state.decision_id is None:
            return None
        return CaseOverride(
            id=self._next_id(),
            source=f"urn:dv:responder:{intent.service}",
            time=at,
            victim_ref=intent.victim_ref,
            responder_ref=intent.responder,
            decision_id=state.decision_id,
            direction=direction,
            new_level=new_level,
            reason=intent.reason,
            second_reviewer=reviewer,
        )
