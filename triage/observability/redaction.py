"""Keeping personal data out of logs: an allow-list, not a deny-list.

Our own log calls may only carry the keys in :data:`ALLOWED_KEYS`; anything
else is dropped.

Records from libraries (Faust, mode, aiokafka, kafka-python) keep the first line
of their message template, and each %-argument is rendered only if it is
recognisably *not* personal data; every other argument becomes
``<redacted:TYPE>``. What is kept (:func:`render_library_message`):

- numbers and booleans, ``None``, enum members, ``timedelta`` durations;
- partitions: Faust's ``TP``, aiokafka's and kafka-python's ``TopicPartition``
  (also ``OffsetAndMetadata``, ``OffsetAndTimestamp``, ``BrokerMetadata``), alone or
  in sets, lists, tuples and dicts keyed by partition; string fields inside them
  pass the string rule below (``topic`` and ``host`` fields by their shape);
- connection objects of the Kafka clients (their text names node, host and port);
- strings, only when one of these holds:

  * it is one of the names the logging was configured with (topics, group id,
    bootstrap servers and their hosts: :func:`known_names`);
  * it has the shape of ``host:port`` (or a comma-separated list of them);
  * it has the shape of one of our topics (``[prefix]dv.<name>.v<N>``), of
    a Faust internal topic (``…-changelog``, ``…-repartition``, ``…-__assignor-__leader``)
    or of a kafka-python node id (``bootstrap-0``, ``coordinator-1``);
  * the template names what it is, right before the placeholder (``group %s``,
    ``topic %s``, ``node %s``, ``coordinator %s``, ``member_id %s``…) and it is made
    of ``[A-Za-z0-9._-]`` only; or it is followed by ``:%s`` and a port number
    (``"%s:%s" % (host, port)``) and is a host name or IP address;

- exceptions of the Kafka clients (classes defined in ``kafka.errors`` or
  ``aiokafka.errors``) and of the network (``OSError`` and its built-in, ``socket``
  and ``ssl`` subclasses: ``ConnectionError``, ``TimeoutError`` = ``asyncio.TimeoutError``):
  type and message, on one line.

Everything else (bytes, other dicts, strings of any other shape, records, events,
arbitrary objects, and the message of any other exception: a pydantic
``ValidationError`` or a ``JSONDecodeError`` quotes its input) is redacted. An
exception attached to any line (``exc_info``) gives ``exc_type`` and
``exc_where``, and ``exc_message`` only for the Kafka and network exceptions above.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import logging
import re
import sys
import traceback
from collections.abc import Iterable, Mapping, MutableMapping
from datetime import timedelta
from typing import Any

ALLOWED_KEYS = frozenset(
    {
        # structlog's own
        "event", "level", "logger", "timestamp", "exc_type", "exc_where", "exc_message",
        # where a record came from / went
        "topic", "partition", "offset", "event_id", "event_type", "decision_id", "record_id",
        # what happened
        "reason", "outcome", "level_", "queue", "unit", "stage", "kind", "count", "seconds",
        "rules_version", "victim", "bootstrap", "group", "partitions", "port", "pid", "path",
        "processed", "held", "lag", "mode", "version", "first", "end", "records", "stamp",
        "target", "agent", "error", "ahead_s", "inputs", "states", "table", "unacknowledged",
        "why",
        # the console's access log (path: the route template, never the filled path)
        "method", "status",
    }
)  # fmt: skip
"""Keys a log line may carry. ``victim`` is always a hash, never the reference."""

MAX_ITEMS = 64
"""Items of a container shown before ``…(+N more)``."""
MAX_TEXT = 500
"""Characters of one rendered argument or exception message."""
MAX_EVENT = 8000
"""Characters of a library's rendered message."""


def victim_hash(victim_ref: str) -> str:
    """A short, stable pseudonym of a victim reference for correlating log lines."""
    return hashlib.sha256(b"triage-log:" + victim_ref.encode()).hexdigest()[:12]


def known_names(*values: str | Iterable[str] | None) -> frozenset[str]:
    """Names library log lines may show as they are: topics, group id, bootstrap servers.

    A comma-separated bootstrap list gives each server and each server's host too.
    """
    out: set[str] = set()
    for value in values:
        if value is None:
            continue
        for item in [value] if isinstance(value, str) else value:
            out.add(item.strip())
            for part in item.split(","):
                part = part.strip()
                out.add(part)
                host, sep, port = part.rpartition(":")
                if sep and port.isdigit() and host:
                    out.add(host.strip("[]"))
    out.discard("")
    return frozenset(out)


