"""Producers check delivery, on a real broker that is stopped part-way through a replay.

Each test starts an embedded broker of its own (not the session one) and stops it
from the player's progress callback. kafka-python's ``send`` only queues a record,
so the play goes on to the end; what the stopped broker never acknowledged must be
counted, reported, and make ``triage replay`` exit non-zero, all within bounded time.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import triage.replay.player as player
from tests.integration.kafka_helpers import settings_for
from triage.broker import EmbeddedBroker
from triage.broker.provision import provision
from triage.cli import cli
from triage.generate import GeneratorConfig, generate_log
from triage.pipeline.engine import Engine
from triage.replay.player import close_producer, make_producer, play
from triage.replay.records import LogRecord, write_log
from triage.settings import TriageSettings

pytestmark = pytest.mark.integration

STOP_AFTER = 200
DELIVERY_TIMEOUT = 3.0


@pytest.fixture
def doomed_broker() -> Iterator[EmbeddedBroker]:
    """A broker of this test's own, which the test stops part-way (killed after 1 s)."""
    with EmbeddedBroker(startup_timeout=10.0, stop_timeout=1.0) as embedded:
        yield embedded


@pytest.fixture(scope="module")
def records() -> list[LogRecord]:
    """A small synthetic log (1,352 records)."""
    config = GeneratorConfig(victims=200, days=30, start=date(2026, 3, 2), seed=12, bad_rate=0.02)
    return list(generate_log(config, Engine()))


def pipeline(broker: EmbeddedBroker) -> TriageSettings:
    """Provisioned, uniquely prefixed topics on ``broker``."""
    settings = settings_for(broker.bootstrap, f"d{uuid.uuid4().hex[:8]}.")
    provision(settings)
    return settings


def stopping(broker: EmbeddedBroker, after: int) -> Callable[[int, LogRecord], None]:
    """A progress callback that stops ``broker`` once ``after`` records have been sent."""

    def on_sent(count: int, _record: LogRecord) -> None:
        if count == after:
            broker.stop()

    return on_sent


class TestDeliveryToAStoppedBroker:
    def test_play_counts_what_the_stopped_broker_never_acknowledged(
        self, doomed_broker: EmbeddedBroker, records: list[LogRecord]
    ) -> None:
        """Stopping the broker after a few hundred records leaves the rest undelivered: the
        play reports them, and neither it nor closing the producer waits unboundedly."""
        settings = pipeline(doomed_broker)
        threads = set(threading.enumerate())
        producer = make_producer(doomed_broker.bootstrap)
        began = time.monotonic()
        try:
            result = play(
                records, producer, settings.topics, speed=None,
                partitions=settings.partitions,
                on_sent=stopping(doomed_broker, STOP_AFTER),
                delivery_timeout=DELIVERY_TIMEOUT,
            )  # fmt: skip
            played = time.monotonic() - began
        finally:
            close_producer(producer, timeout=1.0)
        closed = time.monotonic() - began - played

        assert result.records == len(records)
        assert result.sent - STOP_AFTER <= result.undelivered <= result.sent
        assert result.error is not None
        assert result.error.split(":")[0].isidentifier()  # a type name, no record text
        assert played < DELIVERY_TIMEOUT + 15
        assert closed < 15
        left = [t.name for t in set(threading.enumerate()) - threads if t.is_alive()]
        assert not [name for name in left if name.endswith("-network-thread")], left

    def test_replay_command_exits_non_zero(
        self,
        doomed_broker: EmbeddedBroker,
        records: list[LogRecord],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """``triage replay --bootstrap`` onto a broker stopped part-way prints one plain line
        with the undelivered count and exits 1, instead of reporting success."""
        settings = pipeline(doomed_broker)
        log = tmp_path / "log.jsonl"
        write_log(log, records)
        real_play = player.play

        def play_then_stop(*args: Any, **kwargs: Any) -> player.PlayResult:
            progress = kwargs.pop("on_sent")
            halt = stopping(doomed_broker, STOP_AFTER)

            def on_sent(count: int, record: LogRecord) -> None:
                progress(count, record)
                halt(count, record)

            return real_play(*args, on_sent=on_sent, **kwargs)

        monkeypatch.setattr(player, "play", play_then_stop)
        result = CliRunner(env={"TRIAGE_TOPIC_PREFIX": settings.topic_prefix}).invoke(
            cli,
            [
                "replay", str(log), "--bootstrap", doomed_broker.bootstrap,
                "--delivery-timeout", str(DELIVERY_TIMEOUT),
            ],
        )  # fmt: skip

        assert result.exit_code == 1, result.output
        line = result.stderr.splitlines()[-1]
        match = re.fullmatch(r"error: (\d+) of (\d+) records were not delivered \((\w+).*\)", line)
        assert match, line
        undelivered, sent = int(match[1]), int(match[2])
        assert sent == len(records) + settings.partitions
        assert sent - STOP_AFTER <= undelivered <= sent
        assert "published" not in result.stdout
