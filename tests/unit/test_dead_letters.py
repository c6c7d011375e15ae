"""Dead letters stay bounded whatever the record: heads of the key and value, each
part's size and SHA-256, a header summary without values, a minimal form without payload."""

from __future__ import annotations

import base64
import hashlib

import orjson

from triage.events.outputs import DeadLetter, HeaderSummary
from triage.events.wire import output_key
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import (
    DEAD_LETTER_BYTES,
    DEAD_LETTER_HEADERS,
    DEAD_LETTER_KEY_BYTES,
    DEAD_LETTER_MAX_JSON,
    HEADER_NAME_CHARS,
    dead_letter,
    header_name,
    minimal_dead_letter,
)
from triage.pipeline.processor import Processor
from triage.testing import VICTIM_REF, make_raw
from triage.topics import Topics

SECRET = "Zq§Jeanne-Dupont-06-12-34-56-78"
"""A synthetic personal value."""
BIG_KEY = b"K" * 900_000
"""A key of 900 KB: with the record around it, over a dead-letter topic's 1 MiB limit
when copied whole into base64."""


def sha(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


class TestBoundedDeadLetter:
    def test_a_small_record_is_kept_whole_with_sizes_and_digests(self, topics: Topics) -> None:
        """Key and value are copied whole; sizes and digests describe them."""
        record = make_raw(b"{", headers=(("ce_id", b"abc"),))

        letter = dead_letter(record, "invalid_json", "not JSON", topics)

        assert base64.b64decode(letter.value_b64) == b"{"
        assert letter.key_b64 is not None
        assert base64.b64decode(letter.key_b64) == VICTIM_REF.encode()
        assert (letter.key_size, letter.key_sha256) == (len(VICTIM_REF), sha(VICTIM_REF.encode()))
        assert (letter.value_size, letter.value_sha256) == (1, sha(b"{"))
        assert (letter.header_count, letter.headers) == (1, (HeaderSummary(name="ce_id", size=3),))
        assert letter.detail == "not JSON"

    def test_a_huge_key_is_cut_to_its_head(self, topics: Topics) -> None:
        """A 900 KB key keeps its first KiB; its size and digest are those of the whole key."""
        letter = dead_letter(make_raw(b"{", key=BIG_KEY), "invalid_json", "not JSON", topics)

        assert letter.key_b64 is not None
        assert base64.b64decode(letter.key_b64) == BIG_KEY[:DEAD_LETTER_KEY_BYTES]
        assert (letter.key_size, letter.key_sha256) == (len(BIG_KEY), sha(BIG_KEY))
        assert letter.detail == f"not JSON; key truncated to 1024 of {len(BIG_KEY)} bytes"
        assert len(letter.model_dump_json()) < 10_000

    def test_a_huge_value_is_cut_to_its_head(self, topics: Topics) -> None:
        """A 5 MB value keeps its first 256 KiB; its size and digest are the whole value's."""
        value = bytes(range(256)) * 20_000

        letter = dead_letter(make_raw(value), "oversize", "too big", topics)

        assert base64.b64decode(letter.value_b64) == value[:DEAD_LETTER_BYTES]
        assert (letter.value_size, letter.value_sha256) == (len(value), sha(value))
        assert letter.detail.startswith("too big; value truncated to 262144 of 5120000 bytes")

    def test_the_id_depends_on_the_whole_key(self, topics: Topics) -> None:
        """Two huge keys with the same head give two ids; the same record, the same id."""
        other = BIG_KEY[:-1] + b"L"

        first = dead_letter(make_raw(b"{", key=BIG_KEY, offset=1), "invalid_json", "", topics)
        again = dead_letter(make_raw(b"{", key=BIG_KEY, offset=9), "invalid_json", "", topics)
        different = dead_letter(make_raw(b"{", key=other), "invalid_json", "", topics)

        assert first.key_b64 == different.key_b64
        assert first.id == again.id != different.id

    def test_headers_are_summarised_by_name_and_size_never_by_value(self, topics: Topics) -> None:
        """At most 32 header names, each with its value's size; values never appear."""
        headers = tuple((f"x-h{i}", SECRET.encode() * i) for i in range(100))

        letter = dead_letter(make_raw(b"{", headers=headers), "invalid_json", "", topics)

        assert letter.header_count == 100
        assert letter.headers is not None
        assert len(letter.headers) == DEAD_LETTER_HEADERS
        assert letter.headers[3] == HeaderSummary(name="x-h3", size=3 * len(SECRET.encode()))
        assert SECRET not in letter.model_dump_json()

    def test_header_names_that_are_not_protocol_tokens_are_masked(self) -> None:
        """A header name with spaces or other text is masked; a long token is cut to 64."""
        assert header_name("traceparent") == "traceparent"
        assert header_name("ce_time") == "ce_time"
        assert header_name(SECRET) == "<masked>"
        assert header_name("Jeanne Dupont") == "<masked>"
        assert header_name("x" * 500) == "x" * HEADER_NAME_CHARS

    def test_any_record_gives_a_dead_letter_under_the_bound(self, topics: Topics) -> None:
        """A 1 MiB key, a 5 MiB value, 10,000 headers with long names and a huge detail
        still give a dead letter whose JSON is under DEAD_LETTER_MAX_JSON (< 1 MiB)."""
        headers = tuple(
            (("h" * 300) if i % 2 else ("\x00" * 300), b"v" * 1000) for i in range(10_000)
        )
        record = make_raw(b"\xff" * (5 << 20), key=b"\x00" * (1 << 20), headers=headers)

        letter = dead_letter(record, "oversize", "\x01" * 100_000, topics)

        size = len(letter.model_dump_json().encode())
        assert size < DEAD_LETTER_MAX_JSON < 1 << 20
        assert size > 340_000  # the value's head is really there
        assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter

    def test_a_huge_key_no_longer_becomes_the_dead_letters_kafka_key(self, topics: Topics) -> None:
        """Only a whole, well-formed victim reference is reused as the dead letter's key."""
        short = dead_letter(make_raw(b"{"), "invalid_json", "", topics)
        cut = dead_letter(make_raw(b"{", key=b"V-ABCD" * 1000), "invalid_json", "", topics)

        assert output_key(short) == VICTIM_REF
        assert output_key(cut) is None

    def test_a_huge_key_through_the_processor(self, engine: Engine, topics: Topics) -> None:
        """A report keyed by 900 KB is refused as key_mismatch with a bounded dead letter."""
        record = make_raw(b'{"type": 1}', key=BIG_KEY)

        (letter,) = Processor(engine, topics).feed(record).outputs

        assert isinstance(letter, DeadLetter)
        assert letter.key_size == len(BIG_KEY)
        assert len(letter.model_dump_json()) < 10_000


class TestMinimalDeadLetter:
    def test_keeps_identity_coordinates_sizes_and_digests_without_payload(
        self, topics: Topics
    ) -> None:
        """Same id, reason, coordinates, sizes and digests; no key, value or header names."""
        record = make_raw(
            b"\xff" * 300_000, key=BIG_KEY, partition=2, offset=7, headers=(("a", b"b"),)
        )
        full = dead_letter(record, "oversize", "too big", topics)

        minimal = minimal_dead_letter(full, "MessageSizeTooLargeError")

        assert (minimal.id, minimal.reason, minimal.time) == (full.id, full.reason, full.time)
        assert (minimal.source_topic, minimal.source_partition, minimal.source_offset) == (
            "dv.reports.v1",
            2,
            7,
        )
        assert (minimal.key_size, minimal.key_sha256, minimal.value_size, minimal.value_sha256) == (
            full.key_size,
            full.key_sha256,
            full.value_size,
            full.value_sha256,
        )
        assert (minimal.key_b64, minimal.value_b64, minimal.headers) == (None, "", None)
        assert minimal.header_count == 1
        assert minimal.detail.startswith(f"{full.detail}; payload not kept")
        assert "MessageSizeTooLargeError" in minimal.detail
        body = orjson.loads(minimal.model_dump_json())
        assert len(orjson.dumps(body)) < 2_000
