"""Which events a victim has processed: a compact, bounded memory for de-duplication.

A decision's id is a hash of its event's id (and the rules version), and its
content depends on the victim's state when the event was processed. An event
processed a second time, however late, would give the same id with other
content. So every processed event is remembered, as a 16-byte entry: an 8-byte
digest of its key (source and id), the minute of its event time and a 4-byte
digest of its payload. The entries are packed in one ``bytes`` (base64 in the
state's JSON: about 22 characters an event).

The payload digest tells an exact repeat (a redelivery: a plain duplicate) from a
*conflicting resend*: the same source and id with other content, which the engine
escalates instead of dropping silently. States written before it hold 12-byte
entries (:data:`LEGACY_ENTRY_BYTES`); :func:`upgrade` gives them an unknown payload
digest, so a resend of an event they remember counts as a plain duplicate.

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
PAYLOAD_BYTES = 4
"""Size of a payload's digest: a conflicting resend passes for an exact repeat with
probability 2⁻³² (and a digest of four zero bytes, :data:`UNKNOWN_PAYLOAD`, never occurs)."""
ENTRY_BYTES = DIGEST_BYTES + 4 + PAYLOAD_BYTES
"""A key digest, a minute (unsigned, big-endian, counted from :data:`EARLIEST`) and a
payload digest."""
LEGACY_ENTRY_BYTES = DIGEST_BYTES + 4
"""An entry as states written before the payload digest hold it (no payload digest)."""
UNKNOWN_PAYLOAD = bytes(PAYLOAD_BYTES)
"""The payload digest of an entry upgraded from a legacy one: not known."""
REMEMBERED = 2048
"""How many processed events a victim remembers exactly, at most (32 KiB, 43 KiB as JSON)."""

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


def payload_digest(canonical: bytes) -> bytes:
    """The digest of an event's canonical payload (never :data:`UNKNOWN_PAYLOAD`)."""
    found = hashlib.blake2b(canonical, digest_size=PAYLOAD_BYTES).digest()
    return found if found != UNKNOWN_PAYLOAD else b"\x00\x00\x00\x01"


def entry(key: str, when: datetime, payload: bytes = UNKNOWN_PAYLOAD) -> bytes:
    """The packed entry of an event key, its event time and its payload digest."""
    return digest(key) + minute_of(when).to_bytes(4, "big") + payload


def lookup(processed: bytes, key_digest: bytes) -> bytes | None:
    """The payload digest remembered with this key digest, or ``None`` if there is none."""
    found = processed.find(key_digest)
    while found != -1:
        if found % ENTRY_BYTES == 0:  # not bytes that straddle two entries
            start = found + DIGEST_BYTES + 4
            return processed[start : start + PAYLOAD_BYTES]
        found = processed.find(key_digest, found + 1)
    return None


def remembers(processed: bytes, key_digest: bytes) -> bool:
    """Whether ``processed`` holds an entry with this digest."""
    return lookup(processed, key_digest) is not None


def upgrade(legacy: bytes) -> bytes:
    """Legacy 12-byte entries as 16-byte entries with an unknown payload digest."""
    size = LEGACY_ENTRY_BYTES
    return b"".join(
        legacy[i : i + size] + UNKNOWN_PAYLOAD for i in range(0, len(legacy) - size + 1, size)
    )


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
        key=lambda e: (e[DIGEST_BYTES : DIGEST_BYTES + 4], e[:DIGEST_BYTES]),
    )
    dropped = ordered[: count - keep]
    newest = int.from_bytes(dropped[-1][DIGEST_BYTES : DIGEST_BYTES + 4], "big")
    return b"".join(ordered[count - keep :]), end_of_minute(newest)


def count(processed: bytes) -> int:
    """How many events ``processed`` remembers."""
    return len(processed) // ENTRY_BYTES
