"""Routing: level and evidence → the queues a case goes to.

Each queue's work item and its deadlines come from the deadline book
(:func:`triage.pipeline.deadline_book.assign`)."""

from __future__ import annotations

from collections.abc import Iterable

from triage.events.base import Level, QueueName
from triage.scoring.rules import RuleSet


def queues_for(
    rules: RuleSet,
    level: Level,
    yes: Iterable[str],
    *,
    complaint_filed: bool = False,
    alarm: str | None = None,
) -> tuple[QueueName, ...]:
    """The primary queue of ``level`` then every fan-out queue whose condition holds."""
    yes = yes if isinstance(yes, set | frozenset) else frozenset(yes)
    queues: list[QueueName] = [rules.sla[level].queue]
    for fan in rules.fanout:
        hit = (
            not yes.isdisjoint(fan.any_indicators)
            or (fan.complaint_filed and complaint_filed)
            or (alarm is not None and alarm in fan.alarms)
        )
        if hit and fan.queue not in queues:
            queues.append(fan.queue)
    return tuple(queues)