class RedactPersonalData:
    """structlog processor: keep allow-listed keys; render foreign records' safe arguments."""

    __slots__ = ("allowed", "names")

    def __init__(
        self, allowed: frozenset[str] = ALLOWED_KEYS, names: frozenset[str] = frozenset()
    ) -> None:
        self.allowed = allowed
        self.names = names

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Drop every key that is not allowed; make foreign messages safe."""
        record = event_dict.get("_record")
        if isinstance(record, logging.LogRecord) and not event_dict.get("_from_structlog", False):
            # A library's (or a plain stdlib) record: the first line of its template
            # (pre-formatted text such as asyncio's "future: <... exception=...>" goes
            # on later lines), with only its recognisably safe arguments.
            # structlog's ProcessorFormatter hands the arguments over as
            # ``positional_args`` (``pass_foreign_args=True``) and empties record.args.
            args = event_dict.get("positional_args", record.args)
            event_dict["event"] = render_library_message(record.msg, args, self.names)
            if record.exc_info and record.exc_info[0] is not None:
                _describe(event_dict, record.exc_info[1])
            event_dict.pop("exc_info", None)
            event_dict.pop("positional_args", None)
        exc = event_dict.pop("exc_info", None)
        if exc is True:
            exc = sys.exc_info()
        if isinstance(exc, BaseException):
            _describe(event_dict, exc)
        elif isinstance(exc, tuple) and exc[0] is not None:
            _describe(event_dict, exc[1])
        for key in list(event_dict):
            if key not in self.allowed and not key.startswith("_"):
                del event_dict[key]
        return event_dict


def _describe(event_dict: MutableMapping[str, Any], exc: BaseException | None) -> None:
    """Exception type and where it was raised (file:line function, innermost last).

    The message only for the Kafka clients' and network exceptions: others can
    quote record contents.
    """
    if exc is None:
        return
    event_dict["exc_type"] = type(exc).__name__
    if _message_allowed(type(exc)):
        event_dict["exc_message"] = _exception_text(exc, frozenset())
    frames = traceback.extract_tb(exc.__traceback__)[-6:]
    if frames:
        event_dict["exc_where"] = " < ".join(
            f"{frame.filename.rsplit('site-packages/', 1)[-1]}:{frame.lineno} {frame.name}"
            for frame in reversed(frames)
        )


# --- library arguments ---------------------------------------------------------------


class _Shown(str):
    """Text already rendered safe: ``%s`` and ``%r`` both show it as it is."""

    __slots__ = ()


class _Redacted(_Shown):
    """The placeholder of a value that is not shown."""

    __slots__ = ()


def _redacted(value: object) -> _Redacted:
    return _Redacted(f"<redacted:{type(value).__name__}>")


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*\.?")
_PORT = r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
_SERVER = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]{{2,45}}\]):{_PORT}"
_SERVERS = re.compile(rf"{_SERVER}(?:, ?{_SERVER})*")
_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_TOPIC_SHAPES = (
    re.compile(r"[A-Za-z0-9._-]{0,120}dv\.[a-z0-9-]+(?:\.[a-z0-9-]+)*\.v[0-9]{1,3}"),
    re.compile(r"[A-Za-z0-9._-]{1,200}-(?:changelog|repartition|__assignor-__leader)"),
    re.compile(r"(?:bootstrap|coordinator)-[0-9]{1,10}"),  # kafka-python's node ids
)
_WORD = (
    r"groups?|group[ _]id|topics?|topic\(s\)|nodes?|node[ _]id|coordinator|member[ _]id|member"
    r"|client[ _]id|transactional[ _]id|rack|host"
)
_CONTEXT = re.compile(rf"(?i)(?:^|[^A-Za-z0-9_])(?P<word>{_WORD})\s*[:=]?\s*['\"\[(]?$")
"""The word right before a placeholder that says what its value is."""
_KEY = re.compile(rf"(?i){_WORD}")
_OBJECT_TEXT = re.compile(r"[A-Za-z0-9_<>=.:,\[\]()/ -]{1,300}")
_SPEC = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?(?P<flags>[#0 +-]*)(?P<width>\*|[0-9]+)?"
    r"(?:\.(?P<prec>\*|[0-9]+))?[hlL]?(?P<conv>[diouxXeEfFgGcrsa%])"
)
_NUMERIC = frozenset("diouxXeEfFgGc")

_STRUCTS = frozenset(
    {
        "faust.types.tuples.TP",
        "aiokafka.structs.TopicPartition",
        "aiokafka.structs.OffsetAndMetadata",
        "aiokafka.structs.OffsetAndTimestamp",
        "aiokafka.structs.BrokerMetadata",
        "kafka.structs.TopicPartition",
        "kafka.structs.OffsetAndMetadata",
        "kafka.structs.OffsetAndTimestamp",
    }
)
"""Named tuples of partitions, offsets and brokers: shown field by field."""
_PARTITIONS = frozenset(
    {
        "faust.types.tuples.TP",
        "aiokafka.structs.TopicPartition",
        "kafka.structs.TopicPartition",
    }
)
"""Keys of dicts that may be shown (offsets or positions by partition)."""
_CONNECTIONS = frozenset(
    {
        "aiokafka.conn.AIOKafkaConnection",
        "kafka.net.connection.KafkaConnection",
        "kafka.net.transport.KafkaTCPTransport",
        "kafka.net.transport.KafkaSSLTransport",
        "kafka.net.selector.NetworkSelector",
    }
)
"""Connection objects whose text is node id, host, port and state only."""
_ERROR_MODULES = frozenset({"kafka.errors", "aiokafka.errors"})
_NETWORK_MODULES = frozenset({"builtins", "socket", "ssl"})
_FIELD_KINDS = {"topic": "name", "rack": "name", "host": "host"}


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _message_allowed(cls: type[BaseException]) -> bool:
    """Whether an exception's message names brokers, partitions and states only."""
    if cls.__module__ in _ERROR_MODULES:
        return True
    return issubclass(cls, OSError) and cls.__module__ in _NETWORK_MODULES


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _kind_of(word: str | None) -> str | None:
    """What a value is, from the word naming it (template text, field or mapping key)."""
    if not word:
        return None
    word = word.lower().replace(" ", "_")
    if word == "host":
        return "host"
    return "name"


