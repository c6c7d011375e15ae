"""Judging what the pipeline made of corpus cases: one processed batch at a time
(:func:`judge_batch`), or all the records of the output topics at once
(:func:`judge_outputs`, for a run through Kafka).

A case passes when its expected outcome is there and nothing contradicts it: a
dead letter keeps the original bytes and key and has the expected reason; a
decided event has its decision; a rejected override its ``OverrideRejected``
record with the reason code; an ignored update its ``ignored`` observation (or,
through Kafka, no dead letter and no decision). And no sentinel personal value
appears anywhere but inside a queue record's contact block (or base64 copies).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from triage.events.outputs import DeadLetter, Decision, OutputEvent, OverrideRejected, QueueRecord
from triage.pipeline.observations import Duplicate, Ignored, Observation, UpdateWaiting, WaitOutcome
from triage.pipeline.processor import WAITABLE
from triage.reliability.cases import SENTINEL_MARK, Case

_MAX_PROBLEMS = 50
_BY_DESIGN = frozenset({"contact", "value_b64", "key_b64"})
"""Fields that may hold input values: the contact block for responders, and a dead
letter's base64 copies of the input."""


@dataclass
class Judgement:
    """The tally of a run: cases by kind and outcome, dead letters by reason, problems."""

    cases: int = 0
    records: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_outcome: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    waiting: list[Case] = field(default_factory=list)
    """Cases whose update is held for its case's grace period: their dead letters come
    when the stream clock passes it (see :func:`judge_expired`)."""

    @property
    def ok(self) -> bool:
        """No case went wrong."""
        return self.problem_count == 0

    def problem(self, case: Case | None, text: str) -> None:
        """Record a problem (the first few in full, the rest counted)."""
        self.problem_count += 1
        if len(self.problems) < _MAX_PROBLEMS:
            where = f"{case.kind} ({case.expect.label})" if case is not None else "log"
            self.problems.append(f"{where}: {text}")

    def count(self, case: Case) -> None:
        """Count one judged case."""
        self.cases += 1
        self.by_kind[case.kind] += 1
        self.by_outcome[case.expect.label] += 1

    def to_dict(self) -> dict[str, Any]:
        """Figures as plain JSON values."""
        return {
            "cases": self.cases,
            "records": self.records,
            "cases_by_outcome": dict(sorted(self.by_outcome.items())),
            "dead_letters_by_reason": dict(sorted(self.dead_letters.items())),
            "kinds": len(self.by_kind),
            "problems": self.problem_count,
            "first_problems": self.problems[:10],
        }


def visible_text(output: OutputEvent) -> str:
    """An output as JSON without the parts that may hold input values by design: a
    queue record's contact block, a dead letter's base64 copies of the input."""
    if isinstance(output, QueueRecord):
        return output.model_dump_json(exclude={"contact"})
    if isinstance(output, DeadLetter):
        return output.model_dump_json(exclude={"value_b64", "key_b64"})
    return output.model_dump_json()


def leaks(outputs: Iterable[OutputEvent], mark: str = SENTINEL_MARK) -> list[str]:
    """The outputs that carry a sentinel personal value where none may be."""
    return [f"{o.type} {o.id} carries a personal value" for o in outputs if mark in visible_text(o)]


def judge_batch(
    case: Case,
    outputs: Sequence[OutputEvent],
    observations: Sequence[Observation],
    judgement: Judgement,
) -> None:
    """Judge what feeding ``case.probe`` produced (outputs and observations of that feed)."""
    judgement.count(case)
    probe, expect = case.probe, case.expect
    letters = [
        o
        for o in outputs
        if isinstance(o, DeadLetter)
        and o.value_b64 == probe.value_b64
        and o.key_b64 == probe.key_b64
    ]
    judgement.dead_letters.update(o.reason for o in outputs if isinstance(o, DeadLetter))
    decided = [o for o in outputs if isinstance(o, Decision) and o.source_event_id == case.event_id]
    rejected = [
        o.reason_code
        for o in outputs
        if isinstance(o, OverrideRejected) and o.source_event_id == case.event_id
    ]
    held = expect.reason in WAITABLE and any(
        isinstance(o, UpdateWaiting) and o.outcome is WaitOutcome.WAITING for o in observations
    )
    if expect.outcome == "dead_letter" and held and not letters:
        judgement.waiting.append(case)
    elif expect.outcome == "dead_letter":
        if [letter.reason for letter in letters] != [expect.reason]:
            judgement.problem(case, f"dead letters {[x.reason for x in letters]}")
        for letter in letters:
            if SENTINEL_MARK in letter.detail:
                judgement.problem(case, "personal value in the dead letter's detail")
    elif letters:
        judgement.problem(case, f"unexpected dead letter {letters[0].reason}")
    if expect.outcome == "decided":
        if len(decided) != 1:
            judgement.problem(case, f"{len(decided)} decisions")
        elif decided[0].unit_flagged != expect.flagged:
            judgement.problem(case, f"unit_flagged is {decided[0].unit_flagged}")
    elif decided:
        judgement.problem(case, "decided")
    if expect.outcome == "override_rejected" and rejected != [expect.reason]:
        judgement.problem(case, f"override rejections {rejected}")
    if expect.outcome == "ignored" and not any(
        isinstance(o, Ignored) and o.reason == expect.reason for o in observations
    ):
        judgement.problem(case, f"no 'ignored' observation with reason {expect.reason}")
    if expect.outcome == "duplicate" and not any(isinstance(o, Duplicate) for o in observations):
        judgement.problem(case, "no 'duplicate' observation")
    for leak in leaks(outputs):
        judgement.problem(case, leak)
    if SENTINEL_MARK in repr(observations):
        judgement.problem(case, "personal value in an observation")


