"""Seeded synthetic event logs: a year of reports, alarms and responders' updates.

``generate_log(GeneratorConfig(...), engine)`` yields event-log records in time
order. The responders are simulated against the real engine, so their
acknowledgements name the decisions and queues it actually routed. Synthetic
data only: pseudonymous references and visibly fictional contact details.
"""

from triage.generate.config import GeneratorConfig
from triage.generate.log import generate_log

__all__ = ["GeneratorConfig", "generate_log"]
