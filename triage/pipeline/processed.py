"""Which events a victim has processed: a compact, bounded memory for de-duplication.

A decision's id is a hash of its event's id (and the rules version), and its
content depends on the victim's state when the event was processed. An event
processed a second time, however late, would give the same id with other
content. So every processed event is remembered, as a 12-byte entry: an 8-byte
digest of its key (source and id) and the minute of its event time. The entries
are packed in one ``bytes`` (base64 in the state's JSON: 16 characters an event).

The memory is bounded by a count, not by time: the input topics keep their
records forever (operations guide, §7), so a redelivery may come at any age.
When a victim has more than ``limit`` entries (only in a flood: a victim gets
about 14 events a year), the ones with the oldest event times are forgotten,
one eighth at a time, and the state keeps the time before which it may have
forgotten events. An event older than that and not remembered cannot be told
apart from a redelivery; the engine refuses it (dead letter with a reason)
rather than decide it a second time.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from triage.events.base import EARLIEST

DIGEST_BYTES = 8
"""Size of an event key's digest: with n remembered events, a false duplicate has
probability about n² / 2⁶⁵ (1e-13 at 2,048 events)."""
ENTRY_BYTES = DIGEST_BYTES + 4
"""A digest and a minute (unsigned, big-endian, counted from :data:`EARLIEST`)."""
REMEMBERED = 2048
"""How many processed events a victim remembers exactly, at most (24 KiB, 32 KiB as JSON)."""

_MINUTE = timedelta(minutes=1)
_LAST_MINUTE = 2**32 - 1


def digest(key: str) -> bytes:
    """The digest of an event key (:func:`triage.events.base.event_key`)."""
    return hashlib.blake2b(key.encode(), digest_size=DIGEST_BYTES).digest()


def minute_of(when: datetime) -> int:
    """Whole minutes from :data:`EARLIEST` to ``when`` (clamped to what 4 bytes hold)."""
    return min(max((when - EARLIEST) // _MINUTE, 0), _LAST_MINUTE)


def end_of_minute(minute: int) -> datetime:
    """The first instant after ``minute``: every time in that minute is before it."""
    return EARLIEST + (minute + 1) * _MINUTE


def entry(key: str, when: datetime) -> bytes:
    """The packed entry of an event key and its event time."""
    return digest(key) + minute_of(when).to_bytes(4, "big")


def remembers(processed: bytes, key_digest: bytes) -> bool:
    """Whether ``processed`` holds an entry with this digest."""
    found = processed.find(key_digest)
    while found != -1:
        if found % ENTRY_BYTES == 0:  # not bytes that straddle two entries
            return True
        found = processed.find(key_digest, found + 1)
    return False


def remember(processed: bytes, entries: bytes, limit: int) -> tuple[bytes, datetime | None]:
    """``processed`` with ``entries`` added, at most ``limit`` of them kept.

    Over the limit, the entries with the oldest event times are forgotten until
    ``limit - limit // 8`` remain (so this happens once per ``limit // 8`` events,
    not on every one). Returns the new entries and, if some were forgotten, the
    time before which every forgotten event lies (``None`` otherwise).
    """
    joined = processed + entries
    count = len(joined) // ENTRY_BYTES
    if count <= limit:
        return joined, None
    keep = limit - limit // 8
    ordered = sorted(
        (joined[i : i + ENTRY_BYTES] for i in range(0, len(joined), ENTRY_BYTES)),
        key=lambda e: (e[DIGEST_BYTES:], e[:DIGEST_BYTES]),
    )
    dropped = ordered[: count - keep]
    newest = int.from_bytes(dropped[-1][DIGEST_BYTES:], "big")
    return b"".join(ordered[count - keep :]), end_of_minute(newest)


def count(processed: bytes) -> int:
    """How many events ``processed`` remembers."""
    return len(processed) // ENTRY_BYTES
