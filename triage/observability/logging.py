"""Logging: structlog for our code, the same pipeline for Faust, mode and aiokafka.

JSON lines in services, console rendering in a terminal. Every line passes the
allow-list redaction of :mod:`triage.observability.redaction`:

- our own lines keep only allow-listed keys (``victim`` is a hash);
- a library's line keeps its message template with the arguments that are
  recognisably not personal data (partitions, group ids, topic names, broker
  addresses, node ids, numbers, Kafka and network exception messages); every
  other argument is replaced by ``<redacted:TYPE>``. For example::

    Setting newly assigned partitions {TP(topic='dv.reports.v1', partition=1)} for group g1
    Unable connect to "127.0.0.1:9092": ConnectionRefusedError: [Errno 111] Connect call…
    Processing <redacted:dict> for <redacted:str> failed

Strings are shown only when they have the shape of a broker address or of one of
our topics, when the template names them (``group %s``, ``topic %s``, ``"%s:%s"`` of
a host and port), or when they are one of the ``names`` the logging was configured
with (:func:`log_names`: topics, group id, bootstrap servers).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

import structlog

from triage.observability.redaction import RedactPersonalData, known_names

if TYPE_CHECKING:
    from triage.settings import TriageSettings

LIBRARY_LOGGERS = ("faust", "mode", "aiokafka", "kafka", "aiohttp", "asyncio")


def log_names(settings: TriageSettings) -> frozenset[str]:
    """The deployment's names library log lines may show: topics, group id, bootstrap."""
    topics = settings.topics
    return known_names(
        topics.consumed,
        topics.outputs,
        settings.group_id,
        settings.kafka_bootstrap,
    )


def _processors(names: Iterable[str] = ()) -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        RedactPersonalData(names=known_names(names)),
    ]


def logging_config(
    fmt: Literal["json", "console"], level: str, names: Iterable[str] = ()
) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` that renders stdlib records through structlog.

    Faust's worker takes it as ``logging_config``; :func:`configure_logging`
    applies it directly. ``names`` (see :func:`log_names`) may appear in library lines.
    """
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "triage": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    renderer,
                ],
                "foreign_pre_chain": _processors(names),
                # The arguments go to the redaction (which renders the safe ones and
                # drops them), the message is not pre-formatted with them.
                "pass_foreign_args": True,
                "use_get_message": False,
            }
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "triage",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            **{name: {"level": "WARNING" if level == "DEBUG" else level} for name in ("aiohttp",)},
            # The worker's 10 ms tick processes what the merge releases: under load it
            # runs longer than its interval by design, and mode warns at every tick.
            "mode.timers": {"level": "ERROR"},
        },
    }


def configure_logging(
    fmt: Literal["json", "console"] = "json", level: str = "INFO", names: Iterable[str] = ()
) -> None:
    """Route structlog and the standard library through one redacting pipeline."""
    import logging.config

    structlog.configure(
        # Level first: a debug line below the level costs a check, not the whole chain.
        processors=[
            structlog.stdlib.filter_by_level,
            *_processors(names),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    logging.config.dictConfig(logging_config(fmt, level, names))


def get_logger(name: str = "triage") -> Any:
    """A structlog logger whose stdlib name starts with ``triage``."""
    return structlog.get_logger(name)
