"""Logging: JSON lines through one allow-list redaction, for our loggers and the libraries'."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import structlog
from aiokafka.errors import KafkaConnectionError
from aiokafka.structs import TopicPartition
from faust.types.tuples import TP
from pydantic import BaseModel, ValidationError

from triage.observability.logging import configure_logging, get_logger, log_names, logging_config
from triage.observability.redaction import (
    ALLOWED_KEYS,
    RedactPersonalData,
    known_names,
    victim_hash,
)
from triage.settings import TriageSettings
from triage.testing import VICTIM_REF

# kafka-python warns while it is imported (as in test_shell_dead_letters.py).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    from kafka.errors import KafkaError, NodeNotReadyError, RebalanceInProgressError
    from kafka.structs import OffsetAndMetadata as KafkaOffsetAndMetadata
    from kafka.structs import TopicPartition as KafkaTopicPartition

# ASCII on purpose: the JSON renderer escapes other characters, and a search of the
# raw text for a "§" would then never find a leak.
SENTINEL = "ZqSENTINEL-NAME-ZZZ"
"""Stands for a name, a phone number, a free-text note: must never reach a log line."""
PHONE = "00 00 00 00 00"
"""Stands for a phone number (obviously not one)."""
NOTE = "SENTINEL NOTE ZZZ: rappeler après 18 h"
"""Stands for free text."""


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

    def configure(fmt: str = "json", lvl: str = "INFO", names: tuple[str, ...] = ()) -> Captured:
        stream = io.StringIO()
        configure_logging(fmt, lvl, names)  # type: ignore[arg-type]
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
    def test_personal_arguments_are_redacted_and_the_template_kept(
        self, captured: Captured, name: str
    ) -> None:
        """A library's %-arguments that could be personal never reach the line; its
        message template does, with a placeholder naming each hidden argument's type."""
        logging.getLogger(name).warning("Processing %r for %s failed", {"name": SENTINEL}, SENTINEL)

        line = captured.one()
        assert line["event"] == "Processing <redacted:dict> for <redacted:str> failed"
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
        assert (line["event"], line["exc_type"]) == ("Agent <redacted:str> crashed", "RuntimeError")
        assert "exc_message" not in line
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
        assert "got <redacted:str>" in text
        assert SENTINEL not in text

    def test_debug_keeps_aiohttp_at_warning(self, configure: Any) -> None:
        """At DEBUG, aiohttp's chatter stays at WARNING."""
        configure("json", "DEBUG")

        assert logging.getLogger("aiohttp").level == logging.WARNING


