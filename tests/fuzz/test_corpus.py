"""Bad input at scale: 10,000 seeded corpus cases through the processor, interleaved
with a valid generated log.

Every kind of malformed record (truncated JSON, invalid UTF-8, wrong types, unknown
type or version, oversize, naive or future timestamps, missing or wrong key,
repeated ids, unknown communes, version-2 reports) and of contradictory update (an
acknowledgement before any report, an override for an unknown case, an action on
a closed case, a downgrade without a second reviewer…) gets the outcome it must:
a dead letter with its original bytes and reason, a decision, an OverrideRejected
record, an ``ignored`` observation with its reason, or a duplicate. Meanwhile every
valid report of the log is still decided. Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta

import orjson
import pytest

from triage.events.outputs import DeadLetter, Decision
from triage.generate import GeneratorConfig, generate_log
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import REASONS, dead_letter
from triage.pipeline.processor import Processor
from triage.reliability.cases import OUTCOMES, Case, Expect, Probe
from triage.reliability.corpus import CASE_KINDS, CorpusBuilder, interleave
from triage.reliability.oracle import Judgement, judge_batch, judge_expired
from triage.replay.records import LogRecord
from triage.testing import make_raw, make_report, raw_of
from triage.topics import Topics

CASES = 10_000
SEED = 62


@dataclass(frozen=True)
class Run:
    """What feeding the corpus and the log through one processor gave."""

    judgement: Judgement
    log: list[LogRecord]
    decided: frozenset[str]
    letters_for_log: int


def valid_log(engine: Engine) -> list[LogRecord]:
    """Two synthetic weeks without malformed records (every report must be decided)."""
    config = GeneratorConfig(victims=300, days=14, start=date(2026, 2, 2), seed=3)
    return list(generate_log(config, engine))


@pytest.fixture(name="run", scope="module")
def _run(engine: Engine) -> Run:
    log = valid_log(engine)
    start, span = log[0].timestamp, log[-1].timestamp - log[0].timestamp
    builder = CorpusBuilder(
        SEED, start=start, spacing=span / CASES, rules_version=engine.rules.version
    )
    topics, judgement = Topics(), Judgement()
    processor = Processor(engine, topics)
    decided: set[str] = set()
    log_values = {r.value for r in log}
    letters_for_log = 0
    for probe, case in interleave(builder.cases(CASES), log):
        batch = processor.feed(probe.raw(topics))
        judgement.records += 1
        decided.update(o.source_event_id for o in batch.outputs if isinstance(o, Decision))
        if case is not None:
            judge_batch(case, batch.outputs, batch.observations, judgement)
        elif probe.value in log_values:
            letters_for_log += sum(
                isinstance(o, DeadLetter) and o.value_b64 == probe.value_b64 for o in batch.outputs
            )
        # Updates held for a case that never comes are dead-lettered once the stream
        # clock passes their grace period, in whatever batch moves it there.
        judge_expired(batch.outputs, judgement, final=False)
    assert processor.clock is not None
    judge_expired(processor.advance(processor.clock + timedelta(days=1)).outputs, judgement)
    return Run(judgement, log, frozenset(decided), letters_for_log)


class TestCorpusThroughTheProcessor:
    def test_every_case_gets_its_outcome(self, run: Run) -> None:
        """All 10,000 cases get exactly the outcome they must, and no sentinel personal
        value appears outside a contact block or a dead letter's base64 copies."""
        judgement = run.judgement
        print(json.dumps({"processor": judgement.to_dict()}, indent=2))
        assert judgement.cases == CASES
        assert judgement.ok, judgement.problems

    def test_every_kind_outcome_and_reason_is_exercised(self, run: Run) -> None:
        """Each case kind is tried hundreds of times, each outcome occurs, and every
        dead-letter reason code the pipeline has is produced."""
        judgement = run.judgement
        assert set(judgement.by_kind) == set(CASE_KINDS)
        assert min(judgement.by_kind.values()) >= CASES // len(CASE_KINDS)
        assert {label.split(":")[0] for label in judgement.by_outcome} == set(OUTCOMES)
        assert set(judgement.dead_letters) == set(REASONS)

    def test_the_valid_log_around_the_cases_is_untouched(self, run: Run) -> None:
        """Every report and alarm of the interleaved valid log is decided, and none of
        its records is dead-lettered."""
        reports = {orjson.loads(r.value)["id"] for r in run.log if r.topic == Topics().reports}
        assert reports
        assert reports <= run.decided
        assert run.letters_for_log == 0


