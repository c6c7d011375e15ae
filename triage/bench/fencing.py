"""What fencing costs the worker, per record, measured on its own.

The worker pays three things for fencing (:mod:`triage.streaming.fencing`): a lease
check each time it releases records (reads of the consumer's generation and last
heartbeat), a generation stamp on each state it writes, and a comparison per
changelog record when it recovers a partition. Each is timed here in a tight loop
over realistic values; the sum is set against the worker's time per record
(``pipeline``) when that part ran in the same bench.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from triage.pipeline.engine import Engine
from triage.pipeline.processor import Processor
from triage.replay.offline import to_raw
from triage.replay.records import LogRecord
from triage.streaming.fencing import Lease, keep_newest, stamp, unstamp
from triage.topics import Topics


class _Coordinator:
    """Stands in for aiokafka's group coordinator (the attributes the lease reads)."""

    generation = 7
    member_id = "triage-worker-1"
    _triage_last_heartbeat = 0.0


class _Consumer:
    _coordinator = _Coordinator()


class _Thread:
    def _ensure_consumer(self) -> _Consumer:
        return _Consumer()


class _Membership:
    """The worker's membership reader, over the stand-in (same attribute path)."""

    def __init__(self) -> None:
        self._thread = _Thread()

    def _coordinator(self) -> Any:
        return self._thread._ensure_consumer()._coordinator

    def generation(self) -> int:
        coordinator = self._coordinator()
        return int(coordinator.generation) if coordinator.member_id else -1

    def last_heartbeat(self) -> float:
        return float(getattr(self._coordinator(), "_triage_last_heartbeat", float("-inf")))


def _per_call(fn: Callable[[], object], calls: int) -> float:
    began = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - began) / calls


def fencing_costs(records: list[LogRecord], pipeline: dict[str, Any] | None) -> dict[str, Any]:
    """Microseconds per record for each part of fencing, and their share of the worker's
    time per record (when ``pipeline`` has its events per second)."""
    topics = Topics()
    processor = Processor(Engine(), topics)
    for record in records[:2000]:
        processor.feed(to_raw(record, topics))
    states = [s.model_dump_json().encode() for s in processor.states.values()]
    lease = Lease(_Membership(), 4.0, monotonic=lambda: 1.0)
    stamped = [stamp(7, s) for s in states]
    batch = [(f"V-{i}".encode(), value, i) for i, value in enumerate(stamped)]

    def stamp_all() -> None:
        for state in states:
            unstamp(stamp(7, state))

    lease_us = _per_call(lease.token, 50_000) * 1e6
    stamp_us = _per_call(stamp_all, 200) / max(len(states), 1) * 1e6
    recover_us = _per_call(lambda: keep_newest(batch, lambda _k: None), 200) / len(batch) * 1e6
    figures: dict[str, Any] = {
        "lease_check_us": round(lease_us, 3),
        "stamp_per_state_us": round(stamp_us, 3),
        "recovery_check_per_record_us": round(recover_us, 3),
        # At most one lease check and one stamped state per input record.
        "per_record_us": round(lease_us + stamp_us, 3),
    }
    rate = (pipeline or {}).get("events_per_s")
    if rate:
        figures["share_of_worker_time"] = round((lease_us + stamp_us) * 1e-6 * rate, 5)
    return figures
