"""Is the broker the one this worker knows? Checked before the start and while running.

Found by an outside tester: the embedded broker (Tansu, in memory) stopped and
restarted empty; the worker rejoined its group, logged "Worker ready" and sat idle
with lag 0, because a topic that no longer exists has no lag. And a worker started
with ``TRIAGE_PARTITIONS=8`` against 4-partition topics started silently and created
an 8-partition state changelog (its partitioner then disagrees with everyone's).

So the worker compares what the broker says with what it must be:

- every input, internal and output topic exists; the internal (repartition) topics
  have ``settings.partitions`` partitions, and so has the state changelog if it
  exists (Faust creates it); input topics may have any count (upstream producers
  partition as they like: the forwarding stage re-partitions their records);
- no partition of a consumed topic (input or internal) ends below an offset the
  group committed there, below an offset this worker already read there, or below
  where it ended before.

:func:`find_problems` is that comparison, a pure function; :func:`preflight` runs it
before Faust starts, :class:`BrokerWatch` at each lag reading while the worker runs.
Either way a problem is one error line (``broker_inconsistent``, naming topics,
counts, partitions and offsets, never record contents), the
``triage_broker_inconsistent`` gauge, and the exit status
:data:`~triage.streaming.watchdog.EXIT_BROKER_INCONSISTENT`.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from triage.broker.admin import GroupSnapshot, group_snapshot, wait_for_broker
from triage.observability.logging import get_logger
from triage.observability.metrics import TriageMetrics
from triage.settings import TriageSettings
from triage.streaming.watchdog import EXIT_BROKER_INCONSISTENT

log = get_logger("triage.worker")

Check = Literal["topic_missing", "partition_count", "log_shrank"]
"""What kind of disagreement: the ``check`` label of ``triage_broker_inconsistent``."""

METRICS_LINGER = 20.0
"""Seconds ``/metrics`` stays up after a problem is found, before the exit.

Long enough for one scrape (every 15 s in deploy/prometheus) to see the gauge;
the worker only waits when it serves metrics.
"""

STOP_GRACE = 10.0
"""Seconds a running worker that found a problem gets for its graceful stop (plus
:data:`METRICS_LINGER` when it serves metrics) before it exits anyway.

Measured on Tansu restarted empty: the graceful stop takes 1–8 s, or Faust's consumer
thread dies in it and it never ends. There is little to save: the broker lost what a
graceful stop would deliver and commit to.
"""

MAX_LISTED = 12
"""At most this many problems are spelled out in the error line (then "and N more")."""

TP = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Problem:
    """One disagreement between the broker and the worker."""

    check: Check
    text: str
    """Topic names, partition numbers, counts and offsets only."""


@dataclass(frozen=True, slots=True)
class Expected:
    """What the broker must hold for this worker."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    changelog: str
    partitions: int
    internal: tuple[str, ...] = ()
    """The internal topics: like the changelog, ``partitions`` partitions exactly."""
    copartitioned: tuple[str, ...] = ()
    """Input topics the stateful stage reads directly (no repartitioning): they too
    must have ``partitions`` partitions, or a victim's records and state part ways."""

    @classmethod
    def of(cls, settings: TriageSettings, changelog: str) -> Expected:
        """The topics of ``settings``; ``changelog`` as Faust names the state table's."""
        topics = settings.topics
        direct = () if settings.repartition else topics.inputs
        return cls(
            topics.inputs, topics.outputs, changelog, settings.partitions, topics.internal,
            direct,
        )  # fmt: skip

    @property
    def consumed(self) -> tuple[str, ...]:
        """The topics the worker's group reads (their ends and commits are checked)."""
        return (*self.inputs, *self.internal)

    @property
    def topics(self) -> tuple[str, ...]:
        """Every topic whose partition count is read from the broker."""
        return (*self.inputs, *self.internal, *self.outputs, self.changelog)


