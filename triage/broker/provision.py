"""The topics a deployment needs, derived from settings."""

from __future__ import annotations

from triage.broker.admin import TopicSpec, ensure_topics, wait_for_broker
from triage.settings import TriageSettings

DAY_MS = 24 * 3600 * 1000


def topic_specs(settings: TriageSettings) -> list[TopicSpec]:
    """Every topic with its partitions, compaction and retention.

    Inputs, the internal (repartition) topics, decisions and queues keep their
    history (retention -1): the event log is what replay and audit are built on.
    The dead-letter topic keeps raw bytes that may hold personal data, so its
    retention is limited. Every topic gets ``TRIAGE_PARTITIONS`` partitions here;
    input topics made by someone else may have any count (the worker re-partitions
    them), the internal ones must have exactly that many.
    """
    topics = settings.topics
    n, rf = settings.partitions, settings.replication_factor
    kept = (*topics.internal, topics.decisions, *topics.queues)
    specs = [
        TopicSpec(name, n, retention_ms=-1, replication_factor=rf, any_count=True)
        for name in topics.inputs
    ]
    specs += [TopicSpec(name, n, retention_ms=-1, replication_factor=rf) for name in kept]
    specs.append(
        TopicSpec(
            topics.deadletter,
            n,
            retention_ms=settings.deadletter_retention_days * DAY_MS,
            replication_factor=rf,
        )
    )
    return specs


def provision(settings: TriageSettings, *, source: str = "TRIAGE_KAFKA_BOOTSTRAP") -> list[str]:
    """Create the missing topics (idempotent); returns the names created.

    A broker that does not answer within ``settings.kafka_connect_timeout`` is a
    :class:`~triage.errors.BrokerError` naming its address and ``source``.
    """
    if settings.kafka_bootstrap is None:
        raise ValueError("provisioning needs settings.kafka_bootstrap")
    security = settings.kafka_python_security()
    wait_for_broker(
        settings.kafka_bootstrap, settings.kafka_connect_timeout, security=security, source=source
    )
    return ensure_topics(settings.kafka_bootstrap, topic_specs(settings), security=security)
