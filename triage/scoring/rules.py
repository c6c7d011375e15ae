"""The rule set: a versioned data file, validated by pydantic.

A bad file raises :class:`triage.errors.RulesError` naming the field at fault,
e.g. ``thresholds.P2: must be above P3``.
"""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from triage.errors import RulesError
from triage.events.base import QUEUE_NAMES, Level, QueueName
from triage.events.inputs import INDICATOR_NAMES, Injuries

INJURY_SEVERITY: dict[str, int] = {"none": 0, "unknown": 0, "minor": 1, "serious": 2}
"""Order of injuries for floors and points: unknown counts as no known injury."""

_SPAN = re.compile(r"^(\d+)(s|m|h|d|wd)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _known_indicators(names: _Names) -> _Names:
    unknown = sorted(set(names) - set(INDICATOR_NAMES))
    if unknown:
        raise ValueError(f"unknown indicator(s): {', '.join(unknown)}")
    return names


_Names = TypeVar("_Names", tuple[str, ...], dict[str, int])
IndicatorNames = Annotated[tuple[str, ...], AfterValidator(_known_indicators)]
"""Names of risk indicators, checked against the event contract."""


class Span(BaseModel):
    """A duration written as ``"5m"``, ``"72h"``, ``"7d"`` or ``"2wd"`` (working days)."""

    model_config = ConfigDict(frozen=True)

    text: str
    delta: timedelta | None = None
    working_days: int | None = None

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: object) -> object:
        if isinstance(value, str):
            match = _SPAN.match(value.strip())
            if match is None:
                raise ValueError(f"{value!r} is not a duration like 5m, 72h, 7d or 2wd")
            amount, unit = int(match.group(1)), match.group(2)
            if amount <= 0:
                raise ValueError("a duration must be positive")
            if unit == "wd":
                return {"text": value, "working_days": amount}
            return {"text": value, "delta": timedelta(seconds=amount * _UNIT_SECONDS[unit])}
        raise ValueError("a duration is a string like 5m, 72h, 7d or 2wd")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Floor(_Strict):
    """A red flag: when every listed indicator is ``yes`` (and the injuries match,
    if given), the level is at least ``level``."""

    name: str
    all: IndicatorNames = ()
    injuries: Injuries | None = None
    level: Level

    @field_validator("injuries")
    @classmethod
    def _an_injury(cls, injuries: Injuries | None) -> Injuries | None:
        if injuries is not None and INJURY_SEVERITY[injuries] == 0:
            raise ValueError("an injuries floor must name minor or serious")
        return injuries

    @model_validator(mode="after")
    def _has_condition(self) -> Floor:
        if not self.all and self.injuries is None:
            raise ValueError("a floor needs `all` indicators or `injuries`")
        return self

    def holds(self, yes: frozenset[str] | set[str], injuries: Injuries) -> bool:
        """Every listed indicator is ``yes`` and the injuries are at least as bad as named."""
        if not all(name in yes for name in self.all):
            return False
        return self.injuries is None or INJURY_SEVERITY[injuries] >= INJURY_SEVERITY[self.injuries]


class HistoryFloor(_Strict):
    """At least ``level`` once the victim has ``min_incidents`` in the window."""

    name: str
    min_incidents: Annotated[int, Field(ge=2)]
    level: Level


class History(_Strict):
    """What earlier incidents of the same victim contribute."""

    window_days: Annotated[int, Field(gt=0)]
    points_per_prior_incident: Annotated[int, Field(ge=0)]
    max_points: Annotated[int, Field(ge=0)]
    carry_indicators: bool
    not_carried: IndicatorNames = ()
    """Situational indicators that describe one incident only (e.g. immediate danger)."""
    keep_open_level: bool
    step_down_after_review: bool = False
    """With ``keep_open_level``: a new report may lower an open case by one level (P1→P2,
    P2→P3, P3→P4) when its computed level is lower, no red-flag floor (``floors``, carried
    indicators included) and no history floor holds, and the open level has stood for at
    least its re-assessment cadence. ``False`` (rule sets before urgency-1.4.0): only an
    override with a second reviewer lowers an open case."""
    max_incidents: Annotated[int, Field(ge=1, le=1000)]
    floors: tuple[HistoryFloor, ...] = ()

    @model_validator(mode="after")
    def _step_down_needs_open_level(self) -> History:
        if self.step_down_after_review and not self.keep_open_level:
            raise ValueError("step_down_after_review needs keep_open_level = true")
        return self

    @property
    def window(self) -> timedelta:
        """The look-back window as a timedelta."""
        return timedelta(days=self.window_days)