class TestLibraryArgumentsThatAreShown:
    """What an operator needs from the libraries' lines: partitions, groups, brokers, errors."""

    def test_assigned_partitions_and_group(self, captured: Captured) -> None:
        """kafka-python's and aiokafka's assignment line shows the partitions and the group."""
        assigned = {TP("dv.reports.v1", 1), TP("dv.internal.reports.v1", 0)}
        logging.getLogger("aiokafka.consumer.group_coordinator").info(
            "Setting newly assigned partitions %s for group %s", assigned, "triage-worker"
        )

        assert captured.one()["event"] == (
            "Setting newly assigned partitions {TP(topic='dv.internal.reports.v1', partition=0),"
            " TP(topic='dv.reports.v1', partition=1)} for group triage-worker"
        )

    def test_client_topic_partitions_and_offsets(self, captured: Captured) -> None:
        """aiokafka's and kafka-python's TopicPartition, in a set or keying offsets."""
        logging.getLogger("kafka.coordinator").info(
            "Group %s committed offset %s for partition %s",
            "g-7",
            {KafkaTopicPartition("dv.case-updates.v1", 3): KafkaOffsetAndMetadata(41, "", -1)},
            frozenset({TopicPartition("dv.reports.v1", 2)}),
        )

        assert captured.one()["event"] == (
            "Group g-7 committed offset {TopicPartition(topic='dv.case-updates.v1', partition=3):"
            " OffsetAndMetadata(offset=41, metadata='', leader_epoch=-1)} for partition"
            " frozenset({TopicPartition(topic='dv.reports.v1', partition=2)})"
        )

    def test_unreachable_broker_names_address_and_error(self, captured: Captured) -> None:
        """aiokafka's ``Unable connect to "%s:%s": %s`` shows host, port and the error."""
        err = KafkaConnectionError("Connection at 127.0.0.1:9092 closed")
        logging.getLogger("aiokafka").error('Unable connect to "%s:%s": %s', "127.0.0.1", 9092, err)

        line = captured.one()
        assert line["event"] == (
            'Unable connect to "127.0.0.1:9092": KafkaConnectionError: Connection at'
            " 127.0.0.1:9092 closed"
        )
        assert line["level"] == "error"

    def test_network_errors_keep_their_message(self, captured: Captured) -> None:
        """``OSError`` family messages (refused, timed out) name addresses only."""
        refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9092)")
        logging.getLogger("aiokafka").error("Unable connect to %s: %s", "kafka-1:9092", refused)
        logging.getLogger("faust").warning(
            "Timed out: %r", TimeoutError()
        )  # = asyncio.TimeoutError

        first, second = captured.lines()
        assert first["event"] == (
            "Unable connect to kafka-1:9092: ConnectionRefusedError: [Errno 111] Connect call"
            " failed ('127.0.0.1', 9092)"
        )
        assert second["event"] == "Timed out: TimeoutError"

    def test_fetch_failure_names_node_and_error(self, captured: Captured) -> None:
        """kafka-python's ``Fetch to node %s failed: %s`` with a broker error."""
        logging.getLogger("kafka.consumer.fetcher").warning(
            "Fetch to node %s failed: %s", 1, NodeNotReadyError("Node 1 not ready")
        )

        assert (
            captured.one()["event"] == "Fetch to node 1 failed: NodeNotReadyError: Node 1 not ready"
        )

    def test_crash_reason_of_a_kafka_error(self, captured: Captured) -> None:
        """mode's ``Crashed reason=%r`` shows a Kafka error, as does ``exc_message``."""
        try:
            raise KafkaConnectionError("Unable to bootstrap from 127.0.0.1:9092")
        except KafkaConnectionError as exc:
            logging.getLogger("mode.services").exception("[^Worker]: Crashed reason=%r", exc)

        line = captured.one()
        shown = "KafkaConnectionError: Unable to bootstrap from 127.0.0.1:9092"
        assert line["event"] == f"[^Worker]: Crashed reason={shown}"
        assert (line["exc_type"], line["exc_message"]) == ("KafkaConnectionError", shown)
        assert "test_crash_reason_of_a_kafka_error" in line["exc_where"]

    def test_broker_response_error(self, captured: Captured) -> None:
        """A broker's error code, as kafka-python words it."""
        logging.getLogger("kafka").error(
            "OffsetCommit for group %s failed: %s", "triage-worker", RebalanceInProgressError()
        )

        assert captured.one()["event"] == (
            "OffsetCommit for group triage-worker failed: [Error 27] RebalanceInProgressError"
        )

    def test_numbers_durations_and_format_specs(self, captured: Captured) -> None:
        """Counts, floats, booleans, durations; ``%d``, ``%.1f``, ``%5s`` and ``%%`` work."""
        logging.getLogger("faust").info(
            "%d partitions, %.1f ms (%s) %5s, %s, %r, 100%%",
            12,
            3.25,
            timedelta(seconds=90),
            True,
            None,
            [1, 2],
        )

        assert (
            captured.one()["event"] == "12 partitions, 3.2 ms (0:01:30)  True, None, [1, 2], 100%"
        )

    def test_configured_names_anywhere(self, configure: Any) -> None:
        """Configured names (``log_names``: topics, group, bootstrap) are shown wherever
        they are; the same strings are redacted when not configured."""
        settings = TriageSettings(
            group_id="region-x-workers", kafka_bootstrap="kafka-a:9092,kafka-b:9092"
        )
        for names, expected in (
            (tuple(log_names(settings)), "Joined region-x-workers via kafka-a kafka-b:9092"),
            ((), "Joined <redacted:str> via <redacted:str> kafka-b:9092"),
        ):
            captured: Captured = configure(names=names)
            logging.getLogger("faust").info(
                "Joined %s via %s %s", "region-x-workers", "kafka-a", "kafka-b:9092"
            )
            assert captured.one()["event"] == expected

    def test_topic_shapes_and_hosts_by_pattern(self, captured: Captured) -> None:
        """Our topics (any prefix), Faust's internal topics and ``host:port`` lists."""
        logging.getLogger("faust").info(
            "%s %s %s %s %s %r",
            "bootstrap-0",
            "s1.dv.queue.high-risk.v1",
            "triage-worker-victim-state-changelog",
            "10.0.0.5:9092,[::1]:9093",
            ("127.0.0.1", 9092),
            KafkaConnectionError(),
        )

        assert captured.one()["event"] == (
            "bootstrap-0 s1.dv.queue.high-risk.v1 triage-worker-victim-state-changelog"
            " 10.0.0.5:9092,[::1]:9093 ('127.0.0.1', 9092) KafkaConnectionError"
        )


