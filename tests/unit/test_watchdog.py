"""The stall watch: when a worker with input waiting has processed nothing too long."""

from __future__ import annotations

from triage.streaming.watchdog import StallWatch

WAITING = {("dv.reports.v1", 0): 12, ("dv.reports.v1", 1): 0}
NOTHING = {("dv.reports.v1", 0): 0, ("dv.reports.v1", 1): 0}


def test_trips_after_the_timeout_without_progress_while_input_waits() -> None:
    watch = StallWatch(timeout=180)

    assert not watch.observe(0, 500, WAITING, busy=False)
    assert not watch.observe(179, 500, WAITING, busy=False)
    assert watch.observe(180, 500, WAITING, busy=False)
    assert watch.tripped


def test_any_progress_restarts_the_clock() -> None:
    watch = StallWatch(timeout=180)
    watch.observe(0, 500, WAITING, busy=False)

    assert not watch.observe(170, 501, WAITING, busy=False)
    assert not watch.observe(340, 501, WAITING, busy=False)
    assert watch.observe(350, 501, WAITING, busy=False)


def test_an_idle_worker_with_nothing_to_read_is_not_stalled() -> None:
    watch = StallWatch(timeout=180)

    for now in range(0, 3600, 5):
        assert not watch.observe(now, 500, NOTHING, busy=False)


def test_rebalances_and_recoveries_do_not_count() -> None:
    """A long table recovery processes nothing, with input waiting: not a stall."""
    watch = StallWatch(timeout=180)
    for now in range(0, 600, 5):
        assert not watch.observe(now, 0, WAITING, busy=True)

    assert not watch.observe(600, 0, WAITING, busy=False)
    assert watch.observe(780, 0, WAITING, busy=False)


def test_once_tripped_it_stays_tripped() -> None:
    """The worker is on its way out: later progress does not take the verdict back."""
    watch = StallWatch(timeout=10)
    watch.observe(0, 1, WAITING, busy=False)
    watch.observe(10, 1, WAITING, busy=False)

    assert watch.observe(20, 2, NOTHING, busy=False)
    assert watch.stalled_for(25) == 5


FROZEN = ("dv.reports.v1", 1)
MOVING = ("dv.reports.v1", 0)


def test_a_frozen_partition_trips_the_watch_while_others_progress() -> None:
    """One partition's commit stays put with records waiting past it while the worker
    keeps processing its other partitions: frozen after a third of the timeout (the
    gauge), tripped at the timeout."""
    watch = StallWatch(timeout=180)
    waiting = {MOVING: 3, FROZEN: 5}
    for now in range(0, 180, 5):
        committed = {MOVING: 100 + now, FROZEN: 40}
        assert not watch.observe(now, 1000 + now, waiting, busy=False, committed=committed)
        assert watch.frozen(now) == ([FROZEN] if now >= 60 else [])
    assert watch.observe(180, 1180, waiting, busy=False, committed={MOVING: 280, FROZEN: 40})
    assert watch.stuck_for(180) == 180


def test_a_partition_whose_commit_moves_is_not_frozen() -> None:
    """Slow but moving (one record a minute), or waiting for nothing: never frozen."""
    watch = StallWatch(timeout=180)
    for now in range(0, 900, 5):
        committed = {MOVING: now // 60, FROZEN: 40}
        waiting = {MOVING: 2, FROZEN: 0}
        assert not watch.observe(now, now, waiting, busy=False, committed=committed)
        assert watch.frozen(now) == []


def test_a_rebalance_forgets_frozen_partitions() -> None:
    """During a rebalance or a recovery nothing is frozen, and the count starts again."""
    watch = StallWatch(timeout=180)
    waiting, committed = {FROZEN: 5}, {FROZEN: 40}
    watch.observe(0, 0, waiting, busy=False, committed=committed)
    watch.observe(100, 1, waiting, busy=True, committed=committed)
    assert watch.frozen(100) == []
    assert not watch.observe(200, 2, waiting, busy=False, committed=committed)
    assert watch.observe(380, 3, waiting, busy=False, committed=committed)
