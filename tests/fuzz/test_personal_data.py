"""Personal data on the dead-letter path: whatever the input, names, phone numbers,
addresses and free text never reach a dead letter's ``detail``, a log line or an
error message.

Hypothesis places sentinel personal values at arbitrary positions of valid events of
every type: as values of known fields (right or wrong type), as unknown keys at any
depth, inside lists, as huge strings, as the Kafka key; sometimes the bytes are cut
or spliced too. The records go through the worker's shell (fake Kafka, the real
structlog pipeline at DEBUG) and through ``triage publish``'s validation. The dead
letters must still keep the original bytes: the sentinels are there, in base64.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import Any
from unittest import mock

import orjson
import pytest
import structlog
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.strategies import Damaged, damaged_bodies, damaged_records
from tests.shell_fakes import FakeKafka, Message
from triage.cli import cli
from triage.events.wire import to_millis
from triage.observability.logging import configure_logging
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import RawRecord
from triage.reliability.cases import SENTINEL_MARK
from triage.topics import Topics

with warnings.catch_warnings():  # kafka-python's import-time DeprecationWarning
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from triage.streaming.shell import StreamShell, partition_of

PARTITIONS = 4


async def through_the_shell(engine: Engine, records: Sequence[RawRecord]) -> list[dict[str, Any]]:
    """Feed ``records`` to a shell on fake Kafka; every record it sent, parsed."""
    kafka = FakeKafka()
    shell = StreamShell(engine, Topics(), {}, kafka.send, kafka.ack, partitions=PARTITIONS)
    for offset, record in enumerate(records):
        partition = partition_of(record.key, PARTITIONS) if record.key else 0
        stamp = to_millis(record.timestamp) / 1000
        message = Message(record.topic, partition, offset, record.key, record.value, stamp)
        await shell.on_message(message, offset)
    await shell.tick()
    await shell.flush()
    return kafka.bodies()


@pytest.fixture(name="log_stream", scope="module")
def _log_stream() -> Iterator[io.StringIO]:
    """The real logging pipeline (JSON, DEBUG) writing into a stream; restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("json", "DEBUG")
    (ours,) = root.handlers
    stream = io.StringIO()
    ours.setStream(stream)  # type: ignore[attr-defined]
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("aiohttp").setLevel(logging.NOTSET)
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()


def decoded_lines(text: str) -> str:
    """The log lines with JSON escapes decoded (the renderer escapes non-ASCII)."""
    return json.dumps([json.loads(line) for line in text.splitlines()], ensure_ascii=False)


class TestDeadLetterPath:
    @settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(damaged=st.lists(damaged_records(), min_size=1, max_size=6))
    def test_details_and_log_lines_never_carry_personal_values(
        self, engine: Engine, log_stream: io.StringIO, damaged: list[Damaged]
    ) -> None:
        """Through the worker's shell: each dead letter's detail and every log line
        (DEBUG included) are free of the sentinels, which are still in the dead
        letters' base64 copies of the input."""
        log_stream.seek(0)
        log_stream.truncate()
        records = [d.record for d in damaged]

        sent = asyncio.run(through_the_shell(engine, records))

        text = log_stream.getvalue()
        assert SENTINEL_MARK not in text
        assert SENTINEL_MARK not in decoded_lines(text)
        letters = [s for s in sent if s["type"] == "triage.dead_letter"]
        assert sum('"event": "dead_letter"' in line for line in text.splitlines()) == len(letters)
        for letter in letters:
            assert SENTINEL_MARK not in letter["detail"]
        # The sentinels are not lost: dead letters keep the input bytes exactly.
        assert {base64.b64decode(letter["value_b64"]) for letter in letters} <= {
            r.value for r in records
        }

    @settings(max_examples=150)
    @given(damaged=damaged_bodies())
    def test_publish_errors_never_carry_personal_values(
        self, damaged: tuple[str, object, tuple[str, ...]]
    ) -> None:
        """``triage publish`` refuses an invalid event with one line naming the reason
        and fields, never the values. (Valid events would be published: the producer is
        replaced by one that refuses, so no network is involved.)"""
        _topic, body, _personal = damaged

        with mock.patch("triage.replay.player.make_producer", side_effect=_NoBroker):
            result = CliRunner().invoke(
                cli, ["publish", "-", "--bootstrap", "127.0.0.1:9"], input=orjson.dumps(body)
            )

        assert result.exit_code != 0
        assert SENTINEL_MARK not in result.output
        assert SENTINEL_MARK not in str(result.exception)


class _NoBroker(Exception):
    """What the stand-in producer raises."""
