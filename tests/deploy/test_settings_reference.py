"""docs/settings.md: rendered from the settings model, so it cannot drift."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from triage.cli import cli
from triage.settings import TriageSettings
from triage.settings_reference import (
    check_settings_reference,
    env_var,
    missing_descriptions,
    render_settings_reference,
)

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "settings.md"
ROW = re.compile(r"^\| `(TRIAGE_[A-Z0-9_]+)` \| (.*?) \| (.*?) \| (.*) \|$")


def rows(text: str) -> dict[str, tuple[str, str, str]]:
    """Table rows of a rendered reference: variable -> (default, accepts, meaning)."""
    found = {}
    for line in text.splitlines():
        if match := ROW.match(line):
            found[match.group(1)] = (match.group(2), match.group(3), match.group(4))
    return found


def sample_value(schema: dict[str, Any], default: Any) -> str:
    """A valid value that differs from the default, from a field's JSON Schema."""
    options = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    first = options[0]
    if "enum" in first:  # the first choice that is not the default (SSL, not SASL_*)
        return str(next(v for v in first["enum"] if v != default))
    if first.get("type") == "boolean":
        return str(not default).lower()
    if first.get("type") in ("integer", "number"):
        return str(first.get("minimum", 0) + 1)
    if first.get("format") == "path":
        return "/srv/triage/sample"
    return "sample"


class TestCommittedReference:
    def test_matches_the_model(self) -> None:
        """docs/settings.md is exactly what the model renders (run `triage settings-doc`)."""
        problems = check_settings_reference(REFERENCE)

        assert problems == [], "\n".join(problems)

    def test_every_field_has_a_description(self) -> None:
        """No setting of TriageSettings is undocumented."""
        assert missing_descriptions() == []


class TestRendering:
    def test_one_row_per_field_in_model_order(self) -> None:
        """Every field appears once, in the order the model declares them."""
        found = list(rows(render_settings_reference()))

        assert found == [env_var(TriageSettings, name) for name in TriageSettings.model_fields]

    def test_rows_carry_default_and_description(self) -> None:
        """Each row shows the field's default and its description."""
        table = rows(render_settings_reference())

        assert table["TRIAGE_PARTITIONS"][0] == "`4`"
        assert table["TRIAGE_KAFKA_BOOTSTRAP"][0] == "unset"
        assert table["TRIAGE_TOPIC_PREFIX"][0] == "empty"
        for name, field in TriageSettings.model_fields.items():
            assert table[env_var(TriageSettings, name)][2] == field.description

    def test_accepted_values(self) -> None:
        """Choices, bounds, secrets and optional values are spelled out."""
        table = rows(render_settings_reference())

        assert table["TRIAGE_CLOCK_MODE"][1] == "`live` · `replay`"
        assert table["TRIAGE_PARTITIONS"][1] == "integer 1–256"
        assert table["TRIAGE_KAFKA_SASL_PASSWORD"][1].startswith("secret string")
        assert table["TRIAGE_KAFKA_SSL_CAFILE"][1] == "path; optional"

    def test_is_deterministic(self) -> None:
        """Two renderings are identical (the drift check depends on it)."""
        assert render_settings_reference() == render_settings_reference()

    @pytest.mark.parametrize("name", list(TriageSettings.model_fields))
    def test_documented_variable_is_read(self, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """Setting the documented variable changes that setting."""
        for key in list(os.environ):
            if key.upper().startswith("TRIAGE_"):
                monkeypatch.delenv(key)
        field = TriageSettings.model_fields[name]
        schema = TriageSettings.model_json_schema()["properties"][name]
        monkeypatch.setenv(env_var(TriageSettings, name), sample_value(schema, field.default))

        settings = TriageSettings()

        assert getattr(settings, name) != field.default

    def test_pipes_in_descriptions_do_not_break_the_table(self) -> None:
        """A `|` in a description is escaped, so the row keeps four cells."""

        class Piped(BaseSettings):
            model_config = SettingsConfigDict(env_prefix="X_")
            mode: str = Field("a", description="a | b")

        line = render_settings_reference(Piped).splitlines()[-1]

        assert line == r"| `X_MODE` | `a` | string | a \| b |"

    def test_a_field_without_description_is_refused(self) -> None:
        """Rendering fails, naming the field, when a setting has no description."""

        class Undocumented(BaseSettings):
            model_config = SettingsConfigDict(env_prefix="X_")
            documented: int = Field(1, description="Has one.")
            silent: int = 2

        assert missing_descriptions(Undocumented) == ["silent"]
        with pytest.raises(ValueError, match="silent"):
            render_settings_reference(Undocumented)


class TestCommand:
    def test_writes_the_reference(self, tmp_path: Path) -> None:
        """`triage settings-doc -o FILE` writes what the model renders."""
        target = tmp_path / "docs" / "settings.md"

        result = CliRunner().invoke(cli, ["settings-doc", "-o", str(target)])

        assert result.exit_code == 0, result.output
        assert target.read_text(encoding="utf-8") == render_settings_reference()

    def test_check_passes_on_the_committed_file(self) -> None:
        """`triage settings-doc --check` succeeds on the committed reference."""
        result = CliRunner().invoke(cli, ["settings-doc", "--check", "-o", str(REFERENCE)])

        assert result.exit_code == 0, result.output

    def test_check_fails_on_drift(self, tmp_path: Path) -> None:
        """A hand-edited reference fails the check, which names the fix and the change."""
        target = tmp_path / "settings.md"
        edited = render_settings_reference().replace("`triage-worker`", "`triage-workers`")
        target.write_text(edited, encoding="utf-8")

        result = CliRunner().invoke(cli, ["settings-doc", "--check", "-o", str(target)])

        assert result.exit_code == 1
        assert "is out of date; run `triage settings-doc" in result.output
        assert "+| `TRIAGE_GROUP_ID` | `triage-worker` |" in result.output

    def test_check_fails_on_a_missing_file(self, tmp_path: Path) -> None:
        """A missing reference fails the check."""
        result = CliRunner().invoke(
            cli, ["settings-doc", "--check", "-o", str(tmp_path / "nope.md")]
        )

        assert result.exit_code == 1
        assert "is missing" in result.output

    def test_prints_to_stdout(self) -> None:
        """`-o -` prints the reference instead of writing a file."""
        result = CliRunner().invoke(cli, ["settings-doc", "-o", "-"])

        assert result.exit_code == 0
        assert result.output == render_settings_reference()