def find_problems(
    expected: Expected,
    snapshot: GroupSnapshot,
    *,
    read: Mapping[TP, int] | None = None,
    ended: Mapping[TP, int] | None = None,
    changelog_known: bool = False,
) -> list[Problem]:
    """Everything in ``snapshot`` that contradicts ``expected`` or what was seen before.

    ``read``: the last offset this worker read per consumed partition; ``ended``: the
    log end seen there at an earlier check; ``changelog_known``: the state changelog
    existed at an earlier check (before the first start it may not exist yet).
    """
    problems: list[Problem] = []
    n = expected.partitions
    for topic in (*expected.inputs, *expected.internal, *expected.outputs):
        if topic not in snapshot.partitions:
            problems.append(Problem("topic_missing", f"topic {topic} does not exist"))
    for topic in (*expected.copartitioned, *expected.internal, expected.changelog):
        count = snapshot.partitions.get(topic)
        if count is not None and count != n:
            problems.append(
                Problem(
                    "partition_count",
                    f"topic {topic} has {count} partitions, TRIAGE_PARTITIONS is {n}",
                )
            )
    if changelog_known and expected.changelog not in snapshot.partitions:
        problems.append(
            Problem("topic_missing", f"state changelog {expected.changelog} no longer exists")
        )
    for key, end in sorted(snapshot.ends.items()):
        floors: list[tuple[int, str]] = []
        if (committed := snapshot.committed.get(key)) is not None:
            floors.append((committed, f"the group's committed offset {committed}"))
        if (last := (read or {}).get(key)) is not None:
            floors.append((last + 1, f"offset {last}, which this worker already read"))
        if (before := (ended or {}).get(key)) is not None:
            floors.append((before, f"its end {before} at an earlier check"))
        for floor, said in floors:
            if end < floor:
                problems.append(
                    Problem("log_shrank", f"{key[0]}[{key[1]}] ends at offset {end}, below {said}")
                )
                break
    return problems


def describe(problems: Iterable[Problem]) -> str:
    """The problems as one line (the first :data:`MAX_LISTED` spelled out)."""
    texts = [p.text for p in problems]
    line = "; ".join(texts[:MAX_LISTED])
    if len(texts) > MAX_LISTED:
        line += f"; and {len(texts) - MAX_LISTED} more"
    return line


def report(problems: list[Problem], metrics: TriageMetrics | None, *, when: str) -> None:
    """Log the one error line and set ``triage_broker_inconsistent`` for each check failed.

    ``when`` is ``"start"`` (preflight) or ``"running"``.
    """
    checks = sorted({p.check for p in problems})
    log.error(
        "broker_inconsistent",
        mode=when,
        kind=",".join(checks),
        count=len(problems),
        reason=f"{describe(problems)} (exit status {EXIT_BROKER_INCONSISTENT})",
    )
    if metrics is not None:
        for check in checks:
            metrics.broker_inconsistent.labels(check).set(1)


def preflight(
    settings: TriageSettings, changelog: str, *, wait: float | None = None, timeout: float = 10.0
) -> list[Problem]:
    """Compare the broker with ``settings`` before the worker starts.

    Waits up to ``wait`` seconds (default: ``settings.kafka_connect_timeout``) for the
    broker to answer; raises :class:`~triage.errors.BrokerError` naming the address and
    ``TRIAGE_KAFKA_BOOTSTRAP`` if it does not.
    """
    bootstrap = settings.kafka_bootstrap
    if bootstrap is None:
        raise ValueError("preflight needs settings.kafka_bootstrap")
    expected = Expected.of(settings, changelog)
    security = settings.kafka_python_security()
    wait = settings.kafka_connect_timeout if wait is None else wait
    wait_for_broker(bootstrap, wait, security=security, source="TRIAGE_KAFKA_BOOTSTRAP")
    snapshot = group_snapshot(
        bootstrap, settings.group_id, expected.topics, expected.consumed,
        security=security, timeout=timeout,
    )  # fmt: skip
    return find_problems(expected, snapshot)


@dataclass(slots=True)
class BrokerWatch:
    """Remembers what the broker said at each check; trips when it says less.

    A log end never decreases on a healthy broker, whoever consumes the partition.
    """

    tripped: bool = False
    problems: list[Problem] = field(default_factory=list)
    _ended: dict[TP, int] = field(default_factory=dict, repr=False)
    _changelog_known: bool = field(default=False, repr=False)

    def observe(
        self, expected: Expected, snapshot: GroupSnapshot, read: Mapping[TP, int]
    ) -> list[Problem]:
        """Check one snapshot; ``read`` is the last offset read per partition, taken
        *before* the snapshot. Returns the problems (and trips) or remembers the ends."""
        problems = find_problems(
            expected, snapshot, read=read, ended=self._ended, changelog_known=self._changelog_known
        )
        if problems:
            self.tripped, self.problems = True, problems
            return problems
        for tp, end in snapshot.ends.items():
            self._ended[tp] = max(end, self._ended.get(tp, 0))
        self._changelog_known |= expected.changelog in snapshot.partitions
        return []


_WATCHES: weakref.WeakKeyDictionary[object, BrokerWatch] = weakref.WeakKeyDictionary()


def broker_watch(owner: object) -> BrokerWatch:
    """The broker watch of ``owner`` (the worker's Faust app), made on first use.

    The app's lag timer feeds it; :func:`triage.streaming.run.run_worker` reads
    ``tripped`` to choose the exit status.
    """
    watch = _WATCHES.get(owner)
    if watch is None:
        watch = _WATCHES[owner] = BrokerWatch()
    return watch
