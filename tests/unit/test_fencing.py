"""Fencing: the lease, the generation stamp on states, and what a recovery keeps."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from triage.streaming.fencing import NO_GENERATION, Lease, keep_newest, newer, stamp, unstamp


@dataclass
class FakeMembership:
    """A membership whose generation and last heartbeat the test sets."""

    current: int = 3
    heartbeat: float = 100.0

    def generation(self) -> int:
        return self.current

    def last_heartbeat(self) -> float:
        return self.heartbeat


class TestLease:
    def test_a_fresh_member_writes_under_its_generation(self) -> None:
        """A heartbeat within the lease grants the current generation."""
        lease = Lease(FakeMembership(), 4.0, monotonic=lambda: 103.0)

        assert lease.token() == 3
        assert not lease.fenced()

    def test_a_worker_that_woke_from_a_freeze_may_not_write(self) -> None:
        """A last heartbeat older than the lease (the process was frozen) grants nothing."""
        lease = Lease(FakeMembership(), 4.0, monotonic=lambda: 160.0)

        assert lease.token() is None
        assert not lease.fenced()  # not known yet: the broker has not answered

    def test_a_worker_the_broker_dropped_is_fenced(self) -> None:
        """Without a generation (the broker no longer knows the member) nothing is granted."""
        lease = Lease(FakeMembership(current=NO_GENERATION), 4.0, monotonic=lambda: 100.5)

        assert lease.token() is None
        assert lease.fenced()


class TestStamp:
    def test_round_trip(self) -> None:
        """A stamped state gives back its generation and its JSON unchanged."""
        assert unstamp(stamp(12, b'{"victim_ref":"V-0001A2"}')) == (
            12,
            b'{"victim_ref":"V-0001A2"}',
        )

    def test_a_state_from_before_stamping_has_no_generation(self) -> None:
        """Plain JSON (written before fencing existed) reads as generation -1."""
        assert unstamp(b'{"a":1}') == (NO_GENERATION, b'{"a":1}')


class TestNewer:
    @pytest.mark.parametrize(
        ("current", "incoming", "applies"),
        [
            (None, stamp(1, b"{}"), True),
            (stamp(5, b"{}"), stamp(4, b"{}"), False),
            (stamp(5, b"{}"), stamp(5, b"{}"), True),
            (stamp(5, b"{}"), stamp(6, b"{}"), True),
            (b"{}", stamp(0, b"{}"), True),
            (stamp(5, b"{}"), None, True),
        ],
    )
    def test_rule(self, current: bytes | None, incoming: bytes | None, applies: bool) -> None:
        """An older generation never replaces a newer one; ties and deletions apply."""
        assert newer(current, incoming) is applies

    def test_a_zombie_write_after_the_new_owner_is_skipped_in_recovery(self) -> None:
        """Generation 7 wrote after generation 8 (a frozen worker's late write): kept is 8's."""
        records = [
            (b"V-1", stamp(7, b"old"), "a"),
            (b"V-1", stamp(8, b"new"), "b"),
            (b"V-1", stamp(7, b"late"), "c"),
            (b"V-2", stamp(7, b"other"), "d"),
        ]

        kept, stale = keep_newest(records, lambda _key: None)

        assert (kept, stale) == (["a", "b", "d"], 1)

    def test_the_stored_state_counts(self) -> None:
        """A batch record older than what the table already holds is skipped."""
        kept, stale = keep_newest([(b"V-1", stamp(2, b"x"), "a")], lambda _key: stamp(3, b"y"))

        assert (kept, stale) == ([], 1)
