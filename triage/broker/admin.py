"""Topic provisioning and broker readiness, through kafka-python's admin client.

kafka-python errors never leave this module: they become :class:`BrokerError`,
whose messages name the bootstrap address, topics and Kafka error codes only.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from triage.errors import BrokerError

__all__ = [
    "BrokerError",
    "TopicSpec",
    "end_offsets",
    "ensure_topics",
    "group_lag",
    "unreachable",
    "wait_for_broker",
]

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_TOPIC_ALREADY_EXISTS = 36  # Kafka error code TOPIC_ALREADY_EXISTS
_UNKNOWN_TOPIC = 3  # Kafka error code UNKNOWN_TOPIC_OR_PARTITION


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """What a topic must look like: name, partition count, compaction and retention.

    ``retention_ms=None`` keeps the broker default; ``-1`` means keep forever.
    """

    name: str
    partitions: int
    compacted: bool = False
    retention_ms: int | None = None
    replication_factor: int = -1
    """-1: the broker's ``default.replication.factor`` (Kafka >= 2.4)."""
    any_count: bool = False
    """An existing topic may have another partition count (an input topic made by
    upstream: the worker re-partitions it); ``partitions`` is only used to create it."""

    def __post_init__(self) -> None:
        if not _TOPIC_NAME.fullmatch(self.name) or self.name in {".", ".."}:
            raise ValueError(f"invalid Kafka topic name: {self.name!r}")
        # Tansu accepts 0 partitions without complaint, so we refuse it here.
        if self.partitions < 1:
            raise ValueError(f"topic {self.name}: partitions must be >= 1")
        if self.retention_ms is not None and self.retention_ms < -1:
            raise ValueError(f"topic {self.name}: retention_ms must be -1 or >= 0")

    def configs(self) -> dict[str, str]:
        """Return the topic-level configs to send with CreateTopics."""
        configs = {"cleanup.policy": "compact" if self.compacted else "delete"}
        if self.retention_ms is not None:
            configs["retention.ms"] = str(self.retention_ms)
        return configs


def _host_ports(bootstrap: str) -> list[tuple[str, int]]:
    """Every ``host:port`` of a bootstrap list, in order."""
    addresses = []
    for item in (part.strip() for part in bootstrap.split(",")):
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"bootstrap must be host:port,..., got {bootstrap!r}")
        addresses.append((host.strip("[]") or "localhost", int(port)))
    return addresses


def _attempt(deadline: float) -> float:
    """Seconds one connection attempt may take: at most 1 s, so that an address that
    drops packets leaves time for the next one."""
    return min(deadline - time.monotonic(), 1.0)


def unreachable(bootstrap: str, timeout: float, source: str | None = None) -> BrokerError:
    """The one-line error for a broker that did not answer within ``timeout`` seconds.

    ``source`` names where the address came from (``TRIAGE_KAFKA_BOOTSTRAP``,
    ``--bootstrap``), so that the reader knows what to correct.
    """
    origin = f" ({source})" if source else ""
    return BrokerError(f"cannot reach the Kafka broker at {bootstrap} within {timeout:g} s{origin}")


def _port_open(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=max(timeout, 0.01)):
            return True
    except OSError:
        return False


@contextmanager
def _admin(
    bootstrap: str, client_id: str, security: Mapping[str, Any] | None, timeout: float
) -> Iterator[KafkaAdminClient]:
    """Yield a connected admin client, translating kafka-python errors."""
    try:
        client = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            bootstrap_timeout_ms=max(int(timeout * 1000), 100),
            request_timeout_ms=max(int(timeout * 1000), 1000),
            **(security or {}),
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot reach the Kafka broker at {bootstrap}: {exc}") from exc
    try:
        yield client
    except KafkaError as exc:
        raise BrokerError(f"Kafka broker at {bootstrap} refused a request: {exc}") from exc
    finally:
        client.close()