def _not_supervisor(queue: QueueName) -> QueueName:
    if queue == "supervisor":
        raise ValueError("the supervisor queue is reserved for escalations")
    return queue


RoutedQueue = Annotated[QueueName, AfterValidator(_not_supervisor)]
"""A queue a case can be routed to: any but the supervisor's."""


class LevelSla(_Strict):
    """Service level for one urgency level: primary queue, deadlines, re-assessment.

    ``ack``/``action`` are the deadlines of new information (a report, an alarm, an
    override). A scheduled re-assessment (every ``reassess``) is a review, not new
    danger: it has its own deadlines, ``review_ack``/``review_action``, and goes to
    ``review_queue`` (default: ``queue``). A missed review deadline escalates with
    stage ``review``. Without ``review_ack``/``review_action`` (rule sets before
    urgency-1.2.0) a re-assessment takes ``queue``, ``ack`` and ``action`` and its
    misses are stages ``ack``/``action``, as it did then.
    """

    queue: RoutedQueue
    ack: Span
    action: Span
    action_rural: Span | None = None
    reassess: Span
    review_queue: RoutedQueue | None = None
    review_ack: Span | None = None
    review_action: Span | None = None
    dormant_after_reviews: Annotated[int, Field(ge=1, le=1000)] | None = None
    """After this many scheduled re-assessments in a row without a new report or alarm,
    the case goes dormant when the next one falls due: no more re-assessments, its open
    work closed, a ``triage.case_dormant`` record; a new report or alarm reactivates it
    with its history. ``None`` (rule sets before urgency-1.3.0): never dormant."""
    on_time_target: Annotated[float, Field(gt=0, le=1)] | None = None
    """The share of this level's deadlines (acknowledgement, action, review) to be met,
    for the reports (``0.95``: 95 %); it decides nothing. ``None``: no target set."""

    @field_validator("reassess")
    @classmethod
    def _calendar(cls, span: Span) -> Span:
        if span.delta is None:
            raise ValueError("re-assessment cadence must be in s, m, h or d")
        return span

    @model_validator(mode="after")
    def _review(self) -> LevelSla:
        if (self.review_ack is None) != (self.review_action is None):
            raise ValueError("review_ack and review_action go together")
        if self.review_queue is not None and self.review_ack is None:
            raise ValueError("review_queue needs review_ack and review_action")
        ack, action = self.review_ack, self.review_action
        if ack is None or action is None:
            return self
        assert self.reassess.delta is not None
        if ack.delta is not None and action.delta is not None and ack.delta > action.delta:
            raise ValueError("review_ack must not be later than review_action")
        # A review ends before the next one falls due (working days: not checked here,
        # their length in calendar time depends on the weekday and the holidays).
        if action.delta is not None and action.delta >= self.reassess.delta:
            raise ValueError("review_action must be shorter than the re-assessment cadence")
        return self

    @property
    def reviewed(self) -> bool:
        """Whether re-assessments have their own deadlines (``review_ack``/``review_action``)."""
        return self.review_ack is not None

    @property
    def review_target(self) -> QueueName:
        """The queue a re-assessment of this level goes to."""
        return self.review_queue or self.queue


class FanOut(_Strict):
    """A queue beside the primary one; applies when any condition holds."""

    queue: RoutedQueue
    any_indicators: IndicatorNames = ()
    complaint_filed: bool = False
    alarms: tuple[Literal["tgd_pressed", "bar_zone_breach"], ...] = ()


