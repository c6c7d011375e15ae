"""The topics a deployment needs, derived from settings."""

from __future__ import annotations

from triage.broker.admin import TopicSpec, ensure_topics
from triage.settings import TriageSettings

DAY_MS = 24 * 3600 * 1000


def topic_specs(settings: TriageSettings) -> list[TopicSpec]:
    """Every topic with its partitions, compaction and retention.

    Inputs, decisions and queues keep their history (retention -1): the event
    log is what replay and audit are built on. The dead-letter topic keeps raw
    bytes that may hold personal data, so its retention is limited.
    """
    topics = settings.topics
    n, rf = settings.partitions, settings.replication_factor
    kept = (*topics.inputs, topics.decisions, *topics.queues)
    specs = [TopicSpec(name, n, retention_ms=-1, replication_factor=rf) for name in kept]
    specs.append(
        TopicSpec(
            topics.deadletter,
            n,
            retention_ms=settings.deadletter_retention_days * DAY_MS,
            replication_factor=rf,
        )
    )
    return specs


def provision(settings: TriageSettings) -> list[str]:
    """Create the missing topics (idempotent); returns the names created."""
    if settings.kafka_bootstrap is None:
        raise ValueError("provisioning needs settings.kafka_bootstrap")
    return ensure_topics(
        settings.kafka_bootstrap,
        topic_specs(settings),
        security=settings.kafka_python_security(),
    )