def wait_for_broker(
    bootstrap: str,
    timeout: float = 10.0,
    *,
    client_id: str = "triage-admin",
    security: Mapping[str, Any] | None = None,
    source: str | None = None,
) -> None:
    """Block until the broker at ``bootstrap`` answers a metadata request.

    The TCP ports are polled first (any address of the list will do): kafka-python
    3.0.12 leaks a socket and an IO thread each time an admin client fails to
    bootstrap, so we build one only once something is listening. Raises
    :class:`BrokerError` after about ``timeout`` s (see :func:`unreachable`;
    ``source`` names where the address came from).
    """
    deadline = time.monotonic() + timeout
    addresses = _host_ports(bootstrap)
    while not any(_port_open(h, p, _attempt(deadline)) for h, p in addresses):
        if time.monotonic() >= deadline:
            raise unreachable(bootstrap, timeout, source)
        time.sleep(0.05)
    with _admin(bootstrap, client_id, security, max(deadline - time.monotonic(), 0.5)) as admin:
        if not admin.describe_cluster().get("brokers"):
            raise BrokerError(f"the broker at {bootstrap} reports no brokers in its metadata")


def ensure_topics(
    bootstrap: str,
    specs: Sequence[TopicSpec],
    *,
    client_id: str = "triage-admin",
    security: Mapping[str, Any] | None = None,
    timeout: float = 10.0,
) -> list[str]:
    """Create the topics in ``specs`` that are missing; return the names created.

    Idempotent: existing topics (including ones created concurrently) are left
    alone. Afterwards every topic must be visible in metadata, with a leader per
    partition and the expected partition count, or :class:`BrokerError` is raised.
    Configs of existing topics are not compared (Tansu reports every config as a
    default). ``security`` holds extra kafka-python client settings (TLS, SASL).
    """
    wanted: dict[str, TopicSpec] = {}
    for spec in specs:
        if wanted.setdefault(spec.name, spec) != spec:
            raise ValueError(f"conflicting specs for topic {spec.name}")
    if not wanted:
        return []
    timeout_ms = int(timeout * 1000)
    with _admin(bootstrap, client_id, security, timeout) as admin:
        existing = set(admin.list_topics())
        missing = [spec for name, spec in wanted.items() if name not in existing]
        created: list[str] = []
        if missing:
            response = admin.create_topics(
                {
                    s.name: {
                        "num_partitions": s.partitions,
                        "replication_factor": s.replication_factor,
                        "configs": s.configs(),
                    }
                    for s in missing
                },
                timeout_ms=timeout_ms,
                raise_errors=False,
            )
            failures = []
            for result in response["topics"]:
                code = result["error_code"]
                if code == 0:
                    created.append(result["name"])
                elif code != _TOPIC_ALREADY_EXISTS:
                    failures.append(f"{result['name']} (error {code}: {result['error_message']})")
            if failures:
                raise BrokerError(f"could not create topics at {bootstrap}: {', '.join(failures)}")
        try:
            admin.wait_for_topics(list(wanted), timeout_ms=timeout_ms)
        except KafkaError as exc:
            raise BrokerError(f"topics not visible in metadata at {bootstrap}: {exc}") from exc
        for topic in admin.describe_topics(list(wanted)):
            spec = wanted[topic["name"]]
            expected = spec.partitions
            if spec.any_count and topic["name"] not in created:
                continue  # someone else made it, with the count they chose
            if len(topic["partitions"]) != expected:
                raise BrokerError(
                    f"topic {topic['name']} has {len(topic['partitions'])} partitions,"
                    f" expected {expected}"
                )
    return sorted(created)


