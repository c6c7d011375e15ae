"""The ceiling: a raw aiokafka consume → JSON transform → produce loop."""

from __future__ import annotations

import asyncio
import time

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def passthrough(
    bootstrap: str, source: str, sink: str, expected: int, timeout: float = 120.0
) -> float:
    """Move ``expected`` records from ``source`` to ``sink``; returns records per second.

    The clock starts at the first record received, so group join and fetch
    warm-up are not counted (as for the pipeline).
    """
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"bench-baseline-{source}",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        max_poll_interval_ms=6000,
        rebalance_timeout_ms=6000,
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await consumer.start()
    await producer.start()
    try:
        moved = 0
        began: float | None = None
        deadline = time.monotonic() + timeout
        while moved < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200, max_records=1000)
            futures = []
            for records in batches.values():
                for record in records:
                    if began is None:
                        began = time.perf_counter()
                    body = orjson.loads(record.value)
                    body["seen"] = True
                    futures.append(await producer.send(sink, orjson.dumps(body), key=record.key))
                    moved += 1
            if futures:
                await asyncio.gather(*futures)
        if moved < expected or began is None:
            raise RuntimeError(f"baseline moved only {moved} of {expected} records")
        return moved / (time.perf_counter() - began)
    finally:
        await producer.stop()
        await consumer.stop()
