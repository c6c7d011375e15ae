"""Logging: structlog for our code, the same pipeline for Faust, mode and aiokafka.

JSON lines in services, console rendering in a terminal. Every line passes the
allow-list redaction of :mod:`triage.observability.redaction`.
"""

from __future__ import annotations

import sys
from typing import Any, Literal

import structlog

from triage.observability.redaction import RedactPersonalData

LIBRARY_LOGGERS = ("faust", "mode", "aiokafka", "kafka", "aiohttp", "asyncio")


def _processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        RedactPersonalData(),
    ]


def logging_config(fmt: Literal["json", "console"], level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` that renders stdlib records through structlog.

    Faust's worker takes it as ``logging_config``; :func:`configure_logging`
    applies it directly.
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
                "foreign_pre_chain": _processors(),
                "pass_foreign_args": False,
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


def configure_logging(fmt: Literal["json", "console"] = "json", level: str = "INFO") -> None:
    """Route structlog and the standard library through one redacting pipeline."""
    import logging.config

    structlog.configure(
        # Level first: a debug line below the level costs a check, not the whole chain.
        processors=[
            structlog.stdlib.filter_by_level,
            *_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    logging.config.dictConfig(logging_config(fmt, level))


def get_logger(name: str = "triage") -> Any:
    """A structlog logger whose stdlib name starts with ``triage``."""
    return structlog.get_logger(name)
