"""JSON Schemas of the event contracts: export them to ``schemas/`` and check for drift.

One file per (type, schema version), ``<type>.v<version>.schema.json``, generated
from the pydantic model and serialised deterministically. :func:`check_schemas`
explains every disagreement in human terms and flags the breaking ones.

A change is *breaking* when an event valid under the committed schema could be
rejected by the new one, when a field consumers rely on disappears, or when the
meaning of an omitted field changes (a new default). Adding an optional field,
widening an enum or relaxing a bound is compatible.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic.json_schema import JsonSchemaMode

from triage.errors import SchemaDriftError
from triage.events.registry import ALL_MODELS, INPUT_MODELS

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SUFFIX = ".schema.json"
_ANNOTATIONS = frozenset({"title", "description", "examples", "deprecated", "$comment"})
_LOWER = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties")
_UPPER = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties")
_HANDLED = _ANNOTATIONS | {*_LOWER, *_UPPER, "anyOf", "type", "enum", "const", "default"}
_HANDLED |= {"pattern", "properties", "required", "additionalProperties", "items", "$defs"}
Schema = dict[str, Any]


def schema_filename(event_type: str, version: int) -> str:
    """The file name of one contract, e.g. ``report.received.v1.schema.json``."""
    return f"{event_type}.v{version}{SUFFIX}"


def build_schema(event_type: str, version: int) -> Schema:
    """The JSON Schema of one (type, version), with ``$schema`` and ``$id`` set."""
    key = (event_type, version)
    # Inputs are described as producers may write them (defaults optional);
    # outputs as we always write them (every field present).
    mode: JsonSchemaMode = "validation" if key in INPUT_MODELS else "serialization"
    schema = ALL_MODELS[key].model_json_schema(mode=mode)
    return {"$schema": DIALECT, "$id": f"urn:triage:schema:{event_type}:v{version}", **schema}


def render(schema: Schema) -> str:
    """Deterministic text: sorted keys, 2-space indent, UTF-8 kept readable, final newline."""
    return json.dumps(schema, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def export_schemas(directory: Path) -> list[Path]:
    """Write every contract into ``directory`` and delete stale ``*.schema.json`` files.

    Files whose content is already right are left untouched; sub-directories
    (``examples/``) are never touched. Returns the paths of all contracts.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for event_type, version in sorted(ALL_MODELS):
        path = directory / schema_filename(event_type, version)
        data = render(build_schema(event_type, version)).encode("utf-8")
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
        written.append(path)
    for stale in sorted(set(directory.glob(f"*{SUFFIX}")) - set(written)):
        stale.unlink()
    return written


@dataclass(frozen=True, slots=True)
class Difference:
    """One disagreement between a committed schema and the models."""

    label: str
    text: str
    breaking: bool

    def line(self) -> str:
        """``report.received v1: field 'x' removed (breaking)``."""
        return f"{self.label}: {self.text}" + (" (breaking)" if self.breaking else "")


def check_schemas(directory: Path) -> None:
    """Raise :class:`SchemaDriftError` when ``directory`` disagrees with the models.

    The message's first line is a self-sufficient summary; each further line is
    one difference: a missing or extra file, or a change described by field.
    """
    found: list[Difference] = []
    expected = {schema_filename(t, v): (t, v) for t, v in ALL_MODELS}
    present = {p.name for p in directory.glob(f"*{SUFFIX}")} if directory.is_dir() else set()
    for name in sorted(expected.keys() | present):
        if name not in present:
            t, v = expected[name]
            found.append(Difference(f"{t} v{v}", f"missing file {name}", False))
        elif name not in expected:
            base, _, ver = name.removesuffix(SUFFIX).rpartition(".v")
            label = f"{base} v{ver}" if base and ver.isdigit() else name
            found.append(Difference(label, f"extra file {name}: no model produces it", True))
        else:
            found.extend(compare_file(directory / name, *expected[name]))
    if found:
        breaking = sum(d.breaking for d in found)
        plural = "" if len(found) == 1 else "s"
        head = (
            f"{directory.as_posix().rstrip('/')}/ is out of date: {len(found)} difference{plural}"
            f" ({breaking} breaking); run `triage schemas export`"
        )
        raise SchemaDriftError("\n".join([head, *(d.line() for d in found)]))