def end_offsets(
    bootstrap: str,
    topics: Iterable[str],
    *,
    client_id: str = "triage-admin",
    security: Mapping[str, Any] | None = None,
    timeout: float = 10.0,
) -> dict[tuple[str, int], int]:
    """Return the log end offset of every partition of ``topics``, keyed by (topic, partition).

    Use this instead of ``KafkaConsumer.end_offsets()``: Tansu 0.6.0 answers
    ListOffsets(latest) with the last *batch's* base offset + 1, so it undercounts
    whenever that batch holds several records. The high watermark in Fetch
    responses is right, so we fetch the last batch and read it from there.
    Keys compare equal to kafka-python's ``TopicPartition``; unknown topics are
    left out.
    """
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            group_id=None,
            enable_auto_commit=False,
            bootstrap_timeout_ms=max(int(timeout * 1000), 100),
            **(security or {}),
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot reach the Kafka broker at {bootstrap}: {exc}") from exc
    try:
        parts = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        listed: dict[TopicPartition, int] = consumer.end_offsets(parts) if parts else {}
        consumer.assign(parts)
        for tp in parts:
            consumer.seek(tp, max(listed[tp] - 1, 0))
        deadline = time.monotonic() + timeout
        while any(consumer.highwater(tp) is None for tp in parts):
            if time.monotonic() >= deadline:
                raise BrokerError(f"no high watermark from {bootstrap} within {timeout:g} s")
            consumer.poll(timeout_ms=100)
        return {(tp.topic, tp.partition): max(listed[tp], consumer.highwater(tp)) for tp in parts}
    except KafkaError as exc:
        raise BrokerError(f"Kafka broker at {bootstrap} refused a request: {exc}") from exc
    finally:
        consumer.close()


def group_lag(
    bootstrap: str,
    group: str,
    topics: Iterable[str],
    *,
    security: Mapping[str, Any] | None = None,
    timeout: float = 10.0,
) -> int:
    """Records of ``topics`` that consumer ``group`` has not committed yet (all partitions)."""
    return sum(partition_lag(bootstrap, group, topics, security=security, timeout=timeout).values())


def partition_lag(
    bootstrap: str,
    group: str,
    topics: Iterable[str],
    *,
    security: Mapping[str, Any] | None = None,
    timeout: float = 10.0,
) -> dict[tuple[str, int], int]:
    """Per partition of ``topics``: records past the offset ``group`` committed there."""
    topics = list(topics)
    ends = end_offsets(bootstrap, topics, security=security, timeout=timeout)
    with _admin(bootstrap, "triage-admin", security, timeout) as admin:
        committed = admin.list_group_offsets(group).get(group, {})
    lag: dict[tuple[str, int], int] = {}
    for (topic, partition), end in ends.items():
        done = committed.get(TopicPartition(topic, partition))
        lag[(topic, partition)] = max(
            end - (done.offset if done is not None and done.offset >= 0 else 0), 0
        )
    return lag


@dataclass(frozen=True, slots=True)
class GroupSnapshot:
    """What the broker says about some topics and one consumer group, at one moment.

    ``partitions``: topic → partition count, for the topics that exist;
    ``ends``: log end offset of every partition of the consumed topics that exist;
    ``committed``: the group's committed offset there (partitions without one left out).
    The committed offsets are read before the log ends, so on a healthy broker no
    committed offset is ever above its partition's end.
    """

    partitions: Mapping[str, int]
    ends: Mapping[tuple[str, int], int]
    committed: Mapping[tuple[str, int], int]

    def lag(self) -> dict[tuple[str, int], int]:
        """Per partition of the consumed topics: records past the committed offset."""
        return {tp: max(end - self.committed.get(tp, 0), 0) for tp, end in self.ends.items()}


