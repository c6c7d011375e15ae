"""A crash of the worker's processing loop (the Faust agent) is counted, then re-raised
for Faust to handle: a worker that restarts its loop must not look healthy."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

# kafka-python warns while it is imported (the app imports it): see test_shell.py.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from triage.streaming.app import create_app

from triage.observability.metrics import TriageMetrics
from triage.pipeline.engine import Engine
from triage.settings import TriageSettings

AgentBody = Callable[[Any], Awaitable[None]]


class FailingStream:
    """A Faust stream whose iteration raises ``error`` at once."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def noack(self) -> FailingStream:
        """The stream itself (the agent acknowledges by hand)."""
        return self

    async def events(self) -> AsyncIterator[Any]:
        """Raise before yielding anything."""
        raise self.error
        yield  # an async generator, like Faust's


@pytest.fixture(name="agent")
def _agent(engine: Engine, tmp_path: Path) -> tuple[AgentBody, TriageMetrics]:
    """The triage agent's body from a built (never started) app, and its metrics."""
    settings = TriageSettings(
        kafka_bootstrap="127.0.0.1:1", data_dir=tmp_path, web_port=0, metrics_port=0
    )
    metrics = TriageMetrics()
    app, _shell = create_app(settings, engine, metrics=metrics)
    body: AgentBody = app.agents["triage"].fun
    return body, metrics


class TestAgentCrashes:
    async def test_a_crash_is_counted_and_re_raised(
        self, agent: tuple[AgentBody, TriageMetrics]
    ) -> None:
        """An exception out of the processing loop increments triage_agent_crashes_total
        and still reaches Faust."""
        body, metrics = agent

        with pytest.raises(BrokenPipeError):
            await body(FailingStream(BrokenPipeError("broker gone")))

        assert metrics.registry.get_sample_value("triage_agent_crashes_total") == 1

    async def test_a_cancellation_is_not_a_crash(
        self, agent: tuple[AgentBody, TriageMetrics]
    ) -> None:
        """A worker stopping cancels the loop: that is not counted."""
        body, metrics = agent

        with pytest.raises(asyncio.CancelledError):
            await body(FailingStream(asyncio.CancelledError()))

        assert metrics.registry.get_sample_value("triage_agent_crashes_total") == 0