def compare_file(path: Path, event_type: str, version: int) -> list[Difference]:
    """The differences between one committed file and what the model generates now."""
    label = f"{event_type} v{version}"
    new = build_schema(event_type, version)
    text = path.read_text(encoding="utf-8")
    try:
        old = json.loads(text)
    except json.JSONDecodeError as exc:
        return [Difference(label, f"file is not valid JSON (line {exc.lineno})", True)]
    if not isinstance(old, dict):
        return [Difference(label, "file is not a JSON object", True)]
    found: list[Difference] = []
    try:
        _Walker(old, new, lambda msg, brk: found.append(Difference(label, msg, brk))).node(
            "", old, new, "#", set()
        )
    except (AttributeError, TypeError):  # a hand-edited file that is not a sane schema
        found.clear()
    if not found and old != new:
        found.append(Difference(label, f"content differs at {_first_diff(old, new, '#')}", True))
    if not found and text != render(new):
        found.append(Difference(label, "formatting is not canonical", False))
    return found


class _Walker:
    """Walks two schemas side by side, resolving ``$ref`` so paths name fields."""

    def __init__(self, old: Schema, new: Schema, say: Callable[[str, bool], None]) -> None:
        self.roots, self.say = (old, new), say

    def node(self, field: str, old: Any, new: Any, ptr: str, stack: set[tuple[str, str]]) -> None:
        """Compare the schemas of one field (``""`` is the event itself)."""
        if isinstance(old, dict) and isinstance(new, dict):
            old, old_null, old_ref = _normalise(self.roots[0], old)
            new, new_null, new_ref = _normalise(self.roots[1], new)
            if (old_ref or new_ref) and (old_ref, new_ref) in stack:  # a recursive model
                return
            if "$ref" not in old and "$ref" not in new:  # both references resolved
                self._compare(field, old, new, new_ref or ptr, stack | {(old_ref, new_ref)})
                if old_null != new_null:
                    verb = "now accepts" if new_null else "no longer accepts"
                    self.say(f"{_name(field)} {verb} null", old_null)
                return
        if old != new:
            self.say(f"content differs at {ptr}", True)

    def _compare(self, field: str, old: Schema, new: Schema, ptr: str, stack: set[Any]) -> None:
        """Compare two resolved, non-null schemas keyword by keyword."""
        name, say = _name(field), self.say
        if old.get("type") != new.get("type"):
            say(f"type of {name} changed ({_fmt(old, 'type')} → {_fmt(new, 'type')})", True)
            return
        self._values(name, _allowed(old), _allowed(new))
        if (default := _default_change(old, new)) is not None:
            say(f"default of {name} changed ({default})", True)
        for key in ("pattern", *_LOWER, *_UPPER):
            was, now = old.get(key), new.get(key)
            if was != now:
                ordered = was is not None and now is not None and key != "pattern"
                looser = now is None or (ordered and (now < was) == (key in _LOWER))
                say(f"{key} of {name} changed ({_fmt(old, key)} → {_fmt(new, key)})", not looser)
        self._object(field, old, new, ptr, stack)
        if "items" in old or "items" in new:
            self.node(f"{field}[]", old.get("items"), new.get("items"), f"{ptr}/items", stack)
        was_any, now_any = old.get("anyOf", []), new.get("anyOf", [])
        if len(was_any) == len(now_any):
            for i, (a, b) in enumerate(zip(was_any, now_any, strict=True)):
                self.node(field, a, b, f"{ptr}/anyOf/{i}", stack)
        else:
            say(f"accepted shapes of {name} changed at {ptr}/anyOf", True)
        for key in sorted((old.keys() | new.keys()) - _HANDLED):
            if old.get(key) != new.get(key):
                say(f"content differs at {ptr}/{key}", True)
        for key in sorted(_ANNOTATIONS):
            if old.get(key) != new.get(key):
                say(f"{key} of {name} changed", False)

    def _values(self, name: str, was: list[Any] | None, now: list[Any] | None) -> None:
        """Report changes to the fixed values (``enum``/``const``) a field allows."""
        if was is None or now is None:
            if was != now:
                limit = "is now" if was is None else "is no longer"
                self.say(f"{name} {limit} limited to fixed values", was is None)
        elif was != now:
            removed, added = [v for v in was if v not in now], [v for v in now if v not in was]
            changes = (("removed", removed), ("added", added))
            text = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in changes if v)
            self.say(f"{name} allowed values changed ({text or 'order'})", bool(removed))

    def _object(self, field: str, old: Schema, new: Schema, ptr: str, stack: set[Any]) -> None:
        """Report added, removed and newly required or optional properties; recurse."""
        props_old, props_new = old.get("properties", {}), new.get("properties", {})
        req_old, req_new = set(old.get("required", ())), set(new.get("required", ()))
        for prop in sorted(props_old.keys() | props_new.keys()):
            child, required = f"{field}.{prop}" if field else prop, prop in req_new
            if prop not in props_new:
                self.say(f"field '{child}' removed", True)
            elif prop not in props_old:
                self.say(f"field '{child}' added{' (required)' if required else ''}", required)
            else:
                self.node(
                    child, props_old[prop], props_new[prop], f"{ptr}/properties/{prop}", stack
                )
                if (prop in req_old) != required:
                    became = "required" if required else "optional"
                    self.say(f"field '{child}' became {became}", required)
        extra_old, extra_new = old.get("additionalProperties"), new.get("additionalProperties")
        if isinstance(extra_old, dict) and isinstance(extra_new, dict):
            self.node(f"{field}.*", extra_old, extra_new, f"{ptr}/additionalProperties", stack)
        elif extra_old != extra_new:
            verb = "now rejects" if extra_new is False else "now accepts"
            self.say(f"{_name(field)} {verb} unknown properties", extra_new is False)


