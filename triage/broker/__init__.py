"""The Kafka side of triage: an embedded Tansu broker and topic provisioning.

``EmbeddedBroker`` runs Tansu (in memory) for the demo and the tests;
``ensure_topics`` creates the topics a deployment needs, on Tansu or Apache Kafka.
"""

from __future__ import annotations

from triage.broker.admin import (
    BrokerError,
    TopicSpec,
    end_offsets,
    ensure_topics,
    group_lag,
    wait_for_broker,
)
from triage.broker.embedded import EmbeddedBroker

__all__ = [
    "BrokerError",
    "EmbeddedBroker",
    "TopicSpec",
    "end_offsets",
    "ensure_topics",
    "group_lag",
    "wait_for_broker",
]
