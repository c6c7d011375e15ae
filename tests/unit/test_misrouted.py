"""Read directly, a record on a partition its key does not belong to is re-published to
its key's partition (issue 13: upstream producers with another partitioner)."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.shell_fakes import FakeKafka, Message
from tests.unit.test_shell import DefaultPartitioner  # noqa: F401  (imports kafka quietly)
from triage.events.inputs import InputEvent
from triage.events.wire import to_millis
from triage.observability.metrics import TriageMetrics
from triage.pipeline.engine import Engine
from triage.streaming.shell import FORWARD_MAX_BYTES, StreamShell, partition_of
from triage.streaming.upstream import FORWARD_HEADERS
from triage.testing import VICTIM_REF, make_report
from triage.topics import REPORT_TYPES, Topics

PARTITIONS = 4
HOME = partition_of(VICTIM_REF.encode(), PARTITIONS)
"""The partition the default victim belongs to."""
ELSEWHERE = (HOME + 1) % PARTITIONS


def stranger_on(partition: int) -> str:
    """A victim reference whose key belongs to ``partition``."""
    for n in range(10_000):
        ref = f"V-{n:06d}"
        if partition_of(ref.encode(), PARTITIONS) == partition:
            return ref
    raise AssertionError("no such key")


def origin_headers(partition: int, offset: int) -> list[tuple[str, bytes]]:
    """The forward headers naming a reports-topic record at ``partition``/``offset``."""
    values = (Topics().reports.encode(), str(partition).encode(), str(offset).encode())
    return list(zip(FORWARD_HEADERS, values, strict=True))


@dataclass
class FakeReroute:
    """Records re-publications (``send_to``); deliveries complete at once."""

    sent: list[tuple[str, int, bytes | None, bytes | None, list[tuple[str, bytes]], float]] = field(
        default_factory=list
    )

    async def __call__(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        timestamp: float,
    ) -> asyncio.Future[None]:
        self.sent.append((topic, partition, key, value, headers, timestamp))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def message_of(
    event: InputEvent, offset: int, partition: int, headers: Any = (), value: bytes | None = None
) -> Message:
    topics = Topics()
    topic = topics.reports if event.type in REPORT_TYPES else topics.updates
    return Message(
        topic=topic,
        partition=partition,
        offset=offset,
        key=event.victim_ref.encode(),
        value=value if value is not None else event.model_dump_json().encode(),
        timestamp=to_millis(event.time) / 1000,
        headers=headers,
    )


@pytest.fixture(name="kafka")
def _kafka() -> FakeKafka:
    return FakeKafka()


@pytest.fixture(name="reroute")
def _reroute() -> FakeReroute:
    return FakeReroute()


@pytest.fixture(name="metrics")
def _metrics() -> TriageMetrics:
    return TriageMetrics()


@pytest.fixture(name="shell")
def _shell(
    engine: Engine, kafka: FakeKafka, reroute: FakeReroute, metrics: TriageMetrics
) -> StreamShell:
    return StreamShell(
        engine, Topics(), {}, kafka.send, kafka.ack, partitions=PARTITIONS,
        reroute=reroute, metrics=metrics,
    )  # fmt: skip


class TestMisroutedRecords:
    async def test_a_report_on_another_partition_goes_to_its_own(
        self, shell: StreamShell, kafka: FakeKafka, reroute: FakeReroute, metrics: TriageMetrics
    ) -> None:
        """Not decided where it was found: re-published unchanged (key, value, headers,
        timestamp to the millisecond) to its key's partition with where it came from,
        acknowledged once delivered, and counted."""
        report = make_report()
        message = message_of(report, 7, ELSEWHERE, headers=[("ce_id", report.id.encode())])

        await shell.on_message(message, "t7")
        await shell.flush()

        assert kafka.sent == []
        ((topic, partition, key, value, headers, timestamp),) = reroute.sent
        assert (topic, partition, key, value) == (
            Topics().reports,
            HOME,
            message.key,
            message.value,
        )
        assert headers == [
            ("ce_id", report.id.encode()),
            *zip(FORWARD_HEADERS, (topic.encode(), str(ELSEWHERE).encode(), b"7"), strict=True),
        ]
        assert round(timestamp * 1000) == round(message.timestamp * 1000)
        assert kafka.acked == ["t7"]
        assert shell.processed == 0
        assert metrics.misrouted._value.get() == 1

    async def test_the_copy_is_decided_on_its_partition_and_named_by_its_origin(
        self, shell: StreamShell, kafka: FakeKafka, reroute: FakeReroute
    ) -> None:
        """The re-published copy, read on the victim's partition, is decided there; a
        copy that is refused is dead-lettered under the partition and offset where
        upstream put it."""
        report = make_report()
        await shell.on_message(message_of(report, 7, ELSEWHERE), "t7")
        _topic, partition, key, value, headers, _ts = reroute.sent[0]
        copy = Message(
            Topics().reports, partition, 0, key, value or b"", report.time.timestamp(), headers
        )

        await shell.on_message(copy, "c0")
        await shell.flush()

        assert kafka.types() == ["triage.decision", "triage.queue_record"]
        assert len(reroute.sent) == 1  # not forwarded again
        assert sorted(kafka.acked) == ["c0", "t7"]

        bad = Message(
            Topics().reports, partition, 1, key, b"{not json", report.time.timestamp(),
            origin_headers(3, 41),
        )  # fmt: skip
        await shell.on_message(bad, "c1")
        await shell.flush()
        letter = kafka.bodies()[-1]
        assert letter["type"] == "triage.dead_letter"
        assert (letter["source_partition"], letter["source_offset"]) == (3, 41)
        assert base64.b64decode(letter["value_b64"]) == b"{not json"

    async def test_acknowledgements_stay_in_offset_order(
        self, shell: StreamShell, kafka: FakeKafka, reroute: FakeReroute
    ) -> None:
        """A partition holding a misrouted record and its own records commits in offset
        order, whichever is done first."""
        own = make_report(victim_ref=stranger_on(ELSEWHERE))
        misrouted = make_report()

        await shell.on_message(message_of(misrouted, 0, ELSEWHERE), "m0")
        await shell.on_message(message_of(own, 1, ELSEWHERE), "o1")
        await shell.on_message(message_of(misrouted, 2, ELSEWHERE), "m2")
        await shell.flush()

        assert kafka.acked == ["m0", "o1", "m2"]
        assert len(reroute.sent) == 2

    async def test_without_a_reroute_records_are_processed_where_they_are(
        self, engine: Engine, kafka: FakeKafka
    ) -> None:
        """A shell given no way to re-publish (and a record already re-published once)
        is processed where it is found: nothing is ever forwarded twice."""
        shell = StreamShell(engine, Topics(), {}, kafka.send, kafka.ack, partitions=PARTITIONS)
        await shell.on_message(message_of(make_report(), 0, ELSEWHERE), "t0")
        await shell.flush()
        assert kafka.types() == ["triage.decision", "triage.queue_record"]

    async def test_a_forwarded_record_is_not_forwarded_again(
        self, shell: StreamShell, kafka: FakeKafka, reroute: FakeReroute
    ) -> None:
        """A record carrying the forward headers is processed even on a wrong partition
        (the partition count changed between two workers): no forwarding loop."""
        report = make_report()
        origin = [
            (name, v)
            for name, v in zip(
                FORWARD_HEADERS, (Topics().reports.encode(), b"1", b"5"), strict=True
            )
        ]
        await shell.on_message(message_of(report, 0, ELSEWHERE, headers=origin), "t0")
        await shell.flush()
        assert reroute.sent == []
        assert kafka.types() == ["triage.decision", "triage.queue_record"]

    async def test_a_huge_invalid_record_is_dead_lettered_where_it_is(
        self, shell: StreamShell, kafka: FakeKafka, reroute: FakeReroute
    ) -> None:
        """Too big to re-publish and refused by ingestion anyway: dead-lettered on the
        partition where it was found (it touches no victim's state)."""
        huge = b'{"x": "' + b"a" * FORWARD_MAX_BYTES + b'"}'
        await shell.on_message(message_of(make_report(), 0, ELSEWHERE, value=huge), "t0")
        await shell.flush()
        assert reroute.sent == []
        assert kafka.types() == ["triage.dead_letter"]
        assert kafka.acked == ["t0"]
