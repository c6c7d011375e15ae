"""Simulated responders: limited teams working queue records by priority, in event time."""

from __future__ import annotations

from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from triage.demo.responders import ACK_HANDLING, WORK, ResponderPool
from triage.events.base import Level, stable_id
from triage.events.inputs import CaseAcknowledged, CaseActionTaken
from triage.events.outputs import QueueRecord
from triage.testing import BASE_TIME, after

ACK_DUE = {
    Level.P1: timedelta(minutes=5),
    Level.P2: timedelta(hours=1),
    Level.P3: timedelta(hours=24),
    Level.P4: timedelta(hours=72),
}


def queue_record(
    n: int, *, level: Level = Level.P3, queue: str = "follow-up", time: datetime = BASE_TIME
) -> QueueRecord:
    """Queue record number ``n`` (its own victim and decision), routed at ``time``."""
    return QueueRecord(
        id=f"Q-{n:04d}",
        source="urn:triage:test",
        time=time,
        victim_ref=f"V-{n:04d}AA",
        decision_id=stable_id("D", str(n)),
        kind="new",
        queue=queue,
        level=level,
        unit="U-TEST",
        unit_flagged=False,
        ack_due=time + ACK_DUE[level],
        action_due=time + 2 * ACK_DUE[level],
        rules_version="test",
        reasons=(),
    )


Lifecycle = CaseAcknowledged | CaseActionTaken


def acks(events: list[Lifecycle]) -> list[CaseAcknowledged]:
    """The acknowledgements among ``events``."""
    return [e for e in events if isinstance(e, CaseAcknowledged)]


offers = st.lists(
    st.tuples(
        st.integers(0, 60 * 24 * 3),  # minutes after BASE_TIME
        st.sampled_from(list(Level)),
        st.sampled_from(("immediate", "follow-up", "supervisor")),
        st.integers(0, 300),  # minutes the clock is then advanced to, past the record
    ),
    max_size=25,
)


