"""The envelope every event shares, and the small value types events are made of.

The envelope follows CloudEvents 1.0 attribute names (``specversion``, ``id``,
``type``, ``source``, ``time``) so that the same record can be described by
CloudEvents Kafka headers. Payload fields sit beside them at the top level.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
"""Input times outside [EARLIEST, LATEST) are refused at ingestion: no real report is
dated there, and deadline arithmetic near the ends of the datetime range overflows.
Outputs are not bounded: a deadline may fall after LATEST."""


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("time is out of range") from None


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A timezone-aware datetime, normalised to UTC. Naive datetimes are refused."""

EventId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
VictimRef = Annotated[str, Field(pattern=r"^V-[0-9A-Z]{4,32}$")]
"""Pseudonymous victim reference issued upstream; never a name."""
SuspectRef = Annotated[str, Field(pattern=r"^S-[0-9A-Z]{4,32}$")]
ResponderRef = Annotated[str, Field(pattern=r"^R-[0-9A-Z]{2,32}$")]
DeviceRef = Annotated[str, Field(pattern=r"^(TGD|BAR)-[0-9A-Z]{2,32}$")]
DecisionId = Annotated[str, Field(pattern=r"^D-[0-9a-f]{24}$")]
InseeCode = Annotated[str, Field(pattern=r"^([0-9]{5}|2[AB][0-9]{3})$")]
"""French commune code (code officiel géographique), e.g. ``62041`` for Arras."""
Source = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:/-]+$")]


class Level(StrEnum):
    """Urgency levels. There is deliberately no "no risk" level."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"

    @property
    def rank(self) -> int:
        """Higher is more urgent: P1 → 4, P4 → 1."""
        return 5 - int(self.value[1])

    def at_least(self, other: Level) -> Level:
        """The more urgent of the two levels."""
        return self if self.rank >= other.rank else other

    def one_below(self) -> Level:
        """The next less urgent level (P1 → P2 … P3 → P4); P4 stays P4."""
        return Level(f"P{min(int(self.value[1]) + 1, 4)}")


QueueName = Literal[
    "immediate",
    "high-risk",
    "follow-up",
    "standard",
    "child-protection",
    "judicial",
    "supervisor",
]
QUEUE_NAMES: tuple[QueueName, ...] = (
    "immediate",
    "high-risk",
    "follow-up",
    "standard",
    "child-protection",
    "judicial",
    "supervisor",
)


def _envelope_required(schema: dict[str, Any]) -> None:
    # `type` and `schema_version` have defaults for convenience in Python, but a
    # record without them is rejected: the public contract says so.
    required = schema.setdefault("required", [])
    for name in ("type", "schema_version"):
        if name in schema.get("properties", {}) and name not in required:
            required.append(name)


class EventModel(BaseModel):
    """Base of every event: immutable, strict about unknown fields, CloudEvents envelope."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra=_envelope_required,
        json_schema_serialization_defaults_required=True,
    )

    specversion: Literal["1.0"] = "1.0"
    id: EventId
    source: Source
    time: UtcDatetime
    schema_version: int


def decision_id_of(source: str, event_id: str, rules_version: str) -> str:
    """The decision id of an event: CloudEvents ids are unique per source only."""
    return stable_id("D", source, event_id, rules_version)


def event_key(source: str, event_id: str) -> str:
    """What identifies an event for de-duplication: its source and its id."""
    return f"{source} {event_id}"


def stable_id(prefix: str, *parts: str) -> str:
    """A deterministic id: ``prefix`` + 24 hex digits of SHA-256 over ``parts``."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return f"{prefix}-{digest[:24]}"


_Model = TypeVar("_Model", bound=BaseModel)
_TEMPLATES: dict[type[BaseModel], tuple[dict[str, Any], frozenset[str]]] = {}
_set = object.__setattr__


def _template(cls: type[BaseModel]) -> tuple[dict[str, Any], frozenset[str]]:
    """Every field of ``cls`` in declaration order with its default, and the required names."""
    if cls.__private_attributes__ or cls.model_config.get("extra") == "allow":
        raise TypeError(f"{cls.__name__} has private attributes or extra fields")
    defaults: dict[str, Any] = {}
    required = set()
    for name, info in cls.model_fields.items():
        if info.default_factory is not None:
            raise TypeError(f"{cls.__name__}.{name} has a default factory")
        if info.is_required():
            required.add(name)
        defaults[name] = info.default
    _TEMPLATES[cls] = defaults, frozenset(required)
    return _TEMPLATES[cls]


def trusted(cls: type[_Model], /, **values: Any) -> _Model:
    """``cls(**values)`` without validation, for values the engine has already checked.

    Only for values of exactly the field types (validated inputs, enum members,
    UTC datetimes, tuples of models): the instance is the one validation would
    build, field order and ``model_fields_set`` included, so it serialises to the
    same bytes. Unknown or missing fields are still refused (``TypeError``).
    """
    defaults, required = _TEMPLATES.get(cls) or _template(cls)
    data = defaults.copy()
    data.update(values)
    if len(data) != len(defaults) or not required <= values.keys():
        raise TypeError(f"{cls.__name__}: unknown or missing fields")
    model = cls.__new__(cls)
    _set(model, "__dict__", data)
    _set(model, "__pydantic_fields_set__", set(values))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


def evolve(model: _Model, /, **changes: Any) -> _Model:
    """``model.model_copy(update=changes)`` for trusted values, without its generic costs.

    The same instance ``model_copy`` would give (fields, ``model_fields_set``);
    unknown field names are refused (``TypeError``) where ``model_copy`` would
    silently add them.
    """
    cls = model.__class__
    if cls not in _TEMPLATES:
        _template(cls)  # refuses a class this shortcut does not suit
    old = model.__dict__
    data = old.copy()
    data.update(changes)
    if len(data) != len(old):  # every field is in __dict__: a new key is no field
        raise TypeError(f"{cls.__name__}: unknown fields")
    new = cls.__new__(cls)
    _set(new, "__dict__", data)
    _set(new, "__pydantic_fields_set__", model.__pydantic_fields_set__.union(changes))
    _set(new, "__pydantic_extra__", None)
    _set(new, "__pydantic_private__", None)
    return new
