"""The shell and dead letters: headers reach them, and a dead letter the broker refuses
is replaced by its minimal form (same id) instead of stopping the worker."""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import dataclass
from typing import Any

import pytest

# kafka-python warns while it is imported (the shell imports it): see test_shell.py.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    import kafka  # noqa: F401

from tests.shell_fakes import FakeKafka, Message
from triage.events.wire import to_millis
from triage.observability.metrics import TriageMetrics
from triage.pipeline.engine import Engine
from triage.streaming.shell import StreamShell, headers_of
from triage.testing import BASE_TIME, VICTIM_REF, make_report
from triage.topics import Topics

PARTITIONS = 4
STAMP = to_millis(BASE_TIME) / 1000


class TooLarge(Exception):
    """What a Kafka client raises for a record over the size limit (not retriable)."""

    retriable = False


class Timeout(Exception):
    """A transient error a Kafka client would retry."""

    retriable = True


@dataclass
class LimitedKafka(FakeKafka):
    """A fake Kafka whose dead-letter topic refuses records over ``limit`` bytes, when
    sent (``at="send"``) or on delivery (``at="delivery"``), with ``error``."""

    limit: int = 10_000
    at: str = "delivery"
    error: type[Exception] = TooLarge
    refuse_all_dead_letters: bool = False

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]],
        timestamp: float,
    ) -> asyncio.Future[None]:
        """Refuse dead letters over the limit (or all of them); send the rest."""
        refused = topic == Topics().deadletter and (
            self.refuse_all_dead_letters or len(value) > self.limit
        )
        if refused and self.at == "send":
            raise self.error("record too large")
        delivery = await super().send(topic, key, value, headers, timestamp)
        if refused:
            self.sent.pop()  # a failed delivery: the broker did not keep it
            failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            failed.set_exception(self.error("record too large"))
            return failed
        return delivery


def bad_message(offset: int, value: bytes, headers: Any = ()) -> Message:
    """``value`` on the reports topic, keyed by the default victim."""
    return Message(Topics().reports, 0, offset, VICTIM_REF.encode(), value, STAMP, headers)


def good_message(offset: int) -> Message:
    """A valid report for another victim."""
    report = make_report(victim_ref="V-0002B3")
    return Message(
        Topics().reports, 0, offset, b"V-0002B3", report.model_dump_json().encode(), STAMP
    )


def shell_on(kafka: FakeKafka, engine: Engine, **kwargs: Any) -> StreamShell:
    """A shell sending to ``kafka``."""
    return StreamShell(engine, Topics(), {}, kafka.send, kafka.ack, partitions=PARTITIONS, **kwargs)


class TestRefusedDeadLetters:
    @pytest.mark.parametrize("at", ["send", "delivery"])
    async def test_a_refused_dead_letter_is_replaced_by_its_minimal_form(
        self, engine: Engine, at: str
    ) -> None:
        """A dead letter over the broker's limit (refused when sent or on delivery) goes
        out as a minimal dead letter with the same id; the input and the next report are
        acknowledged."""
        kafka = LimitedKafka(at=at)
        metrics = TriageMetrics()
        shell = shell_on(kafka, engine, metrics=metrics)

        await shell.on_message(bad_message(0, b"\xff" * 100_000), "bad")
        await shell.on_message(good_message(1), "good")
        await shell.flush()

        (letter,) = [body for body in kafka.bodies() if body["type"] == "triage.dead_letter"]
        assert (letter["reason"], letter["value_b64"], letter["key_b64"]) == (
            "oversize",
            "",
            None,
        )
        assert letter["value_size"] == 100_000
        assert "payload not kept" in letter["detail"]
        assert "TooLarge" in letter["detail"]
        assert "triage.decision" in kafka.types()
        assert kafka.acked == ["bad", "good"]
        assert metrics.registry.get_sample_value("triage_dead_letters_reduced_total") == 1

    async def test_the_minimal_form_has_the_full_ones_id(self, engine: Engine) -> None:
        """The minimal dead letter carries the id the full one would have had."""
        full, limited = FakeKafka(), LimitedKafka()
        for kafka in (full, limited):
            shell = shell_on(kafka, engine)
            await shell.on_message(bad_message(0, b"\xff" * 100_000), "bad")
            await shell.flush()

        assert [b["id"] for b in limited.bodies()] == [b["id"] for b in full.bodies()]

    async def test_a_retriable_failure_stops_the_worker(self, engine: Engine) -> None:
        """A retriable error is not a reason to drop the payload: the flush raises and
        nothing is acknowledged (a restart sends the full dead letter again)."""
        kafka = LimitedKafka(error=Timeout)
        shell = shell_on(kafka, engine)
        await shell.on_message(bad_message(0, b"\xff" * 100_000), "bad")

        with pytest.raises(Timeout):
            await shell.flush()

        assert kafka.acked == []

    @pytest.mark.parametrize("at", ["send", "delivery"])
    async def test_if_the_minimal_form_is_refused_too_the_worker_stops(
        self, engine: Engine, at: str
    ) -> None:
        """A dead-letter topic that refuses even the minimal form stops the worker: the
        record is never acknowledged without a dead letter."""
        kafka = LimitedKafka(at=at, refuse_all_dead_letters=True)
        shell = shell_on(kafka, engine)

        async def handle() -> None:
            await shell.on_message(bad_message(0, b"{"), "bad")
            await shell.flush()

        with pytest.raises(TooLarge):
            await handle()

        assert kafka.acked == []

    async def test_a_small_dead_letter_goes_out_whole(self, engine: Engine) -> None:
        """Under the limit, the dead letter is sent as made, with its payload."""
        kafka = LimitedKafka()
        shell = shell_on(kafka, engine)

        await shell.on_message(bad_message(0, b"{"), "bad")
        await shell.flush()

        (letter,) = kafka.bodies()
        assert (letter["value_b64"], kafka.acked) == ("ew==", ["bad"])


class TestHeadersReachDeadLetters:
    @pytest.mark.parametrize(
        "headers",
        [[("ce_id", b"x1"), ("traceparent", b"00-ab")], {"ce_id": b"x1", "traceparent": b"00-ab"}],
        ids=["pairs", "mapping"],
    )
    async def test_consumed_headers_are_summarised(self, engine: Engine, headers: Any) -> None:
        """Headers as a list of pairs or a mapping end in the dead letter as names and sizes."""
        kafka = FakeKafka()
        shell = shell_on(kafka, engine)

        await shell.on_message(bad_message(0, b"{", headers), "bad")

        (letter,) = kafka.bodies()
        assert letter["header_count"] == 2
        assert letter["headers"] == [
            {"name": "ce_id", "size": 2},
            {"name": "traceparent", "size": 5},
        ]

    def test_headers_of_reads_every_form(self) -> None:
        """None, pairs, a mapping, bytes names and null values all become (str, bytes) pairs."""
        assert headers_of(None) == ()
        assert headers_of([]) == ()
        assert headers_of([(b"a", None), ("b", b"1")]) == (("a", b""), ("b", b"1"))
        assert headers_of({"c": b"2"}) == (("c", b"2"),)
