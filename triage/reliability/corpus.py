"""A seeded corpus of malformed and contradictory records, each with the outcome it must get.

``CorpusBuilder(seed, start=…).cases(n)`` yields :class:`~triage.reliability.cases.Case`
values of every kind in :data:`CASE_KINDS`, round-robin; :func:`interleave` merges
them by time with a valid event log. Each case has its own victim (``V-FZ…``,
never a generated one), so cases neither interfere with each other nor with the
log. The kinds themselves are built in :mod:`~triage.reliability.malformed` (bytes,
JSON, schema, keys, time) and :mod:`~triage.reliability.contradictions` (updates
that do not fit the victim's case).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import count
from random import Random
from typing import Any, Literal

import orjson

from triage.events.inputs import InputEvent, ReportReceived
from triage.reliability.cases import REPORTS, SENTINEL_MARK, Case, Probe
from triage.reliability.contradictions import CONTRADICTIONS
from triage.reliability.malformed import MALFORMED
from triage.replay.records import LogRecord
from triage.testing import decision_id_for, make_report

SOURCE = "urn:triage:fuzz"
"""CloudEvents ``source`` of every event the corpus writes."""

_BUILDERS = {**MALFORMED, **CONTRADICTIONS}
CASE_KINDS: tuple[str, ...] = tuple(sorted(_BUILDERS))
"""Every kind of case the corpus builds."""


class CorpusBuilder:
    """Builds cases, seeded: the same seed and start give the same cases, byte for byte.

    Case ``n`` happens around ``start + n * spacing``; its records are a second
    apart, setup first. ``rules_version`` names the rule set that will decide
    the setup reports (contradictory updates name its decisions); by default,
    the packaged one.
    """

    def __init__(
        self,
        seed: int,
        *,
        start: datetime,
        spacing: timedelta = timedelta(seconds=20),
        rules_version: str | None = None,
        kinds: Iterable[str] | None = None,
    ) -> None:
        self.rng = Random(f"triage.reliability.corpus:{seed}")
        self.seed = seed
        self.start = start
        self.spacing = spacing
        self.rules_version = rules_version
        self.kinds = tuple(kinds) if kinds is not None else CASE_KINDS
        unknown = set(self.kinds) - set(CASE_KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"unknown or no case kinds: {', '.join(sorted(unknown))}")
        self._cases = count()
        self._ids = count()
        self.victim = ""
        """The victim of the case being built."""
        self.at = start
        """The time of the last record of the case being built."""

    def cases(self, n: int) -> Iterator[Case]:
        """``n`` cases; the kinds come in seeded shuffled rounds, each kind once a round."""
        order: list[str] = []
        for _ in range(n):
            if not order:
                order = list(self.kinds)
                self.rng.shuffle(order)
            yield self.build(order.pop())

    def build(self, kind: str) -> Case:
        """One case of ``kind``."""
        n = next(self._cases)
        self.victim = f"V-FZ{self.seed % 10_000:04d}{n:07d}"
        at = self.start + n * self.spacing
        # Kafka timestamps are milliseconds: keep every record time exact through Kafka.
        self.at = at = at.replace(microsecond=at.microsecond // 1000 * 1000)
        return replace(_BUILDERS[kind](self), kind=kind, at=at)

    # -- what the builders use ---------------------------------------------------

    def tick(self) -> datetime:
        """The time of the next record of this case (a second after the last one)."""
        self.at += timedelta(seconds=1)
        return self.at

    def event_id(self, tag: str) -> str:
        """A fresh event id, unique across the corpus."""
        return f"fz-{self.seed}-{next(self._ids)}-{tag}"

    def sentinel(self, label: str) -> str:
        """A fresh personal-looking value: § and ¤ never occur in base64 or JSON escapes."""
        return f"{SENTINEL_MARK}{self.rng.randrange(10**6):06d}{label}¤"

    def common(self, tag: str) -> dict[str, Any]:
        """The fields every event of this case shares: a fresh id, source, victim, time."""
        return {"id": self.event_id(tag), "source": SOURCE, "victim_ref": self.victim,
                "time": self.tick()}  # fmt: skip

    def report(self, **fields: Any) -> ReportReceived:
        """A valid report about this case's victim."""
        return make_report(**{**self.common("report"), **fields})

    def decision_of(self, event: InputEvent) -> str:
        """The id of the decision the engine makes of ``event``."""
        return decision_id_for(event, self.rules_version)

    @staticmethod
    def body(event: InputEvent) -> dict[str, Any]:
        """``event`` as a JSON object, to damage."""
        parsed: dict[str, Any] = orjson.loads(event.model_dump_json())
        return parsed

    def probe(
        self,
        body: object,
        *,
        topic: str = REPORTS,
        key: bytes | Literal["victim"] | None = "victim",
    ) -> Probe:
        """A probe carrying ``body`` (bytes as they are, anything else as JSON), keyed by
        this case's victim unless another ``key`` is given (``None``: no key)."""
        value = body if isinstance(body, bytes) else orjson.dumps(body)
        record_key = self.victim.encode() if key == "victim" else key
        return Probe(topic, record_key, value, self.tick())

    def contact(self) -> tuple[dict[str, str], tuple[str, ...]]:
        """A contact block of sentinels, and those sentinels."""
        block = {
            "name": self.sentinel("Name"),
            "phone": self.sentinel("0612"),
            "address": self.sentinel("12 rue Exemple"),
            "notes": self.sentinel("notes: he said he would come back"),
        }
        return block, tuple(block.values())

    def choice(self, options: tuple[Any, ...]) -> Any:
        """A seeded choice among ``options``."""
        return options[self.rng.randrange(len(options))]


def interleave(
    cases: Iterable[Case], log: Iterable[LogRecord]
) -> Iterator[tuple[Probe, Case | None]]:
    """The cases' records (setup first) merged by timestamp with a valid event log.

    Yields ``(probe, case)`` for a case's probe and ``(probe, None)`` for setup
    and log records. A case's records come at the case's time, in order (a record
    stamped in 1970 on purpose still comes there). On equal times the log comes first.
    """
    ordered = count()

    def from_log() -> Iterator[tuple[datetime, int, Probe, Case | None]]:
        for record in log:
            key = record.key.encode() if record.key is not None else None
            yield (
                record.timestamp,
                0,
                Probe(record.topic, key, record.value, record.timestamp),
                None,
            )

    def from_cases() -> Iterator[tuple[datetime, int, Probe, Case | None]]:
        for case in cases:
            at = case.at or case.probe.timestamp
            for probe in case.setup:
                yield at, 1 + next(ordered), probe, None
            yield at, 1 + next(ordered), case.probe, case

    for _t, _n, probe, case in heapq.merge(from_log(), from_cases(), key=lambda x: x[:2]):
        yield probe, case


__all__ = ["CASE_KINDS", "SOURCE", "CorpusBuilder", "interleave"]
