"""Log ends the broker gave after a given moment.

A consumer's high watermark is where a partition's log ended at the consumer's last
fetch response there, which may be older than a record just received from another
partition. Judged on it, "nothing earlier can still come from that partition" can be
wrong: a report released while an acknowledgement stamped before it was already on the
broker, one fetch away (measured: under load, at a replay's full speed, decisions unlike
the offline replay's). :class:`BrokerEnds` answers the question with an end the broker
gave *after* the record arrived: it asks for the ends of every partition wanted at once
(one ListOffsets request), and remembers when it asked.

Tansu 0.6 answers ListOffsets(latest) with the last *batch's* base offset + 1 (see
:func:`triage.broker.admin.end_offsets`). That undercounts the end, but never hides a
batch written after what the consumer read: its base offset is at least the consumer's
position, so the answer is past it. "Is there anything after what I read" stays right.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from triage.observability.logging import get_logger

log = get_logger("triage.worker")

Partition = tuple[str, int]
ListEnds = Callable[[Sequence[Partition]], Awaitable[Mapping[Partition, int]]]


class BrokerEnds:
    """Ends of partitions' logs, each with the (monotonic) moment it was asked for.

    :meth:`since` gives an end asked for at or after a moment, or None and asks for one;
    the answer comes in the background (the worker's tick looks again every few
    milliseconds). After a failed request the next waits ``retry`` seconds; while
    requests fail, :attr:`failing` is true, and callers fall back on what the consumer
    knows (a broker that cannot answer ListOffsets does not answer fetches either).
    """

    def __init__(
        self,
        list_ends: ListEnds,
        *,
        clock: Callable[[], float] = time.monotonic,
        spacing: float = 0.005,
        retry: float = 1.0,
    ) -> None:
        self._list_ends = list_ends
        self._clock = clock
        self._spacing = spacing
        self._retry = retry
        self._ends: dict[Partition, tuple[int, float]] = {}
        self._wanted: set[Partition] = set()
        self._task: asyncio.Task[None] | None = None
        self.failing = False
        self.requests = 0

    def since(self, tp: Partition, moment: float) -> int | None:
        """The end of ``tp``'s log as the broker gave it when asked at or after
        ``moment`` (None: not known yet; it is asked for)."""
        known = self._ends.get(tp)
        if known is not None and known[1] >= moment:
            return known[0]
        self._wanted.add(tp)
        self._start()
        return None

    def _start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        try:
            self._task = asyncio.get_running_loop().create_task(self._run())
        except RuntimeError:  # no loop (a synchronous caller): asked at the next call
            self._task = None

    async def _run(self) -> None:
        while self._wanted:
            wanted = sorted(self._wanted)
            self._wanted.clear()
            asked = self._clock()
            try:
                ends = await self._list_ends(wanted)
            except Exception as exc:
                if not self.failing:
                    log.warning("log_end_unknown", error=type(exc).__name__)
                self.failing = True
                self._wanted.update(wanted)
                await asyncio.sleep(self._retry)
                continue
            self.requests += 1
            self.failing = False
            for tp, end in ends.items():
                self._ends[tp] = (end, asked)
            await asyncio.sleep(self._spacing)


def read_to_end(
    tp: Partition,
    last: int | None,
    highwater: Callable[[str, int], int | None] | None,
    committed: Callable[[str, int], int | None] | None,
    ends: BrokerEnds | None = None,
    since: float | None = None,
) -> bool:
    """Whether ``tp`` is read to its end, ``last`` being the last offset received there
    since the assignment (both stages ask it).

    By the consumer's high watermark: with nothing received, the group's commit must be
    at the end (a quiet partition after a rebalance must not hold the others for ever).
    Given ``since`` (when the record about to go arrived), also by an end the broker gave
    at or after that moment, the watermark being possibly older; while the broker cannot
    answer, the watermark alone judges.
    """
    if highwater is None:
        return True
    high = highwater(*tp)
    if high is None:
        return False
    done = committed(*tp) if committed is not None and last is None else None
    if last is None:
        if not (high == 0 or (done is not None and done >= high)):
            return False
    elif last + 1 < high:
        return False
    if since is None or ends is None or ends.failing:
        return True
    end = ends.since(tp, since)
    position = last + 1 if last is not None else (done or 0)
    return end is not None and position >= end
