"""The merger: co-partitioned sources released in record-timestamp order."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triage.pipeline.merge import Merger

REPORTS, UPDATES = "reports", "updates"
SOURCES = (REPORTS, UPDATES)


def everyone(_source: str, _since: float) -> bool:
    """Every source is caught up (nothing more to fetch)."""
    return True


def no_one(_source: str, _since: float) -> bool:
    """No source is caught up (the consumer may still fetch older records)."""
    return False


def only(*names: str) -> Callable[[str, float], bool]:
    """Only ``names`` are caught up."""
    return lambda source, _since: source in names


Item = tuple[str, int, int]
"""(source, timestamp in ms, position within its source)."""

source_logs = st.fixed_dictionaries(
    {name: st.lists(st.integers(0, 20), max_size=8) for name in ("a", "b", "c")}
)


def heads_merge(logs: dict[str, list[int]], sources: tuple[str, ...]) -> list[Item]:
    """Reference: repeatedly take the head with the smallest (timestamp, source rank)."""
    queues = {s: [(s, ts, i) for i, ts in enumerate(logs[s])] for s in sources}
    out: list[Item] = []
    while any(queues.values()):
        heads = [(queues[s][0][1], rank, s) for rank, s in enumerate(sources) if queues[s]]
        _, _, source = min(heads)
        out.append(queues[source].pop(0))
    return out


class TestMerger:
    def test_needs_a_source(self) -> None:
        """A merger over no source at all is a mistake, said at once."""
        with pytest.raises(ValueError, match="at least one source"):
            Merger[str]([])

    def test_releases_in_timestamp_order_across_sources(self) -> None:
        """With a record waiting on every source, the earliest timestamp goes first."""
        merger = Merger[str](SOURCES)
        merger.add(0, UPDATES, 2_000, "ack", arrived=0.0)
        merger.add(0, REPORTS, 1_000, "report", arrived=0.0)
        merger.add(0, REPORTS, 3_000, "later report", arrived=0.0)

        released = merger.release(0, now=0.0, caught_up=no_one)

        # "later report" stays: the updates source is empty and may still hold
        # something older than it.
        assert released == ["report", "ack"]
        assert merger.held() == 1

    def test_ties_go_to_the_earlier_source(self) -> None:
        """Records with the same timestamp go out in the order the sources were given."""
        merger = Merger[str](SOURCES)
        merger.add(0, UPDATES, 1_000, "ack", arrived=0.0)
        merger.add(0, REPORTS, 1_000, "report", arrived=0.0)

        assert merger.release(0, now=0.0, caught_up=everyone) == ["report", "ack"]

    def test_ties_follow_source_rank_not_name(self) -> None:
        """Source rank is the order given to the merger, whatever the names sort as."""
        merger = Merger[str]((UPDATES, REPORTS))
        merger.add(0, REPORTS, 1_000, "report", arrived=0.0)
        merger.add(0, UPDATES, 1_000, "ack", arrived=0.0)

        assert merger.release(0, now=0.0, caught_up=everyone) == ["ack", "report"]

    def test_lone_source_waits_for_the_others_to_catch_up(self) -> None:
        """A record alone in its partition is held while another source may still fetch."""
        merger = Merger[str](SOURCES, idle=0.0)
        merger.add(0, UPDATES, 2_000, "ack", arrived=0.0)

        assert merger.release(0, now=100.0, caught_up=only(UPDATES)) == []
        assert merger.release(0, now=100.0, caught_up=everyone) == ["ack"]

    def test_lone_source_waits_for_the_idle_time(self) -> None:
        """Even with every other source caught up, a lone record waits ``idle`` seconds."""
        merger = Merger[str](SOURCES, idle=0.5)
        merger.add(0, UPDATES, 2_000, "ack", arrived=10.0)

        assert merger.release(0, now=10.4, caught_up=everyone) == []
        assert merger.release(0, now=10.5, caught_up=everyone) == ["ack"]

    def test_idle_time_counts_from_the_records_arrival(self) -> None:
        """Idle time is per record: a newer arrival waits its own full interval."""
        merger = Merger[str](SOURCES, idle=1.0)
        merger.add(0, REPORTS, 1_000, "first", arrived=0.0)
        merger.add(0, REPORTS, 2_000, "second", arrived=5.0)

        assert merger.release(0, now=5.5, caught_up=everyone) == ["first"]
        assert merger.release(0, now=6.0, caught_up=everyone) == ["second"]

    def test_waiting_is_not_needed_when_every_source_has_a_record(self) -> None:
        """Idle time and catching up only matter while some source is empty."""
        merger = Merger[str](SOURCES, idle=60.0)
        merger.add(0, REPORTS, 1_000, "report", arrived=0.0)
        merger.add(0, UPDATES, 5_000, "ack", arrived=0.0)

        assert merger.release(0, now=0.0, caught_up=no_one) == ["report"]

    def test_partitions_are_independent(self) -> None:
        """What one partition holds never delays or releases another partition's records."""
        merger = Merger[str](SOURCES)
        merger.add(0, UPDATES, 9_000, "p0 ack", arrived=0.0)
        merger.add(1, REPORTS, 1_000, "p1 report", arrived=0.0)
        merger.add(1, UPDATES, 2_000, "p1 ack", arrived=0.0)

        assert merger.release(1, now=0.0, caught_up=everyone) == ["p1 report", "p1 ack"]
        assert merger.release(0, now=0.0, caught_up=only(UPDATES)) == []
        assert merger.partitions() == (0,)
        assert merger.release(2, now=0.0, caught_up=everyone) == []

    def test_drop_returns_what_was_held(self) -> None:
        """Dropping a partition hands back its held records and forgets only that partition."""
        merger = Merger[str](SOURCES)
        merger.add(0, UPDATES, 2_000, "ack", arrived=0.0)
        merger.add(0, UPDATES, 3_000, "action", arrived=0.0)
        merger.add(1, UPDATES, 2_000, "other", arrived=0.0)

        dropped = merger.drop(0)

        assert sorted(dropped) == ["ack", "action"]
        assert merger.held() == 1
        assert merger.partitions() == (1,)
        assert merger.drop(0) == []
        assert merger.release(0, now=0.0, caught_up=everyone) == []

    def test_fifo_within_a_source_even_when_timestamps_go_back(self) -> None:
        """A source's records keep their consumed order; a later one never overtakes its head."""
        merger = Merger[str](SOURCES)
        merger.add(0, UPDATES, 5_000, "u1", arrived=0.0)
        merger.add(0, UPDATES, 1_000, "u2", arrived=0.0)
        merger.add(0, REPORTS, 3_000, "r1", arrived=0.0)

        assert merger.release(0, now=0.0, caught_up=everyone) == ["r1", "u1", "u2"]

    def test_held_counts_every_partition(self) -> None:
        """``held`` counts waiting records over all partitions and sources."""
        merger = Merger[str](SOURCES)
        merger.add(0, REPORTS, 1, "a", arrived=0.0)
        merger.add(3, UPDATES, 1, "b", arrived=0.0)
        merger.add(3, UPDATES, 2, "c", arrived=0.0)

        assert merger.held() == 3
        assert set(merger.partitions()) == {0, 3}

    @given(source_logs, st.permutations(("a", "b", "c")), st.data())
    def test_release_everything_is_a_merge_of_heads(
        self, logs: dict[str, list[int]], sources: list[str], data: st.DataObject
    ) -> None:
        """All caught up and idle 0: each source keeps its order; heads go by (time, rank)."""
        merger = Merger[Item](sources, idle=0.0)
        cursors = dict.fromkeys(sources, 0)
        # Interleave the sources in any order; within a source, consumed order.
        while choices := [s for s in sources if cursors[s] < len(logs[s])]:
            source = data.draw(st.sampled_from(choices))
            i = cursors[source]
            cursors[source] += 1
            merger.add(7, source, logs[source][i], (source, logs[source][i], i), arrived=0.0)

        released = merger.release(7, now=0.0, caught_up=everyone)

        for source in sources:
            mine = [item for item in released if item[0] == source]
            assert mine == [(source, ts, i) for i, ts in enumerate(logs[source])]
        assert released == heads_merge(logs, tuple(sources))
        assert merger.held() == 0

    @given(source_logs)
    def test_sorted_sources_give_the_stable_sort(self, logs: dict[str, list[int]]) -> None:
        """When each source is in timestamp order, the merge is the stable sort by (time, rank)."""
        sources = ("a", "b", "c")
        sorted_logs = {s: sorted(logs[s]) for s in sources}
        merger = Merger[Item](sources)
        everything = [(s, ts, i) for s in sources for i, ts in enumerate(sorted_logs[s])]
        for item in everything:
            merger.add(0, item[0], item[1], item, arrived=0.0)

        released = merger.release(0, now=0.0, caught_up=everyone)

        assert released == sorted(everything, key=lambda it: (it[1], sources.index(it[0])))


class TestStrays:
    def test_a_stray_goes_out_in_its_place_and_holds_nothing_back(self) -> None:
        """A stray behind a held record takes that record's time: the other source's
        later record waits for it instead of overtaking what follows it."""
        merger = Merger[str](("reports", "updates"))
        merger.add(0, "reports", 100, "r1", arrived=0.0)
        merger.add(0, "reports", 0, "stray", arrived=0.0, stray=True)
        merger.add(0, "reports", 300, "r2", arrived=0.0)
        merger.add(0, "updates", 200, "u1", arrived=0.0)

        released = merger.release(0, now=0.0, caught_up=everyone)

        assert released == ["r1", "stray", "u1", "r2"]

    def test_a_stray_at_the_head_goes_at_the_time_given(self) -> None:
        """With nothing held before it, a stray goes at the time the caller gives."""
        merger = Merger[str](("reports", "updates"))
        merger.add(0, "reports", 50, "stray", arrived=0.0, stray=True)
        merger.add(0, "reports", 300, "r1", arrived=0.0)
        merger.add(0, "updates", 200, "u1", arrived=0.0)

        assert merger.release(0, now=0.0, caught_up=everyone) == ["stray", "u1", "r1"]