def _safe_str(text: str, kind: str | None, names: frozenset[str]) -> str | _Redacted:
    if (
        not text
        or text in names
        or _SERVERS.fullmatch(text)
        or any(shape.fullmatch(text) for shape in _TOPIC_SHAPES)
        or (kind == "name" and _NAME.fullmatch(text))
        or (kind == "host" and (_HOST.fullmatch(text) or _is_ip(text)))
        or (kind == "ip" and _is_ip(text))
    ):
        return text
    return _redacted(text)


def _exception_text(exc: BaseException, names: frozenset[str]) -> str:
    """``Type: message`` of an exception whose message may be shown."""
    name = type(exc).__name__
    if all(isinstance(a, str | int | float | None) for a in exc.args):
        try:
            text = str(exc)
        except Exception:  # a broken __str__ is no reason to lose the line
            text = ""
    else:
        text = ", ".join(_text(safe(a, None, names), "r") for a in exc.args)
    if name not in text:
        text = f"{name}: {text}" if text else name
    return _one_line(text)


def safe(value: object, kind: str | None, names: frozenset[str], depth: int = 0) -> object:
    """``value`` itself if it may be shown as is, safe text for it, or a placeholder.

    ``kind`` says what the surrounding text calls the value: ``"name"`` (a group,
    topic, node…), ``"host"``, ``"ip"``, or None when nothing does.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, enum.Enum):
        return _Shown(f"{type(value).__name__}.{value.name}")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return _safe_str(str(value), kind, names)
    if isinstance(value, timedelta):
        return _Shown(str(value))
    if isinstance(value, BaseException):
        if _message_allowed(type(value)):
            return _Shown(_exception_text(value, names))
        return _redacted(value)
    if depth >= 3:
        return _redacted(value)
    cls = type(value)
    qualified = _qualified(cls)
    if qualified in _STRUCTS and isinstance(value, tuple):
        fields: tuple[str, ...] = getattr(cls, "_fields", ())
        shown = ", ".join(
            f"{field}={_text(safe(item, _FIELD_KINDS.get(field), names, depth + 1), 'r')}"
            for field, item in zip(fields, value, strict=False)
        )
        return _Shown(f"{cls.__name__}({shown})")
    if qualified in _CONNECTIONS:
        try:
            text = str(value)
        except Exception:
            return _redacted(value)
        return _Shown(text) if _OBJECT_TEXT.fullmatch(text) else _redacted(value)
    if isinstance(value, set | frozenset | list | tuple) and cls in (set, frozenset, list, tuple):
        return _container(value, kind, names, depth)
    if (
        isinstance(value, dict)
        and cls is dict
        and value
        and all(_qualified(type(k)) in _PARTITIONS for k in value)
    ):
        items = list(value.items())
        return _Shown(
            "{"
            + ", ".join(
                f"{_text(safe(k, None, names, depth + 1), 'r')}: "
                f"{_text(safe(v, None, names, depth + 1), 'r')}"
                for k, v in items[:MAX_ITEMS]
            )
            + _more(len(items))
            + "}"
        )
    return _redacted(value)


def _more(count: int) -> str:
    return f", …(+{count - MAX_ITEMS} more)" if count > MAX_ITEMS else ""


def _container(
    value: set[Any] | frozenset[Any] | list[Any] | tuple[Any, ...],
    kind: str | None,
    names: frozenset[str],
    depth: int,
) -> _Shown:
    items = list(value)
    kinds = [kind] * len(items)
    if (
        isinstance(value, tuple)
        and len(items) in (2, 4)
        and isinstance(items[0], str)
        and isinstance(items[1], int)
    ):
        kinds[0] = "ip"  # a socket address: ("127.0.0.1", 9092)
    shown = [_text(safe(i, k, names, depth + 1), "r") for i, k in zip(items, kinds, strict=True)]
    if isinstance(value, set | frozenset):
        shown.sort()
    text = ", ".join(shown[:MAX_ITEMS]) + _more(len(shown))
    if isinstance(value, list):
        return _Shown(f"[{text}]")
    if isinstance(value, tuple):
        return _Shown(f"({text},)" if len(shown) == 1 else f"({text})")
    if not shown:
        return _Shown(f"{type(value).__name__}()")
    return _Shown(f"{{{text}}}" if isinstance(value, set) else f"frozenset({{{text}}})")


def _text(value: object, conv: str) -> str:
    """A safe value as ``%s`` (conv ``"s"``) or ``%r`` (``"r"``) would show it."""
    if isinstance(value, _Shown):
        return str.__str__(value)
    return repr(value) if conv in "ra" else str(value)


def _format(spec: re.Match[str], value: object) -> str:
    conv = spec["conv"]
    plain = "%" + (spec["flags"] or "") + (spec["width"] or "")
    plain += f".{spec['prec']}" if spec["prec"] else ""
    if conv in _NUMERIC and type(value) in (int, float, bool):
        try:
            return (plain + conv) % (value,)
        except (TypeError, ValueError, OverflowError):
            return str(value)
    if isinstance(value, _Shown):
        return (plain + "s") % (str.__str__(value),)
    if conv in _NUMERIC:
        return _text(value, "s")
    return (plain + conv) % (value,)


def render_library_message(msg: object, args: object, names: frozenset[str] = frozenset()) -> str:
    """A library's log message with only its safe arguments (see the module docstring).

    The template's first line only: later lines can hold pre-formatted text.
    """
    if not isinstance(msg, str):
        shown = safe(msg, None, names) if not args else _redacted(msg)
        return _one_line(_text(shown, "s"))
    template = msg.split("\n", 1)[0]
    if not args:
        return template
    positional: tuple[Any, ...] = args if isinstance(args, tuple) else (args,)
    mapping = args if isinstance(args, Mapping) else None
    pieces: list[str] = []
    done, index = 0, 0
    for spec in _SPEC.finditer(template):
        pieces.append(template[done : spec.start()])
        done = spec.end()
        if spec["conv"] == "%":
            pieces.append("%")
            continue
        if spec["width"] == "*" or spec["prec"] == "*":
            return template  # never met in the libraries; not worth the bookkeeping
        key = spec["key"]
        if key is not None:
            if mapping is None or key not in mapping:
                return template
            value, kind = mapping[key], _kind_of(key if _KEY.fullmatch(key) else None)
        else:
            if index >= len(positional):
                return template
            value = positional[index]
            index += 1
            context = _CONTEXT.search(template, 0, spec.start())
            kind = _kind_of(context["word"]) if context else None
            if (
                template.startswith(":%", done)
                and index < len(positional)
                and type(positional[index]) is int
                and 0 <= positional[index] <= 65535
            ):
                kind = "host"  # "%s:%s" % (host, port)
        try:
            shown = safe(value, kind, names)
            pieces.append(_format(spec, shown))
        except Exception:  # a broken __str__ of a library object: hide it, keep the line
            pieces.append(_redacted(value))
    pieces.append(template[done:])
    text = "".join(pieces)
    return text if len(text) <= MAX_EVENT else text[: MAX_EVENT - 1] + "…"