def group_snapshot(
    bootstrap: str,
    group: str,
    topics: Iterable[str],
    consumed: Iterable[str],
    *,
    security: Mapping[str, Any] | None = None,
    timeout: float = 10.0,
) -> GroupSnapshot:
    """Read a :class:`GroupSnapshot`: partition counts of ``topics``, and the log ends
    and ``group``'s committed offsets of ``consumed`` (which should be among ``topics``)."""
    wanted, consumed = set(topics), set(consumed)
    with _admin(bootstrap, "triage-admin", security, timeout) as admin:
        offsets = admin.list_group_offsets(group).get(group, {})
        committed = {
            (tp.topic, tp.partition): meta.offset
            for tp, meta in offsets.items()
            if tp.topic in consumed and meta.offset >= 0
        }
        existing = sorted(wanted.intersection(admin.list_topics()))
        described = admin.describe_topics(existing) if existing else []
    partitions: dict[str, int] = {}
    for topic in described:
        code = topic.get("error_code") or 0
        if code == _UNKNOWN_TOPIC:  # deleted since it was listed: missing
            continue
        if code:  # e.g. no leader during an election: no verdict from this reading
            raise BrokerError(f"no metadata for {topic['name']} at {bootstrap} (error {code})")
        partitions[topic["name"]] = len(topic["partitions"])
    ends = end_offsets(
        bootstrap, sorted(consumed.intersection(partitions)), security=security, timeout=timeout
    )
    return GroupSnapshot(partitions, ends, committed)


def read_records(
    bootstrap: str,
    topic: str,
    partition: int,
    start: int,
    end: int,
    *,
    security: Mapping[str, Any] | None = None,
    timeout: float = 30.0,
) -> list[Any]:
    """The records of ``topic[partition]`` at offsets ``start`` to ``end`` (excluded),
    read directly (no group): kafka-python ``ConsumerRecord`` objects in offset order.

    Offsets that hold no record (a transaction marker, a compacted range) are simply
    absent. Raises :class:`BrokerError` when the broker does not give the range within
    ``timeout`` seconds.
    """
    try:
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="triage-read-back",
            group_id=None,
            enable_auto_commit=False,
            bootstrap_timeout_ms=max(int(timeout * 1000), 100),
            **(security or {}),
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot reach the Kafka broker at {bootstrap}: {exc}") from exc
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, start)
        found: list[Any] = []
        deadline = time.monotonic() + timeout
        while consumer.position(tp) < end:
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"{topic}[{partition}] offsets {start} to {end} not read within {timeout:g} s"
                )
            for records in consumer.poll(timeout_ms=200).values():
                found.extend(r for r in records if start <= r.offset < end)
        return found
    except KafkaError as exc:
        raise BrokerError(f"Kafka broker at {bootstrap} refused a request: {exc}") from exc
    finally:
        consumer.close()


class ListedEnds:
    """One connection that asks the broker where partitions' logs end (ListOffsets
    latest), again and again: the worker's fresh answer to "is there anything after
    what I read" (:class:`triage.streaming.ends.BrokerEnds`).

    On Tansu 0.6 the answer is the last batch's base offset + 1 (see
    :func:`end_offsets`): below the end when that batch holds several records, but
    past any position a consumer read to before that batch was written. Not thread
    safe: one call at a time.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        security: Mapping[str, Any] | None = None,
        timeout: float = 5.0,
    ) -> None:
        self._bootstrap = bootstrap
        self._security = dict(security or {})
        self._timeout = timeout
        self._consumer: KafkaConsumer | None = None

    def ask(self, partitions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The end of each of ``partitions``; raises :class:`BrokerError` on failure
        (the connection is made again at the next call)."""
        try:
            if self._consumer is None:
                self._consumer = KafkaConsumer(
                    bootstrap_servers=self._bootstrap,
                    client_id="triage-log-ends",
                    group_id=None,
                    enable_auto_commit=False,
                    request_timeout_ms=max(int(self._timeout * 1000), 1000),
                    bootstrap_timeout_ms=max(int(self._timeout * 1000), 100),
                    **self._security,
                )
            listed = self._consumer.end_offsets([TopicPartition(t, p) for t, p in partitions])
        except KafkaError as exc:
            self.close()
            raise BrokerError(f"Kafka broker at {self._bootstrap} gave no log ends: {exc}") from exc
        return {(tp.topic, tp.partition): int(end) for tp, end in listed.items()}

    def close(self) -> None:
        """Close the connection (a later :meth:`ask` opens another)."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()
