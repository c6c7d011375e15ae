"""What the console's buttons publish: case-update events, built from a form.

:func:`build_event` is pure: the event id derives from the form's one-time token
(:func:`event_id`), so a form sent twice (a double click, a retried request) is one
event. :class:`Publisher` sends through the validated publish path that
``triage publish`` uses.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any, get_args

import orjson

from triage.events.base import Level
from triage.events.inputs import CaseActionTaken, CaseClosed, OverrideReason, ProtectionGranted
from triage.publishing import Publication, send_event, validate_event
from triage.topics import Topics

CONSOLE_SOURCE = "triage-console"
"""The ``source`` of every event the console publishes."""

ACTIONS = ("acknowledge", "action", "protection", "close", "override_up", "override_down")
ACTION_CHOICES: dict[str, tuple[str, ...]] = {
    "action": get_args(CaseActionTaken.model_fields["action"].annotation),
    "measure": get_args(ProtectionGranted.model_fields["measure"].annotation),
    "outcome": get_args(CaseClosed.model_fields["outcome"].annotation),
    "reason": get_args(OverrideReason),
}
"""The codes each select of a form offers (from the event models)."""


class ActionError(ValueError):
    """A form that does not make a valid action (shown to the person, never logged)."""


def event_id(form_token: str) -> str:
    """The id of the event a form publishes: the same for every send of one form."""
    return (
        "console-" + hashlib.sha256(b"triage-console-form:" + form_token.encode()).hexdigest()[:32]
    )


def _pick(form: Mapping[str, str], name: str) -> str:
    value = form.get(name, "")
    if value not in ACTION_CHOICES[name]:
        raise ActionError(f"choose a {name}")
    return value


def build_event(
    action: str,
    form: Mapping[str, str],
    *,
    victim_ref: str,
    responder_id: str,
    at: datetime,
    form_token: str,
    current_level: str | None = None,
    second_reviewer: str | None = None,
) -> dict[str, Any]:
    """The case-update event of an action (a JSON object, not yet validated)."""
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id(form_token),
        "source": CONSOLE_SOURCE,
        "time": at.isoformat(),
        "schema_version": 1,
        "victim_ref": victim_ref,
        "responder_ref": responder_id,
    }
    match action:
        case "acknowledge":
            body |= {"type": "case.acknowledged", "queue": form.get("queue"),
                     "decision_id": form.get("decision_id")}  # fmt: skip
        case "action":
            body |= {"type": "case.action_taken", "queue": form.get("queue"),
                     "decision_id": form.get("decision_id"),
                     "action": _pick(form, "action")}  # fmt: skip
        case "protection":
            body |= {"type": "case.protection_granted", "measure": _pick(form, "measure")}
        case "close":
            body |= {"type": "case.closed", "outcome": _pick(form, "outcome")}
        case "override_up" | "override_down":
            direction = "up" if action == "override_up" else "down"
            try:
                new_level = Level(form.get("new_level", ""))
            except ValueError:
                raise ActionError("choose a level") from None
            if current_level is not None:
                current = Level(current_level)
                if direction == "up" and new_level.rank <= current.rank:
                    raise ActionError(f"{new_level} is not above the current {current}")
                if direction == "down" and new_level.rank >= current.rank:
                    raise ActionError(f"{new_level} is not below the current {current}")
            body |= {
                "type": "case.override", "decision_id": form.get("decision_id"),
                "direction": direction, "new_level": new_level.value,
                "reason": _pick(form, "reason"), "second_reviewer": second_reviewer,
            }  # fmt: skip
        case _:
            raise ActionError("unknown action")
    return body


class Publisher:
    """One long-lived producer; each event is validated as the worker will, then sent."""

    def __init__(self, bootstrap: str, security: dict[str, Any], topics: Topics) -> None:
        self._bootstrap = bootstrap
        self._security = security
        self._topics = topics
        self._producer: Any = None
        self._lock = threading.Lock()

    def publish(self, body: dict[str, Any], stamp: datetime) -> Publication:
        """Validate and send ``body``; raises :class:`~triage.publishing.PublishRefused`."""
        publication = validate_event(orjson.dumps(body), self._topics, stamp)
        with self._lock:
            if self._producer is None:
                from triage.replay.player import make_producer

                self._producer = make_producer(self._bootstrap, self._security)
            send_event(self._producer, publication)
        return publication

    def close(self) -> None:
        """Close the producer."""
        with self._lock:
            if self._producer is not None:
                from triage.replay.player import close_producer

                close_producer(self._producer)
                self._producer = None
