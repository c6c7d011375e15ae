"""Logging: JSON lines through one allow-list redaction, for our loggers and the libraries'."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog

from triage.observability.logging import configure_logging, get_logger, logging_config
from triage.observability.redaction import ALLOWED_KEYS, RedactPersonalData, victim_hash
from triage.testing import VICTIM_REF

# ASCII on purpose: the JSON renderer escapes other characters, and a search of the
# raw text for a "§" would then never find a leak.
SENTINEL = "ZqSENTINEL-Jeanne-Dupont-0612345678"
"""Stands for a name, a phone number, a free-text note: must never reach a log line."""


@dataclass
class Captured:
    """The JSON lines written so far."""

    stream: io.StringIO

    def text(self) -> str:
        """Everything written, as is."""
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        """Every line, parsed (each must be a JSON object)."""
        parsed = [json.loads(line) for line in self.text().splitlines()]
        assert all(isinstance(p, dict) for p in parsed)
        return parsed

    def one(self) -> dict[str, Any]:
        """The only line written."""
        (line,) = self.lines()
        return line

    def leaks(self, secret: str = SENTINEL) -> bool:
        """Whether ``secret`` is in the output, raw or once JSON escapes are decoded."""
        decoded = json.dumps(self.lines(), ensure_ascii=False)
        return secret in self.text() or secret in decoded


def _logger_states() -> dict[str, tuple[int, bool, bool, list[logging.Handler]]]:
    return {
        name: (lg.level, lg.disabled, lg.propagate, lg.handlers[:])
        for name, lg in list(logging.root.manager.loggerDict.items())
        if isinstance(lg, logging.Logger)
    }


@pytest.fixture(name="configure")
def _configure() -> Iterator[Any]:
    """Configure logging into a captured stream; put everything back afterwards.

    ``dictConfig`` replaces the root handlers (pytest's own among them) and
    touches library loggers; all of that is restored, and structlog reset.
    """
    root = logging.getLogger()
    handlers, level, loggers = root.handlers[:], root.level, _logger_states()
    added: list[logging.Handler] = []

    def configure(fmt: str = "json", lvl: str = "INFO") -> Captured:
        stream = io.StringIO()
        configure_logging(fmt, lvl)  # type: ignore[arg-type]
        (ours,) = root.handlers
        ours.setStream(stream)  # type: ignore[attr-defined]
        added.append(ours)
        root.handlers[:] = [*handlers, ours]
        return Captured(stream)

    try:
        yield configure
    finally:
        for handler in added:
            root.removeHandler(handler)
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
        for name, (lvl, disabled, propagate, hs) in loggers.items():
            logger = logging.getLogger(name)
            logger.setLevel(lvl)
            logger.disabled, logger.propagate, logger.handlers[:] = disabled, propagate, hs
        for name in _logger_states().keys() - loggers.keys():
            logging.getLogger(name).setLevel(logging.NOTSET)  # e.g. "aiohttp", made by the config
        structlog.contextvars.clear_contextvars()
        structlog.reset_defaults()


@pytest.fixture(name="captured")
def _captured(configure: Any) -> Captured:
    """JSON logging at INFO into a captured stream."""
    captured: Captured = configure()
    return captured


class TestConfigureLogging:
    def test_lines_are_json_with_the_standard_keys(self, captured: Captured) -> None:
        """A line from our logger is one JSON object with event, level, logger and timestamp."""
        get_logger("triage.x").info("started", port=9464)

        line = captured.one()
        assert line["event"] == "started"
        assert line["level"] == "info"
        assert line["logger"] == "triage.x"
        assert line["port"] == 9464
        assert line["timestamp"].endswith("Z")

    def test_allowed_keys_are_kept_and_others_dropped(self, captured: Captured) -> None:
        """Allow-listed keys stay; any other key is dropped with its value."""
        get_logger("triage.x").info(
            "decision",
            topic="dv.reports.v1",
            partition=2,
            offset=41,
            reason="schema_violation",
            victim=victim_hash(VICTIM_REF),
            name=SENTINEL,
            phone=SENTINEL,
            victim_ref=VICTIM_REF,
            notes={"free text": SENTINEL},
        )

        line = captured.one()
        assert {k: line[k] for k in ("topic", "partition", "offset", "reason")} == {
            "topic": "dv.reports.v1",
            "partition": 2,
            "offset": 41,
            "reason": "schema_violation",
        }
        assert line["victim"] == victim_hash(VICTIM_REF)
        assert not {"name", "phone", "victim_ref", "notes"} & line.keys()
        assert set(line) <= ALLOWED_KEYS
        assert not captured.leaks()
        assert not captured.leaks(VICTIM_REF)

    def test_bound_and_context_values_are_filtered_too(self, captured: Captured) -> None:
        """Keys bound to a logger or to the context pass the same allow-list."""
        structlog.contextvars.bind_contextvars(victim_ref=VICTIM_REF, partition=1)
        get_logger("triage.x").bind(address=SENTINEL, queue="immediate").info("routed")

        line = captured.one()
        assert (line["partition"], line["queue"]) == (1, "immediate")
        assert not captured.leaks()
        assert not captured.leaks(VICTIM_REF)

    def test_exception_keeps_its_type_not_its_message(self, captured: Captured) -> None:
        """A logged exception leaves ``exc_type`` only: no message, no traceback."""
        try:
            raise ValueError(SENTINEL)
        except ValueError:
            get_logger("triage.x").exception("failed", reason="boom")

        line = captured.one()
        assert (line["event"], line["exc_type"], line["level"]) == ("failed", "ValueError", "error")
        assert not captured.leaks()
        assert "Traceback" not in captured.text()

    def test_exception_instance_as_exc_info(self, captured: Captured) -> None:
        """``exc_info=<exception>`` is reduced to its type name as well."""
        get_logger("triage.x").warning("failed", exc_info=KeyError(SENTINEL))

        assert captured.one()["exc_type"] == "KeyError"
        assert not captured.leaks()

    def test_below_the_level_nothing_is_written(self, captured: Captured) -> None:
        """At INFO, a debug line is not written."""
        get_logger("triage.x").debug("decision", topic="t")

        assert captured.text() == ""

    @pytest.mark.parametrize("name", ["faust.agent", "aiokafka", "aiokafka.consumer", "mode"])
    def test_arguments_are_dropped_and_the_template_kept(
        self, captured: Captured, name: str
    ) -> None:
        """A library's %-arguments never reach the line; its message template does."""
        logging.getLogger(name).warning("Processing %r for %s failed", {"name": SENTINEL}, SENTINEL)

        line = captured.one()
        assert line["event"] == "Processing %r for %s failed"
        assert (line["logger"], line["level"]) == (name, "warning")
        assert not captured.leaks()

    @pytest.mark.parametrize("name", ["faust.agent", "aiokafka"])
    def test_exception_message_is_dropped_and_its_type_kept(
        self, captured: Captured, name: str
    ) -> None:
        """A library's exception message and traceback go; ``exc_type`` says what it was."""
        try:
            raise RuntimeError(f"cannot decode {SENTINEL}")
        except RuntimeError:
            logging.getLogger(name).exception("Agent %r crashed", SENTINEL)

        line = captured.one()
        assert (line["event"], line["exc_type"]) == ("Agent %r crashed", "RuntimeError")
        assert "Traceback" not in captured.text()
        assert not captured.leaks()

    def test_extra_attributes_are_dropped(self, captured: Captured) -> None:
        """``extra=`` attributes of a library record do not become keys."""
        logging.getLogger("aiokafka").info("fetched", extra={"record_value": SENTINEL})

        assert set(captured.one()) <= ALLOWED_KEYS
        assert not captured.leaks()

    def test_every_line_passes_the_allow_list(self, captured: Captured) -> None:
        """Whatever logs, every key of every line is allow-listed."""
        get_logger("triage.x").info("a", topic="t", secret=SENTINEL)
        logging.getLogger("faust").error("b %s", SENTINEL, stack_info=True)
        logging.getLogger("kafka.conn").info("c %s", SENTINEL)

        assert len(captured.lines()) == 3
        assert all(set(line) <= ALLOWED_KEYS for line in captured.lines())
        assert not captured.leaks()

    def test_asyncio_unretrieved_exception_does_not_leak(self, captured: Captured) -> None:
        """An unretrieved task exception logged by asyncio shows no exception message."""
        loop = asyncio.new_event_loop()
        try:
            future = loop.create_future()
            future.set_exception(ValueError(f"invalid name {SENTINEL}"))
            loop.call_exception_handler(
                {
                    "message": "Task exception was never retrieved",
                    "exception": future.exception(),
                    "future": future,
                }
            )
        finally:
            loop.close()

        assert captured.one()["exc_type"] == "ValueError"
        assert not captured.leaks()

    def test_an_exception_logged_as_the_message_does_not_leak(self, captured: Captured) -> None:
        """``logger.error(exc)`` from a library keeps no exception message."""
        logging.getLogger("kafka").error(ValueError(SENTINEL))

        assert not captured.leaks()

    def test_console_lines_are_redacted_too(self, configure: Any) -> None:
        """The console renderer gets the same redacted event dict as the JSON one."""
        captured: Captured = configure("console", "DEBUG")

        get_logger("triage.x").debug("decision", topic="t", name=SENTINEL)
        logging.getLogger("aiokafka").info("got %s", SENTINEL)

        text = captured.text()
        assert "decision" in text
        assert "got %s" in text
        assert SENTINEL not in text

    def test_debug_keeps_aiohttp_at_warning(self, configure: Any) -> None:
        """At DEBUG, aiohttp's chatter stays at WARNING."""
        configure("json", "DEBUG")

        assert logging.getLogger("aiohttp").level == logging.WARNING


class TestLoggingConfig:
    def test_is_a_dict_config_with_one_redacting_handler(self) -> None:
        """The config renders through structlog's formatter with the redaction in its chain."""
        config = logging_config("json", "WARNING")

        assert config["version"] == 1
        assert config["disable_existing_loggers"] is False
        assert config["root"] == {"handlers": ["default"], "level": "WARNING"}
        formatter = config["formatters"]["triage"]
        assert formatter["pass_foreign_args"] is False
        assert any(isinstance(p, RedactPersonalData) for p in formatter["foreign_pre_chain"])


class TestRedactPersonalData:
    def test_keeps_private_keys_for_structlog(self) -> None:
        """Keys starting with ``_`` (structlog's own plumbing) are left for later processors."""
        redact = RedactPersonalData()

        out = redact(None, "info", {"event": "x", "_record": None, "name": SENTINEL})

        assert out == {"event": "x", "_record": None}

    def test_a_custom_allow_list(self) -> None:
        """The allow-list can be narrowed."""
        redact = RedactPersonalData(frozenset({"event"}))

        assert redact(None, "info", {"event": "x", "topic": "t"}) == {"event": "x"}

    def test_exc_info_true_uses_the_current_exception(self) -> None:
        """``exc_info=True`` inside ``except`` names the exception being handled."""
        redact = RedactPersonalData()
        try:
            raise LookupError(SENTINEL)
        except LookupError:
            out = redact(None, "error", {"event": "x", "exc_info": True})

        assert out["exc_type"] == "LookupError"
        assert "test_exc_info_true_uses_the_current_exception" in out["exc_where"]
        assert SENTINEL not in str(out)


class TestVictimHash:
    def test_is_stable_short_and_not_the_reference(self) -> None:
        """The same reference always gives the same 12 hex digits, which do not contain it."""
        first, second = victim_hash(VICTIM_REF), victim_hash(VICTIM_REF)

        assert first == second
        assert len(first) == 12
        assert int(first, 16) >= 0
        assert VICTIM_REF not in first
        assert victim_hash("V-0002B3") != first
