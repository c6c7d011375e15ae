"""Every error triage raises on purpose.

Our exception hierarchy::

    TriageError
     ├── ConfigError          settings or a data file (rules, units) are invalid
     │    └── RulesError      the rule-set file is invalid (names the field)
     ├── EventLogError        a JSON Lines event log cannot be read or written
     ├── SchemaDriftError     schemas/ and the event models disagree
     ├── BrokerError          the Kafka broker is unreachable or refused a request
     └── AckGapError          a consumed record would be skipped by the next commit

Bad *events* are not exceptions: ingestion returns them as values
(:class:`triage.pipeline.ingest.Rejected`) and they go to the dead-letter topic.
Messages never carry event contents: they name fields, files and codes only.
"""

from __future__ import annotations


class TriageError(Exception):
    """Base class of every error triage raises on purpose."""


class ConfigError(TriageError):
    """Settings or a packaged data file are invalid."""


class RulesError(ConfigError):
    """A rule-set file is invalid; the message names the offending field."""


class EventLogError(TriageError):
    """An event log (JSON Lines) cannot be read or written."""


class SchemaDriftError(TriageError):
    """The checked-in JSON Schemas differ from what the models generate."""


class BrokerError(TriageError):
    """The Kafka broker is unreachable or refused a request."""


class AckGapError(TriageError):
    """A record was received but never handled, and a later one is being acknowledged.

    The worker stops rather than let a commit pass the record; restarted, it
    re-reads from the last commit.
    """
