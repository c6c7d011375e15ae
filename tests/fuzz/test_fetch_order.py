"""The worker's shell against the offline replay, whatever order the two input topics
are fetched in: corpus cases interleaved with a valid log, fed to a StreamShell (fake
Kafka) in seeded random bursts per topic-partition, give exactly the offline outputs.
Every corpus kind takes part, those stamped decades away from their neighbours too.
"""

from __future__ import annotations

import asyncio
import warnings
from collections import defaultdict
from datetime import date
from random import Random

import orjson
import pytest

with warnings.catch_warnings():  # kafka-python (imported by the shell) warns on import
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from triage.streaming.shell import StreamShell, partition_of

from tests.shell_fakes import FakeKafka, Message
from triage.events.wire import to_millis
from triage.generate import GeneratorConfig, generate_log
from triage.pipeline.engine import Engine
from triage.pipeline.processor import Processor
from triage.reliability.cases import Probe
from triage.reliability.corpus import CASE_KINDS, CorpusBuilder, interleave
from triage.replay.player import watermark_records
from triage.topics import Topics

PARTITIONS = 4
CASES = 600
MISMERGED = {"implausible_timestamp"}


def canonical(value: bytes) -> bytes:
    body = orjson.loads(value)
    if body["type"] == "triage.dead_letter":  # coordinates differ by construction
        body["source_partition"] = body["source_offset"] = None
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


@pytest.fixture(name="stream", scope="module")
def _stream(engine: Engine) -> list[Probe]:
    """A week of valid records with corpus cases among them, then end watermarks."""
    log = list(
        generate_log(GeneratorConfig(victims=60, days=7, start=date(2026, 2, 2), seed=5), engine)
    )
    start, span = log[0].timestamp, log[-1].timestamp - log[0].timestamp
    builder = CorpusBuilder(
        11, start=start, spacing=span / CASES, rules_version=engine.rules.version,
        kinds=list(CASE_KINDS),
    )  # fmt: skip
    probes = [probe for probe, _case in interleave(builder.cases(CASES), log)]
    end = log[-1].timestamp
    marks = watermark_records(Topics(), PARTITIONS, end)
    return probes + [Probe(m.topic, None, m.value, end) for _p, m in marks]


def by_partition(stream: list[Probe]) -> dict[tuple[str, int], list[Probe]]:
    """Each topic-partition's records in offset order (keyless ones spread round-robin;
    the watermarks go one to each partition)."""
    queues: dict[tuple[str, int], list[Probe]] = defaultdict(list)
    keyless = 0
    for probe in stream:
        if probe.key is None:
            partition, keyless = keyless % PARTITIONS, keyless + 1
        else:
            partition = partition_of(probe.key, PARTITIONS)
        queues[(probe.topic, partition)].append(probe)
    return queues


async def through_the_shell(engine: Engine, stream: list[Probe], seed: int) -> set[bytes]:
    """Feed the stream in seeded random bursts per topic-partition; what was sent."""
    rng, queues, kafka = Random(seed), by_partition(stream), FakeKafka()
    ends = {tp: len(q) for tp, q in queues.items()}
    shell = StreamShell(engine, Topics(), {}, kafka.send, kafka.ack, partitions=PARTITIONS,
                        highwater=lambda t, p: ends.get((t, p), 0))  # fmt: skip
    position = dict.fromkeys(queues, 0)
    while open_ := [tp for tp in queues if position[tp] < ends[tp]]:
        tp = rng.choice(open_)
        for _ in range(rng.randint(1, 40)):
            if position[tp] == ends[tp]:
                break
            probe = queues[tp][position[tp]]
            stamp = to_millis(probe.timestamp) / 1000
            message = Message(tp[0], tp[1], position[tp], probe.key, probe.value, stamp)
            await shell.on_message(message, position[tp])
            position[tp] += 1
        await shell.tick()
    await shell.flush()
    return {canonical(s.value) for s in kafka.sent}


@pytest.mark.parametrize("seed", range(4))
def test_any_fetch_order_gives_the_offline_outputs(
    engine: Engine, stream: list[Probe], seed: int
) -> None:
    """However the consumer interleaves the topics' partitions, the shell's merge gives
    the records of the offline replay, no more, no less."""
    processor = Processor(engine, Topics())
    offline = {
        canonical(o.model_dump_json().encode())
        for probe in stream
        for o in processor.feed(probe.raw(Topics())).outputs
    }

    shell = asyncio.run(through_the_shell(engine, stream, seed))

    assert len(offline) > 1_000
    assert shell == offline, (len(offline - shell), len(shell - offline))