class RuleSet(_Strict):
    """Everything that decides a level, a queue and a deadline. Versioned."""

    version: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
    thresholds: dict[Literal["P1", "P2", "P3"], Annotated[int, Field(ge=1)]]
    weights: Annotated[dict[str, Annotated[int, Field(ge=0)]], AfterValidator(_known_indicators)]
    injuries: dict[Injuries, Annotated[int, Field(ge=0)]]
    floors: tuple[Floor, ...]
    history: History
    alarms: dict[Literal["tgd_pressed", "bar_zone_breach"], Level]
    sla: dict[Level, LevelSla]
    fanout: tuple[FanOut, ...] = ()
    alarm_merge_window: Span | None = None
    """A device alarm within this span of the victim's last decided alarm, while every
    queue it would go to already holds an open work item at its level or above, is
    merged into that work (counted, no new queue record). ``None``: never merged."""

    update_grace: Span | None = None
    """How long, in stream time, a case update (acknowledgement, action, protection,
    closure, override) that names a case or decision its victim does not have yet waits
    for it before it is dead-lettered: its report may be on its way by another path (a
    forward from a misrouted partition, a slower topic). ``None``: dead-lettered at once."""

    @field_validator("alarm_merge_window", "update_grace")
    @classmethod
    def _elapsed_time(cls, span: Span | None) -> Span | None:
        if span is not None and span.delta is None:
            raise ValueError("the alarm merge window and the update grace must be in s, m, h or d")
        return span

    @field_validator("thresholds")
    @classmethod
    def _ascending(cls, thresholds: dict[str, int]) -> dict[str, int]:
        missing = {"P1", "P2", "P3"} - set(thresholds)
        if missing:
            raise ValueError(f"missing level(s): {', '.join(sorted(missing))}")
        if not thresholds["P3"] < thresholds["P2"] < thresholds["P1"]:
            raise ValueError("thresholds must rise: P3 < P2 < P1")
        return thresholds

    @field_validator("sla")
    @classmethod
    def _every_level(cls, sla: dict[Level, LevelSla]) -> dict[Level, LevelSla]:
        missing = set(Level) - set(sla)
        if missing:
            raise ValueError(f"missing level(s): {', '.join(sorted(missing))}")
        return sla

    @model_validator(mode="after")
    def _danger_now_queue(self) -> RuleSet:
        # The P1 queue means danger now: a scheduled review never goes there.
        danger_now = self.sla[Level.P1].queue
        for level, sla in self.sla.items():
            if sla.reviewed and sla.review_target == danger_now:
                raise ValueError(
                    f"sla.{level.value}.review_queue: a review must not go to the danger-now"
                    f" queue {danger_now!r} (set review_queue)"
                )
        return self

    @field_validator("injuries")
    @classmethod
    def _every_injury(cls, injuries: dict[str, int]) -> dict[str, int]:
        missing = {"none", "minor", "serious", "unknown"} - set(injuries)
        if missing:
            raise ValueError(f"missing value(s): {', '.join(sorted(missing))}")
        if (
            not max(injuries["none"], injuries["unknown"])
            <= injuries["minor"]
            <= injuries["serious"]
        ):
            raise ValueError(
                "points must not fall as injuries get worse: none, unknown ≤ minor ≤ serious"
            )
        return injuries

    def level_for(self, total: int) -> Level:
        """The level a total reaches before floors."""
        if total >= self.thresholds["P1"]:
            return Level.P1
        if total >= self.thresholds["P2"]:
            return Level.P2
        if total >= self.thresholds["P3"]:
            return Level.P3
        return Level.P4

    @cached_property
    def primary_queues(self) -> frozenset[QueueName]:
        """The queues of the SLA table (a case lives in one of them at a time)."""
        return frozenset(sla.queue for sla in self.sla.values())

    @cached_property
    def queues(self) -> tuple[QueueName, ...]:
        """Every queue this rule set can route to, plus the supervisor queue."""
        used = {s.queue for s in self.sla.values()} | {f.queue for f in self.fanout}
        used |= {s.review_target for s in self.sla.values()}
        return tuple(q for q in QUEUE_NAMES if q in used or q == "supervisor")


def default_rules_path() -> Path:
    """The rule set shipped in the package."""
    return Path(str(resources.files("triage.scoring") / "data" / "urgency-v1.toml"))


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Read and validate a rule-set file (TOML). ``None`` means the packaged default."""
    path = Path(path) if path is not None else default_rules_path()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RulesError(f"{path}: cannot read rules file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise RulesError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{path}: not valid TOML ({exc})") from None
    try:
        return RuleSet.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise RulesError(f"{path}: {where}: {first['msg']}{more}") from None
