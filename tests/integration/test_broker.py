"""The embedded broker and topic provisioning, against a real broker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType

from triage.broker import (
    BrokerError,
    EmbeddedBroker,
    TopicSpec,
    end_offsets,
    ensure_topics,
    wait_for_broker,
)

pytestmark = pytest.mark.integration

TopicFactory = Callable[..., str]


class Broker(Protocol):
    """What the ``broker`` fixture yields: an EmbeddedBroker or an external address."""

    @property
    def bootstrap(self) -> str: ...


def _process_gone(pid: int, within: float = 3.0) -> bool:
    """True once ``pid`` no longer runs (absent, or a zombie nobody reaped yet)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in {"Z", "X"}:
            return True
        time.sleep(0.05)
    return False


class TestEmbeddedBroker:
    def test_answers_metadata_on_its_advertised_address(self, broker: Broker) -> None:
        """The broker answers a metadata request and advertises the address we connect to."""
        wait_for_broker(broker.bootstrap, timeout=5.0)
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=5000)
        try:
            brokers = admin.describe_cluster()["brokers"]
        finally:
            admin.close()
        assert brokers
        if isinstance(broker, EmbeddedBroker):
            assert [f"{b['host']}:{b['port']}" for b in brokers] == [broker.bootstrap]

    def test_stop_leaves_no_process(self) -> None:
        """After stop() the broker process is gone, and stopping again is harmless."""
        embedded = EmbeddedBroker(startup_timeout=10.0)
        with embedded:
            pid = embedded.pid
            assert pid is not None
            assert Path(f"/proc/{pid}").exists()
        assert embedded.pid is None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        embedded.stop()
        with pytest.raises(BrokerError, match="not running"):
            _ = embedded.bootstrap

    @pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
    def test_dies_with_a_killed_parent(self) -> None:
        """If the process that started the broker is SIGKILLed, the broker dies too."""
        script = (
            "import time\n"
            "from triage.broker import EmbeddedBroker\n"
            "print(EmbeddedBroker().start().pid, flush=True)\n"
            "time.sleep(30)\n"
        )
        parent = subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=Path.cwd()
        )
        try:
            assert parent.stdout is not None
            pid = int(parent.stdout.readline())
        finally:
            parent.kill()
            parent.wait()
            if parent.stdout is not None:
                parent.stdout.close()
        assert _process_gone(pid)

    def test_silent_binary_fails_with_its_log_tail(self, tmp_path: Path) -> None:
        """A broker that never answers raises BrokerError quoting the end of its log."""
        fake = tmp_path / "fake-tansu"
        fake.write_text("#!/bin/sh\necho 'fake broker: not listening'\nexec sleep 30\n")
        fake.chmod(0o755)
        embedded = EmbeddedBroker(binary=str(fake), startup_timeout=0.5, stop_timeout=1.0)
        with pytest.raises(BrokerError, match="fake broker: not listening"):
            embedded.start()
        assert embedded.pid is None


class TestEnsureTopics:
    def test_second_call_creates_nothing(self, broker: Broker) -> None:
        """Provisioning twice creates the missing topics once and then nothing."""
        suffix = os.urandom(4).hex()
        specs = [
            TopicSpec(f"test.reports.{suffix}", 4),
            TopicSpec(f"test.state.{suffix}", 4, compacted=True),
            TopicSpec(f"test.deadletter.{suffix}", 1, retention_ms=604_800_000),
        ]
        first = ensure_topics(broker.bootstrap, specs)
        second = ensure_topics(broker.bootstrap, specs)
        assert first == sorted(s.name for s in specs)
        assert second == []
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        try:
            described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(first)}
            configs = admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs],
                config_filter="all",
            )["topic"]
            admin.delete_topics(first)
        finally:
            admin.close()
        assert described == {s.name: s.partitions for s in specs}
        assert configs[specs[1].name]["cleanup.policy"]["value"] == "compact"
        assert configs[specs[2].name]["retention.ms"]["value"] == "604800000"

    def test_partition_mismatch_is_an_error(
        self, broker: Broker, topic_factory: TopicFactory
    ) -> None:
        """An existing topic with another partition count fails provisioning."""
        name = topic_factory(partitions=2)
        with pytest.raises(BrokerError, match="has 2 partitions, expected 4"):
            ensure_topics(broker.bootstrap, [TopicSpec(name, 4)])


class TestRecordRoundTrip:
    async def test_headers_key_value_and_timestamp_survive(
        self, broker: Broker, topic_factory: TopicFactory
    ) -> None:
        """A record produced by kafka-python comes back through aiokafka unchanged."""
        topic = topic_factory(partitions=1)
        # Duplicate keys and empty values are legal Kafka headers and must survive too.
        headers = [("ce_type", b"dv.report.v1"), ("dup", b"1"), ("dup", b"2"), ("empty", b"")]
        sent = {"key": b"victim-42", "value": b'{"n": 1}', "timestamp_ms": 1_780_000_000_123}
        with KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all") as producer:
            metadata = producer.send(topic, headers=headers, **sent).get(timeout=5)
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, request_timeout_ms=5000)
        await consumer.start()
        try:
            partition = TopicPartition(topic, metadata.partition)
            consumer.assign([partition])
            consumer.seek(partition, metadata.offset)
            record = await asyncio.wait_for(consumer.getone(), timeout=5)
        finally:
            await consumer.stop()
        assert (record.key, record.value) == (sent["key"], sent["value"])
        assert list(record.headers) == headers
        assert (record.timestamp, record.timestamp_type) == (sent["timestamp_ms"], 0)


class TestEndOffsets:
    def test_counts_every_record_of_multi_record_batches(
        self, broker: Broker, topic_factory: TopicFactory
    ) -> None:
        """End offsets count every record, also when the last batch holds many of them."""
        topic = topic_factory(partitions=2)
        for batch in (1, 10, 6):  # Tansu's ListOffsets would say 12 here, not 17
            with KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=50) as producer:
                for i in range(batch):
                    producer.send(topic, value=str(i).encode(), partition=0)
        assert end_offsets(broker.bootstrap, [topic]) == {(topic, 0): 17, (topic, 1): 0}
