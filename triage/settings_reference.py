"""The settings reference (``docs/settings.md``), rendered from the settings model.

Every field of :class:`triage.settings.TriageSettings` becomes one row: its
environment variable, default, accepted values and description, all read from
the model (field order, ``Field(description=...)``, the JSON Schema's types and
bounds). Nothing is written by hand, so the page cannot drift from the code:
``triage settings-doc --check`` (and a test) fail when the committed page
differs from what the model renders.

Module-level imports stay light (click only): this module is imported when the
command line starts, the settings model only when a command runs.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

__all__ = [
    "DEFAULT_PATH",
    "check_settings_reference",
    "env_var",
    "missing_descriptions",
    "render_settings_reference",
    "settings_doc",
]

DEFAULT_PATH = Path("docs/settings.md")
"""Where the reference lives, relative to the repository root."""

_HEADER = """\
<!-- Generated from triage/settings.py by `triage settings-doc`: do not edit by hand. -->
# Settings reference

`triage` reads its settings from environment variables, in one place
(`triage/settings.py`), into one frozen object. A value that does not fit is
refused at start-up, naming the variable; a misspelt `{prefix}*` name is not
noticed, so check names against this table. `triage config show` prints the
effective values with secrets masked. Pass secrets from a secret store, never
from a committed file.

| Variable | Default | Accepts | Meaning |
|---|---|---|---|
"""


def _model() -> type[BaseSettings]:
    from triage.settings import TriageSettings

    return TriageSettings


def env_var(model: type[BaseSettings], name: str) -> str:
    """The environment variable that sets field ``name`` (e.g. ``TRIAGE_PARTITIONS``)."""
    field = model.model_fields[name]
    if isinstance(field.validation_alias, str):  # pydantic-settings skips the prefix then
        return field.validation_alias.upper()
    if field.validation_alias is not None:
        raise ValueError(f"setting {name}: only plain string aliases are supported")
    prefix = str(model.model_config.get("env_prefix", ""))
    return f"{prefix}{name}".upper()


def missing_descriptions(model: type[BaseSettings] | None = None) -> list[str]:
    """Names of the fields that have no (non-blank) description."""
    model = model or _model()
    return [
        name
        for name, field in model.model_fields.items()
        if not (field.description and field.description.strip())
    ]


def render_settings_reference(model: type[BaseSettings] | None = None) -> str:
    """The Markdown reference of every setting of ``model`` (default: TriageSettings).

    Raises :class:`ValueError` when a field has no description: an undocumented
    setting is a bug, not a blank cell.
    """
    model = model or _model()
    if missing := missing_descriptions(model):
        raise ValueError(f"settings without a description: {', '.join(missing)}")
    properties: Mapping[str, Any] = model.model_json_schema(mode="validation")["properties"]
    prefix = str(model.model_config.get("env_prefix", ""))
    lines = [_HEADER.format(prefix=prefix)]
    for name, field in model.model_fields.items():
        schema = properties.get(field.alias or name, {})
        default = field.get_default(call_default_factory=True)
        cells = (
            f"`{env_var(model, name)}`",
            _default(default),
            _accepts(schema),
            str(field.description).strip(),
        )
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |\n")
    return "".join(lines)


def check_settings_reference(path: Path = DEFAULT_PATH) -> list[str]:
    """How ``path`` differs from the rendered reference (empty when it is up to date).

    The first line is a summary naming the command that fixes it; a unified
    diff of the first differences follows.
    """
    expected = render_settings_reference()
    if not path.is_file():
        return [f"{path} is missing; run `triage settings-doc -o {path}`"]
    actual = path.read_text(encoding="utf-8")
    if actual == expected:
        return []
    diff = difflib.unified_diff(
        actual.splitlines(),
        expected.splitlines(),
        fromfile=f"{path} (committed)",
        tofile=f"{path} (from the model)",
        lineterm="",
        n=0,
    )
    return [f"{path} is out of date; run `triage settings-doc -o {path}`", *list(diff)[:40]]


def _default(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        return f"`{value.as_posix()}`"
    if value == "":
        return "empty"
    if hasattr(value, "get_secret_value"):
        return "(secret)"
    return f"`{value}`"


def _accepts(schema: Mapping[str, Any]) -> str:
    """A short phrase for the values a field accepts, from its JSON Schema."""
    options = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    optional = len(options) < len(schema.get("anyOf", [schema]))
    phrase = " or ".join(_one_type(s) for s in options) or "any value"
    return f"{phrase}; optional" if optional else phrase


def _one_type(schema: Mapping[str, Any]) -> str:
    if "enum" in schema:
        return " · ".join(f"`{v}`" for v in schema["enum"])
    kind, fmt = schema.get("type", "value"), schema.get("format")
    if fmt == "password":
        return "secret string (masked when printed)"
    if fmt == "path":
        return "path"
    low, high = schema.get("minimum"), schema.get("maximum")
    if kind == "integer" and low is not None and high is not None:
        return f"integer {low}–{high}"
    if kind == "integer" and low is not None:
        return f"integer ≥ {low}"
    if "pattern" in schema:
        return f"{kind} matching `{schema['pattern']}`"
    return str(kind)


def _cell(text: str) -> str:
    """Table-safe text: a pipe would end the cell, a newline the row."""
    return text.replace("|", "\\|").replace("\n", " ")


@click.command("settings-doc")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_PATH,
    show_default=True,
    help="Where to write the reference ('-' prints it).",
)
@click.option("--check", is_flag=True, help="Only check that the file is up to date.")
def settings_doc(output: Path, check: bool) -> None:
    """Render the settings reference (every TRIAGE_* variable) from the settings model."""
    try:
        if check:
            problems = check_settings_reference(output)
            if problems:
                raise click.ClickException("\n".join(problems))
            click.echo(f"{output}: up to date")
            return
        text = render_settings_reference()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if str(output) == "-":
        click.echo(text, nl=False)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    if not output.is_file() or output.read_text(encoding="utf-8") != text:
        output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}")