class ValidatedReport(BaseModel):
    """Stands for any pydantic model whose errors quote their input."""

    victim_ref: int


class ForeignKafkaError(KafkaError):
    """A subclass of a Kafka error defined outside the Kafka clients: not trusted."""


class ForeignConnectionError(ConnectionError):
    """An ``OSError`` subclass of some other library: not trusted."""


class Talkative:
    """An arbitrary object whose text is personal."""

    def __repr__(self) -> str:
        return f"<Talkative {SENTINEL}>"


def validation_error() -> ValidationError:
    try:
        ValidatedReport.model_validate({"victim_ref": f"{SENTINEL} {PHONE}"})
    except ValidationError as exc:
        return exc
    raise AssertionError("the model accepted a name")


def decode_error() -> json.JSONDecodeError:
    try:
        json.loads('{"name": "' + SENTINEL + '", "phone": ' + PHONE)
    except json.JSONDecodeError as exc:
        return exc
    raise AssertionError("invalid JSON parsed")


class TestLibraryArgumentsThatAreRedacted:
    """Anything not recognised as a partition, name, address, number or Kafka error."""

    @pytest.mark.parametrize(
        ("arg", "placeholder"),
        [
            ({"name": SENTINEL}, "<redacted:dict>"),
            (SENTINEL.encode(), "<redacted:bytes>"),
            (bytearray(PHONE.encode()), "<redacted:bytearray>"),
            (SENTINEL, "<redacted:str>"),
            (PHONE, "<redacted:str>"),
            (NOTE, "<redacted:str>"),
            ("39.98.73.19", "<redacted:str>"),  # dotted digits: an IP only where a host is
            ("0000000000", "<redacted:str>"),
            (Talkative(), "<redacted:Talkative>"),
            (validation_error(), "<redacted:ValidationError>"),
            (decode_error(), "<redacted:JSONDecodeError>"),
            (
                UnicodeDecodeError("utf-8", SENTINEL.encode(), 0, 1, "bad"),
                "<redacted:UnicodeDecodeError>",
            ),
            (ValueError(SENTINEL), "<redacted:ValueError>"),
            (ForeignKafkaError(SENTINEL), "<redacted:ForeignKafkaError>"),
            (ForeignConnectionError(SENTINEL), "<redacted:ForeignConnectionError>"),
            (KafkaError(ValueError(SENTINEL)), "KafkaError: <redacted:ValueError>"),
            ([SENTINEL, 3], "[<redacted:str>, 3]"),
            ({SENTINEL}, "{<redacted:str>}"),
            ((PHONE, 9092), "(<redacted:str>, 9092)"),
            (TP(NOTE, 1), "TP(topic=<redacted:str>, partition=1)"),
            (
                {TP("dv.reports.v1", 0): SENTINEL},
                "{TP(topic='dv.reports.v1', partition=0): <redacted:str>}",
            ),
            ({"dv.reports.v1": 1}, "<redacted:dict>"),
        ],
    )
    def test_in_any_position(self, captured: Captured, arg: object, placeholder: str) -> None:
        """In a plain position, as ``%s`` and ``%r``, the argument is a placeholder."""
        logging.getLogger("aiokafka").warning("Processing %s / %r failed", arg, arg)

        assert captured.one()["event"] == f"Processing {placeholder} / {placeholder} failed"
        for secret in (SENTINEL, PHONE, NOTE, "39.98.73.19", "0000000000"):
            assert not captured.leaks(secret)

    @pytest.mark.parametrize(
        "template",
        ["for group %s", "topic %r", "node %s", 'Unable connect to "%s:%s"', "host=%s"],
    )
    def test_names_in_named_positions_need_their_shape(
        self, captured: Captured, template: str
    ) -> None:
        """A template naming the value (group, topic, host…) shows it only if it is made of
        the characters of a Kafka name; text with spaces or other characters stays hidden."""
        logging.getLogger("kafka").info(template, *(NOTE, 9092)[: template.count("%")])

        assert "<redacted:str>" in captured.one()["event"]
        assert not captured.leaks(NOTE)

    @pytest.mark.parametrize(
        "exc",
        [validation_error(), decode_error(), ValueError(SENTINEL), ForeignKafkaError(SENTINEL)],
    )
    def test_exception_messages_of_other_errors(self, captured: Captured, exc: Exception) -> None:
        """A logged non-Kafka exception (pydantic, JSON…) keeps its type, no message."""
        try:
            raise exc
        except Exception:
            logging.getLogger("faust.agent").exception("Agent crashed: %r", exc)

        line = captured.one()
        assert line["exc_type"] == type(exc).__name__
        assert "exc_message" not in line
        assert line["event"] == f"Agent crashed: <redacted:{type(exc).__name__}>"
        assert not captured.leaks()
        assert not captured.leaks(PHONE)

    def test_own_lines_show_kafka_error_messages_only(self, captured: Captured) -> None:
        """``exc_message`` on our own lines follows the same rule."""
        log = get_logger("triage.x")
        log.warning("broker", exc_info=NodeNotReadyError("Node 2 not ready"))
        log.warning("decode", exc_info=decode_error())

        kafka, other = captured.lines()
        assert kafka["exc_message"] == "NodeNotReadyError: Node 2 not ready"
        assert "exc_message" not in other
        assert not captured.leaks()

    def test_a_mapping_argument(self, captured: Captured) -> None:
        """``%(name)s`` templates: a key naming a Kafka thing lets a name shape through."""
        logging.getLogger("kafka").info(
            "%(group)s %(topic)r %(notes)s %(count)d",
            {"group": "g1", "topic": "t.1", "notes": NOTE, "count": 3},
        )

        assert captured.one()["event"] == "g1 't.1' <redacted:str> 3"
        assert not captured.leaks(NOTE)

    def test_pre_formatted_text_after_the_first_line(self, captured: Captured) -> None:
        """Only the template's first line is kept, arguments still aligned."""
        logging.getLogger("asyncio").error("Lost %s partitions\n%s", 3, SENTINEL)

        assert captured.one()["event"] == "Lost 3 partitions"
        assert not captured.leaks()


