"""Fixtures for tests that talk to a real Kafka-compatible broker.

By default one embedded Tansu broker serves the whole session. Set
``TRIAGE_TEST_BROKER=host:port`` to run the same tests against a broker you
started yourself (Apache Kafka, say); nothing is started then.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

# kafka-python 3.0.12 calls deprecated importlib.resources functions while
# importing; with filterwarnings=error that fails collection. Import it once
# here with that one warning silenced (the pyproject filter is the real fix).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from kafka import KafkaAdminClient

from triage.broker import EmbeddedBroker, TopicSpec, ensure_topics


@dataclass(frozen=True)
class ExternalBroker:
    """A broker someone else runs: we only know where it is."""

    bootstrap: str


TopicFactory = Callable[..., str]


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker | ExternalBroker]:
    """The broker under test: ``TRIAGE_TEST_BROKER`` if set, else an embedded Tansu."""
    external = os.environ.get("TRIAGE_TEST_BROKER")
    if external:
        yield ExternalBroker(bootstrap=external)
        return
    with EmbeddedBroker(startup_timeout=10.0) as embedded:
        yield embedded


@pytest.fixture
def topic_factory(broker: EmbeddedBroker | ExternalBroker) -> Iterator[TopicFactory]:
    """Create uniquely named topics; they are deleted when the test ends.

    Call it as ``topic_factory(partitions=4, compacted=False, retention_ms=None)``;
    it returns the new topic's name.
    """
    created: list[str] = []

    def make(
        partitions: int = 1,
        *,
        compacted: bool = False,
        retention_ms: int | None = None,
        prefix: str = "test",
    ) -> str:
        spec = TopicSpec(
            f"{prefix}.{uuid.uuid4().hex[:12]}",
            partitions,
            compacted=compacted,
            retention_ms=retention_ms,
        )
        created.extend(ensure_topics(broker.bootstrap, [spec], client_id="triage-tests"))
        return spec.name

    yield make
    if created:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, client_id="triage-tests")
        try:
            admin.delete_topics(created, raise_errors=False)
        finally:
            admin.close()