class TestResponderPool:
    def test_p1_is_taken_before_p3_when_both_wait(self) -> None:
        """When a responder frees up, a waiting P1 goes before a P3 that arrived earlier."""
        pool = ResponderPool({"follow-up": 1})
        pool.offer(queue_record(1, level=Level.P4))  # keeps the only responder busy
        pool.offer(queue_record(2, level=Level.P3, time=after(minutes=1)))
        pool.offer(queue_record(3, level=Level.P1, time=after(minutes=2)))

        assert pool.backlog() == 2

        pool.advance(after(days=2))
        acknowledged = acks(pool.due())

        assert [a.id for a in acknowledged] == ["ack-Q-0001", "ack-Q-0003", "ack-Q-0002"]
        busy_until = BASE_TIME + ACK_HANDLING + WORK[Level.P4]
        assert acknowledged[1].time == busy_until + ACK_HANDLING
        assert acknowledged[2].time == busy_until + ACK_HANDLING + WORK[Level.P1] + ACK_HANDLING

    def test_a_free_responder_takes_what_waits_not_a_later_arrival(self) -> None:
        """A responder free at 16:02 takes the P3 waiting then, not a P1 that arrives at 17:00."""
        pool = ResponderPool({"follow-up": 1})
        pool.offer(queue_record(1, level=Level.P4))  # busy until 10:02 + 6 h
        pool.offer(queue_record(2, level=Level.P3, time=after(minutes=1)))
        pool.offer(queue_record(3, level=Level.P1, time=after(hours=7)))

        pool.advance(after(days=2))

        free_at = BASE_TIME + ACK_HANDLING + WORK[Level.P4]
        acknowledged = {a.id: a.time for a in acks(pool.due())}
        assert acknowledged["ack-Q-0002"] == free_at + ACK_HANDLING

    def test_same_level_goes_by_the_earliest_ack_deadline(self) -> None:
        """Among equal levels, the record whose acknowledgement is due first is taken first."""
        pool = ResponderPool({"follow-up": 1})
        pool.offer(queue_record(1, level=Level.P1))
        late = queue_record(2, level=Level.P3, time=after(minutes=1))
        early = queue_record(3, level=Level.P3, time=after(minutes=2)).model_copy(
            update={"ack_due": after(minutes=30)}
        )
        pool.offer(late)
        pool.offer(early)

        pool.advance(after(days=2))

        assert [a.id for a in acks(pool.due())] == ["ack-Q-0001", "ack-Q-0003", "ack-Q-0002"]

    def test_never_emits_an_event_later_than_its_clock(self) -> None:
        """``due`` returns only events whose time the stream clock has reached."""
        pool = ResponderPool({"immediate": 1})
        pool.offer(queue_record(1, level=Level.P1, queue="immediate"))

        assert pool.due() == []  # the ack is two minutes away

        pool.advance(after(minutes=2) - timedelta(microseconds=1))
        assert pool.due() == []

        pool.advance(after(minutes=2))
        (ack,) = pool.due()
        assert ack.time == after(minutes=2) == pool.clock

        pool.advance(after(hours=1))
        (action,) = pool.due()
        assert isinstance(action, CaseActionTaken)
        assert action.time == after(minutes=2) + WORK[Level.P1]

    def test_the_clock_never_goes_back(self) -> None:
        """An older time does not move the stream clock backwards."""
        pool = ResponderPool()
        pool.advance(after(hours=2))

        pool.advance(after(hours=1))
        pool.offer(queue_record(1, time=after(minutes=30)))

        assert pool.clock == after(hours=2)

    def test_a_team_of_n_works_n_records_at_once(self) -> None:
        """Three responders take three simultaneous records at once; the fourth waits."""
        pool = ResponderPool({"high-risk": 3})
        for n in range(4):
            pool.offer(queue_record(n, level=Level.P2, queue="high-risk"))

        assert pool.backlog() == 1
        pool.advance(after(days=1))
        acknowledged = acks(pool.due())

        first_free = BASE_TIME + ACK_HANDLING + WORK[Level.P2]
        assert [a.time for a in acknowledged] == [BASE_TIME + ACK_HANDLING] * 3 + [
            first_free + ACK_HANDLING
        ]
        assert pool.backlog() == 0

    def test_acknowledgement_precedes_action_for_each_record(self) -> None:
        """Every record's acknowledgement is emitted, and timed, before its action."""
        pool = ResponderPool({"standard": 2})
        for n in range(5):
            pool.offer(queue_record(n, level=Level.P4, queue="standard", time=after(minutes=n)))
        pool.advance(after(days=7))
        events = pool.due()

        for n in range(5):
            record = f"Q-{n:04d}"
            ack = events.index(next(e for e in events if e.id == f"ack-{record}"))
            action = events.index(next(e for e in events if e.id == f"act-{record}"))
            assert ack < action
            assert events[ack].time < events[action].time
        assert [e.time for e in events] == sorted(e.time for e in events)

    def test_events_name_the_record(self) -> None:
        """Lifecycle events carry the record's victim, decision and queue, and a fitting action."""
        pool = ResponderPool({"immediate": 1})
        record = queue_record(7, level=Level.P1, queue="immediate")
        pool.offer(record)
        pool.advance(after(hours=1))

        ack, action = pool.due()

        for event in (ack, action):
            assert (event.victim_ref, event.decision_id, event.queue) == (
                record.victim_ref,
                record.decision_id,
                "immediate",
            )
        assert isinstance(action, CaseActionTaken)
        assert action.action == "on_scene"
        (handled,) = pool.handled
        assert (handled.ack_seconds, handled.action_seconds) == (
            ACK_HANDLING.total_seconds(),
            (ACK_HANDLING + WORK[Level.P1]).total_seconds(),
        )

    def test_queues_without_a_team_are_ignored(self) -> None:
        """A record for a queue nobody staffs (the supervisor's) is not taken or held."""
        pool = ResponderPool()

        pool.offer(queue_record(1, level=Level.P1, queue="supervisor"))
        pool.advance(after(days=30))

        assert (pool.backlog(), pool.handled, pool.due()) == (0, [], [])

    def test_duplicate_records_are_taken_once(self) -> None:
        """A record offered twice (a redelivery) is acknowledged and actioned once."""
        pool = ResponderPool({"follow-up": 1})
        record = queue_record(1)

        pool.offer(record)
        pool.offer(record)
        pool.advance(after(days=2))

        assert [e.id for e in pool.due()] == ["ack-Q-0001", "act-Q-0001"]
        assert len(pool.handled) == 1

    @given(offers)
    def test_due_never_runs_ahead_and_acks_come_first(
        self, steps: list[tuple[int, Level, str, int]]
    ) -> None:
        """Whatever arrives, ``due`` never returns an event after the clock, and each record's
        acknowledgement comes out before its action."""
        pool = ResponderPool({"immediate": 2, "follow-up": 1})
        emitted: list[Lifecycle] = []
        for n, (minutes, level, queue, extra) in enumerate(steps):
            pool.offer(queue_record(n, level=level, queue=queue, time=after(minutes=minutes)))
            pool.advance(after(minutes=minutes + extra))
            batch = pool.due()
            assert pool.clock is not None
            assert all(event.time <= pool.clock for event in batch)
            assert [e.time for e in batch] == sorted(e.time for e in batch)
            emitted.extend(batch)

        ids = [e.id for e in emitted]
        assert len(ids) == len(set(ids))
        for event in emitted:
            if isinstance(event, CaseActionTaken):
                assert ids.index("ack-" + event.id.removeprefix("act-")) < ids.index(event.id)
