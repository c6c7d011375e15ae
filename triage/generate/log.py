"""The generator's entry point: good records, with malformed ones mixed in."""

from __future__ import annotations

from collections.abc import Iterator

from triage.generate.config import GeneratorConfig
from triage.generate.malformed import MalformedRecords
from triage.generate.simulation import good_records
from triage.pipeline.engine import Engine
from triage.replay.records import LogRecord


def generate_log(config: GeneratorConfig, engine: Engine) -> Iterator[LogRecord]:
    """Yield a seeded synthetic event log in non-decreasing timestamp order.

    The good records come from a simulation run against ``engine`` and do not
    depend on ``config.bad_rate``; each malformed record follows the good one
    whose key and timestamp it borrows. Same config, same records, same bytes.
    """
    good = good_records(config, engine)
    if config.bad_rate <= 0.0:
        yield from good
        return
    malformed = MalformedRecords(config)
    for record in good:
        yield record
        yield from malformed.after(record)
