"""Fake Kafka for driving a :class:`StreamShell` without a broker: consumed messages
in, sends and acknowledgements recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(slots=True)
class Message:
    """A consumed record as the shell sees it (what a Faust event's message offers)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: float
    headers: Any = ()


@dataclass(frozen=True, slots=True)
class Sent:
    """One ``send`` call."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    timestamp: float

    @property
    def body(self) -> dict[str, Any]:
        """The sent value as JSON."""
        parsed: dict[str, Any] = orjson.loads(self.value)
        return parsed


@dataclass
class FakeKafka:
    """Records sends and acks; a send may be left pending until released."""

    sent: list[Sent] = field(default_factory=list)
    acked: list[Any] = field(default_factory=list)
    hold_next: bool = False
    pending: list[asyncio.Future[None]] = field(default_factory=list)

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, bytes]],
        timestamp: float,
    ) -> asyncio.Future[None]:
        """Record the send; return its (already completed, unless held) delivery."""
        self.sent.append(Sent(topic, key, value, headers, timestamp))
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.hold_next:
            self.hold_next = False
            self.pending.append(delivery)
        else:
            delivery.set_result(None)
        return delivery

    async def ack(self, token: Any) -> None:
        """Record the acknowledged token."""
        self.acked.append(token)

    def types(self) -> list[str]:
        """The CloudEvents type of each sent record, in order."""
        return [s.body["type"] for s in self.sent]

    def bodies(self) -> list[dict[str, Any]]:
        """Every sent value as JSON, in order."""
        return [s.body for s in self.sent]


Partition = tuple[str, int]


class FakeBroker:
    """A broker's ListOffsets: answers from ``ends``, counts the requests, or fails them."""

    def __init__(self, ends: dict[Partition, int]) -> None:
        self.ends = ends
        self.asked: list[list[Partition]] = []
        self.down = False

    async def list_ends(self, partitions: Sequence[Partition]) -> Mapping[Partition, int]:
        self.asked.append(list(partitions))
        if self.down:
            raise ConnectionError("broker unreachable")
        return {tp: self.ends.get(tp, 0) for tp in partitions}


async def settle(ends: Any) -> None:
    """Let the background request run."""
    for _ in range(5):
        await asyncio.sleep(0)
    task: Any = ends._task
    if task is not None:
        await asyncio.wait_for(task, 1.0)