class TestCorpus:
    def test_same_seed_same_cases(self) -> None:
        """A seed gives the same cases, byte for byte; another seed gives others."""
        start = make_report().time

        def first(seed: int) -> list[Case]:
            return list(CorpusBuilder(seed, start=start).cases(200))

        assert first(1) == first(1)
        assert first(1) != first(2)

    def test_unknown_kind_is_refused(self) -> None:
        """Asking for a kind the corpus does not have is an error, not an empty corpus."""
        with pytest.raises(ValueError, match="no-such-kind"):
            CorpusBuilder(1, start=make_report().time, kinds=["no-such-kind"])


class TestOracle:
    """The oracle notices what is missing or wrong (so a passing run means something)."""

    @pytest.mark.parametrize(
        "expect",
        [
            Expect("dead_letter", "invalid_json"),
            Expect("decided"),
            Expect("override_rejected", "missing_second_reviewer"),
            Expect("ignored", "stale_decision"),
            Expect("duplicate"),
        ],
        ids=lambda e: e.label,
    )
    def test_silence_is_a_problem(self, expect: Expect) -> None:
        """No output and no observation at all fails every kind of expectation."""
        report = make_report()
        probe = CorpusBuilder(1, start=report.time).build("not_json").probe
        case = Case("k", probe, expect, event_id=report.id)
        judgement = Judgement()

        judge_batch(case, [], [], judgement)

        assert judgement.problem_count == 1

    def test_a_wrong_reason_is_a_problem(self, engine: Engine) -> None:
        """A dead letter with another reason than expected is a problem."""
        value = b'{"type": "report.received", "schema_version": 1, "id": "x'
        batch = Processor(engine, Topics()).feed(make_raw(value))
        case = Case("k", make_probe(value), Expect("dead_letter", "schema_violation"))
        judgement = Judgement()

        judge_batch(case, batch.outputs, batch.observations, judgement)

        assert judgement.problems == [
            "k (dead_letter:schema_violation): dead letters ['invalid_json']"
        ]

    def test_a_personal_value_in_a_detail_is_a_problem(self) -> None:
        """A dead letter whose detail quotes a sentinel is a leak."""
        value = b"{}"
        letter = dead_letter(make_raw(value), "schema_violation", "name: Zq§1 Jeanne¤", Topics())
        case = Case("k", make_probe(value), Expect("dead_letter", "schema_violation"))
        judgement = Judgement()

        judge_batch(case, [letter], [], judgement)

        assert (
            judgement.problems[0] == "k (dead_letter:schema_violation): personal value in "
            "the dead letter's detail"
        )

    def test_a_decision_expected_flagged_must_be(self, engine: Engine) -> None:
        """A decided case whose unit flag differs from the expectation is a problem."""
        report = make_report()
        batch = Processor(engine, Topics()).feed(raw_of(report))
        expect = Expect("decided", flagged=True)
        case = Case("k", make_probe(raw_of(report).value), expect, event_id=report.id)
        judgement = Judgement()

        judge_batch(case, batch.outputs, batch.observations, judgement)

        assert judgement.problems == ["k (decided): unit_flagged is False"]


def make_probe(value: bytes) -> Probe:
    """A probe on the reports topic keyed and stamped as the factories' records are."""
    raw = make_raw(value)
    return Probe(Topics().reports, raw.key, raw.value, raw.timestamp)