class TestKnownNames:
    def test_bootstrap_lists_give_servers_and_hosts(self) -> None:
        """Each server of a comma-separated list, and its host, are names."""
        assert known_names("kafka-a:9092, [::1]:9093", "g", None, ["t1", ""]) == {
            "kafka-a:9092, [::1]:9093", "kafka-a:9092", "kafka-a", "[::1]:9093", "::1", "g", "t1"
        }  # fmt: skip

    def test_log_names_of_settings(self) -> None:
        """Topics under the prefix, the group id, the bootstrap servers."""
        settings = TriageSettings(topic_prefix="r1.", group_id="grp", kafka_bootstrap="b1:9092")

        names = log_names(settings)

        assert {"r1.dv.reports.v1", "r1.dv.deadletter.v1", "grp", "b1:9092", "b1"} <= names
        assert not any("V-0" in n for n in names)


class TestLoggingConfig:
    def test_is_a_dict_config_with_one_redacting_handler(self) -> None:
        """The config renders through structlog's formatter with the redaction in its chain."""
        config = logging_config("json", "WARNING")

        assert config["version"] == 1
        assert config["disable_existing_loggers"] is False
        assert config["root"] == {"handlers": ["default"], "level": "WARNING"}
        formatter = config["formatters"]["triage"]
        assert (formatter["pass_foreign_args"], formatter["use_get_message"]) == (True, False)
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


def test_every_key_our_log_calls_pass_is_allowed() -> None:
    """A key missing from ALLOWED_KEYS is silently dropped from the line: every keyword
    of the project's own log calls (``log.info(..., key=...)``) must be on the list
    (names only: the values are ids, counts and codes, checked where they are made)."""
    import ast
    from pathlib import Path

    import triage

    root = Path(triage.__file__).parent
    dropped: list[str] = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("debug", "info", "warning", "error", "exception")
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "log"
            ):
                dropped += [
                    f"{path.relative_to(root)}:{node.lineno} {kw.arg}"
                    for kw in node.keywords
                    if kw.arg is not None and kw.arg not in ALLOWED_KEYS
                ]
    assert not dropped