def judge_expired(
    outputs: Sequence[OutputEvent], judgement: Judgement, *, final: bool = True
) -> None:
    """Judge the held cases (:attr:`Judgement.waiting`) against ``outputs``: each gets
    its dead letter, with the expected reason and no personal value in its detail, once
    the stream clock passes its grace period.

    ``final``: ``outputs`` are what the processor gave once its clock passed every grace
    period, so a held case without its dead letter there is a problem. Otherwise they
    are one batch of a run still under way: the held cases found in it are judged and
    the others keep waiting."""
    letters: dict[tuple[str | None, str], list[DeadLetter]] = defaultdict(list)
    for o in outputs:
        if isinstance(o, DeadLetter):
            letters[(o.key_b64, o.value_b64)].append(o)
            if final:
                judgement.dead_letters[o.reason] += 1
    still: list[Case] = []
    for case in judgement.waiting:
        found = letters.get((case.probe.key_b64, case.probe.value_b64), [])
        if not found and not final:
            still.append(case)
            continue
        if [letter.reason for letter in found] != [case.expect.reason]:
            judgement.problem(case, f"after the grace period, dead letters {found}")
        for letter in found:
            if SENTINEL_MARK in letter.detail:
                judgement.problem(case, "personal value in the dead letter's detail")
    judgement.waiting[:] = still


def judge_outputs(
    cases: Iterable[Case], values: Iterable[bytes], judgement: Judgement
) -> dict[str, list[dict[str, Any]]]:
    """Judge every case against the records of the output topics (each value once or
    more: exact copies from redelivery are fine). Returns the records by type."""
    by_id: dict[str, bytes] = {}
    for value in values:
        body = orjson.loads(value)
        previous = by_id.setdefault(body["id"], value)
        if previous != value and _canonical(previous) != _canonical(value):
            judgement.problem(None, f"{body['type']} {body['id']} produced with two contents")
    records: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for value in by_id.values():
        body = orjson.loads(value)
        records[body["type"]].append(body)
    letters: dict[tuple[str | None, str], list[str]] = defaultdict(list)
    for letter in records["triage.dead_letter"]:
        letters[(letter["key_b64"], letter["value_b64"])].append(letter["reason"])
        judgement.dead_letters[letter["reason"]] += 1
    decided = Counter(d["source_event_id"] for d in records["triage.decision"])
    flagged = {d["source_event_id"]: d["unit_flagged"] for d in records["triage.decision"]}
    rejected = defaultdict(list)
    for r in records["triage.override_rejected"]:
        rejected[r["source_event_id"]].append(r["reason_code"])
    for case in cases:
        judgement.count(case)
        expect, event_id = case.expect, case.event_id or ""
        reasons = letters.get((case.probe.key_b64, case.probe.value_b64), [])
        if expect.outcome == "dead_letter":
            if expect.reason not in reasons:
                judgement.problem(case, f"dead letters {reasons}")
        elif reasons:
            judgement.problem(case, f"unexpected dead letter {reasons}")
        n = decided.get(event_id, 0)
        if expect.outcome == "decided" and (n != 1 or flagged[event_id] != expect.flagged):
            judgement.problem(case, f"{n} decisions")
        if expect.outcome in ("dead_letter", "ignored", "override_rejected") and n:
            judgement.problem(case, "decided")
        if expect.outcome == "duplicate" and n > 1:
            judgement.problem(case, f"{n} decisions for one repeated event")
        if expect.outcome == "override_rejected" and rejected.get(event_id) != [expect.reason]:
            judgement.problem(case, f"override rejections {rejected.get(event_id)}")
    for kind, bodies in records.items():
        for body in bodies:
            visible = {k: v for k, v in body.items() if k not in _BY_DESIGN}
            if SENTINEL_MARK in orjson.dumps(visible).decode():
                judgement.problem(None, f"{kind} {body['id']} carries a personal value")
    return records


def _canonical(value: bytes) -> bytes:
    body = orjson.loads(value)
    if body.get("type") == "triage.dead_letter":  # coordinates differ between deliveries
        body["source_partition"] = body["source_offset"] = None
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


__all__ = [
    "Judgement", "judge_batch", "judge_expired", "judge_outputs", "leaks", "visible_text",
]  # fmt: skip