def _name(field: str) -> str:
    """How a message names a field."""
    return f"field '{field}'" if field else "the event"


def _normalise(root: Schema, node: Schema) -> tuple[Schema, bool, str]:
    """Resolve local ``$ref`` and peel ``anyOf: [X, null]`` → (X, nullable, last ref)."""
    nullable, ref = False, ""
    for _ in range(2):
        target = node.get("$ref")
        if isinstance(target, str) and target.startswith("#/"):
            resolved: Any = root
            for part in target[2:].split("/"):
                resolved = resolved.get(part) if isinstance(resolved, dict) else None
            if isinstance(resolved, dict):
                ref = target
                node = {**resolved, **{k: v for k, v in node.items() if k != "$ref"}}
        options = node.get("anyOf")
        if isinstance(options, list) and len(options) == 1:
            node = {**options[0], **{k: v for k, v in node.items() if k != "anyOf"}}
        elif isinstance(options, list) and {"type": "null"} in options:
            nullable, rest = True, [o for o in options if o != {"type": "null"}]
            node = {k: v for k, v in node.items() if k != "anyOf"}
            node = {**rest[0], **node} if len(rest) == 1 else {**node, "anyOf": rest}
    return node, nullable, ref


def _allowed(node: Schema) -> list[Any] | None:
    """The fixed values a schema allows (``enum`` or ``const``), or ``None``."""
    if "enum" in node:
        return list(node["enum"])
    return [node["const"]] if "const" in node else None


def _fmt(node: Schema, key: str) -> str:
    """``node[key]`` as short JSON, or ``none`` when the keyword is absent."""
    if key not in node:
        return "none"
    text = json.dumps(node[key], ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 60 else text[:59] + "…"


def _default_change(old: Schema, new: Schema) -> str | None:
    """How the default changed, or ``None``. For objects only keys present on both
    sides count: an added or removed key is reported as an added or removed field."""
    was, now = old.get("default"), new.get("default")
    if isinstance(was, dict) and isinstance(now, dict):
        keys = sorted(k for k in was.keys() & now.keys() if was[k] != now[k])
        return f"for {', '.join(keys)}" if keys else None
    if ("default" in old, was) == ("default" in new, now):
        return None
    return f"{_fmt(old, 'default')} → {_fmt(new, 'default')}"


def _first_diff(old: Any, new: Any, ptr: str) -> str:
    """JSON pointer of the first place where two JSON values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            if old.get(key) != new.get(key):
                return _first_diff(old.get(key), new.get(key), f"{ptr}/{key}")
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            if a != b:
                return _first_diff(a, b, f"{ptr}/{i}")
    return ptr
