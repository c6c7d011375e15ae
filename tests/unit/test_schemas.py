"""The JSON Schemas in schemas/: up to date, valid, exemplified, and drift is explained."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from triage.errors import SchemaDriftError
from triage.events.registry import ALL_MODELS
from triage.events.schema_export import check_schemas, export_schemas, schema_filename

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
EXAMPLES = SCHEMAS / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))
SUMMARY = re.compile(
    r"^\S+/ is out of date: (\d+) differences? \((\d+) breaking\); run `triage schemas export`$"
)

Schema = dict[str, Any]


def _load(path: Path) -> Schema:
    data: Schema = json.loads(path.read_text(encoding="utf-8"))
    return data


def _edit(directory: Path, event_type: str, change: Callable[[Schema], object]) -> None:
    """Apply ``change`` to the exported schema of ``event_type`` v1, in place."""
    path = directory / schema_filename(event_type, 1)
    schema = _load(path)
    change(schema)
    path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _drift(directory: Path) -> list[str]:
    """The lines of the SchemaDriftError ``check_schemas`` raises for ``directory``."""
    with pytest.raises(SchemaDriftError) as caught:
        check_schemas(directory)
    return str(caught.value).splitlines()


def _line(lines: list[str], *fragments: str) -> str:
    """The one difference line containing every fragment."""
    found = [line for line in lines[1:] if all(f in line for f in fragments)]
    assert len(found) == 1, lines
    return found[0]


@pytest.fixture(name="exported")
def _exported(tmp_path: Path) -> Path:
    """A fresh export of every schema in a temporary directory."""
    directory = tmp_path / "schemas"
    export_schemas(directory)
    return directory


class TestCommittedSchemas:
    """The schemas/ directory of the repository."""

    def test_schemas_directory_matches_the_models(self) -> None:
        """The committed schemas are exactly what the models generate today."""
        check_schemas(SCHEMAS)

    @pytest.mark.parametrize("key", sorted(ALL_MODELS), ids=lambda k: f"{k[0]}.v{k[1]}")
    def test_each_schema_is_a_valid_draft_2020_12_schema(self, key: tuple[str, int]) -> None:
        """Every committed schema is itself valid under the draft 2020-12 meta-schema."""
        schema = _load(SCHEMAS / schema_filename(*key))
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"urn:triage:schema:{key[0]}:v{key[1]}"


class TestExamples:
    """Every file in schemas/examples/ is a valid event of the type its name announces."""

    @pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
    def test_example_validates_against_its_json_schema(self, path: Path) -> None:
        """The example satisfies the committed JSON Schema of its type and version."""
        body = _load(path)
        assert path.name.startswith(f"{body['type']}.")
        schema = _load(SCHEMAS / schema_filename(body["type"], body["schema_version"]))
        validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(body)]
        assert errors == []

    @pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
    def test_example_parses_with_its_model(self, path: Path) -> None:
        """The example is accepted by the pydantic model registered for its type and version."""
        body = _load(path)
        event = ALL_MODELS[(body["type"], body["schema_version"])].model_validate(body)
        assert event.model_dump(mode="json")["type"] == body["type"]

    def test_every_event_type_and_version_has_an_example(self) -> None:
        """Each registered (type, version) has at least one example file."""
        covered = {(_load(p)["type"], _load(p)["schema_version"]) for p in EXAMPLE_FILES}
        assert sorted(set(ALL_MODELS) - covered) == []

    def test_examples_use_only_synthetic_victims(self) -> None:
        """Victim references in the examples are the invented V-SYN ones."""
        refs = {str(_load(p)["victim_ref"]) for p in EXAMPLE_FILES if "victim_ref" in _load(p)}
        assert refs
        assert all(ref.startswith("V-SYN") for ref in refs)


class TestExport:
    """export_schemas writes one deterministic file per contract and nothing else."""

    def test_export_then_check_passes(self, exported: Path) -> None:
        """A directory just exported is reported as matching the models."""
        check_schemas(exported)

    def test_export_writes_one_file_per_type_and_version(self, tmp_path: Path) -> None:
        """The returned paths are exactly one <type>.v<version>.schema.json per model."""
        written = export_schemas(tmp_path / "new")
        assert sorted(p.name for p in written) == sorted(schema_filename(*k) for k in ALL_MODELS)
        assert all(p.read_bytes().endswith(b"}\n") for p in written)

    def test_exporting_twice_gives_identical_bytes(self, tmp_path: Path) -> None:
        """Two exports into different directories produce byte-identical files."""
        first = {p.name: p.read_bytes() for p in export_schemas(tmp_path / "a")}
        second = {p.name: p.read_bytes() for p in export_schemas(tmp_path / "b")}
        assert first == second

    def test_export_matches_the_committed_bytes(self, exported: Path) -> None:
        """A fresh export is byte-for-byte what is committed in schemas/."""
        for path in sorted(exported.iterdir()):
            assert path.read_bytes() == (SCHEMAS / path.name).read_bytes(), path.name

    def test_export_removes_stale_schemas_but_not_examples(self, exported: Path) -> None:
        """Stale *.schema.json files go; examples/ and other files stay."""
        (exported / "gone.event.v1.schema.json").write_text("{}\n")
        (exported / "README.md").write_text("keep\n")
        shutil.copytree(EXAMPLES, exported / "examples")
        export_schemas(exported)
        assert not (exported / "gone.event.v1.schema.json").exists()
        assert (exported / "README.md").read_text() == "keep\n"
        assert sorted(p.name for p in (exported / "examples").iterdir()) == [
            p.name for p in EXAMPLE_FILES
        ]


class TestDriftDetection:
    """check_schemas names what differs, in field terms, and says which changes break."""

    def test_summary_line_counts_differences_and_breaking_ones(self, exported: Path) -> None:
        """Line 1 is a self-sufficient summary with the number of (breaking) differences."""
        (exported / schema_filename("case.closed", 1)).unlink()
        _edit(exported, "report.received", lambda s: s["properties"].pop("suspect_ref"))
        _edit(exported, "device.alarm", lambda s: s["required"].remove("alarm"))
        lines = _drift(exported)
        summary = SUMMARY.match(lines[0])
        assert summary is not None, lines[0]
        assert summary.groups() == ("3", "1")
        assert len(lines) == 4

    def test_enum_value_missing_from_file_is_a_compatible_addition(self, exported: Path) -> None:
        """A value the model allows but the file lacks is reported as added, not breaking."""
        _edit(
            exported,
            "report.received",
            lambda s: s["properties"]["channel"]["enum"].remove("school"),
        )
        line = _line(_drift(exported), "field 'channel'")
        assert line == "report.received v1: field 'channel' allowed values changed (added: school)"

    def test_enum_value_removed_from_model_is_breaking(self, exported: Path) -> None:
        """A value the file allows but the model no longer does is a breaking removal."""
        _edit(
            exported, "report.received", lambda s: s["properties"]["channel"]["enum"].append("fax")
        )
        line = _line(_drift(exported), "field 'channel'")
        assert line == (
            "report.received v1: field 'channel' allowed values changed (removed: fax) (breaking)"
        )

    def test_enum_change_inside_a_definition_names_each_field(self, exported: Path) -> None:
        """A change to a shared $defs enum is reported under the fields that use it."""
        _edit(exported, "triage.escalation", lambda s: s["$defs"]["Level"]["enum"].append("P0"))
        line = _line(_drift(exported), "field 'level'")
        assert line.endswith("allowed values changed (removed: P0) (breaking)")

    def test_property_missing_from_file_is_an_added_field(self, exported: Path) -> None:
        """An optional property the file lacks is an added field, compatible."""
        _edit(exported, "report.received", lambda s: s["properties"].pop("suspect_ref"))
        line = _line(_drift(exported), "suspect_ref")
        assert line == "report.received v1: field 'suspect_ref' added"

    def test_property_removed_from_model_is_breaking(self, exported: Path) -> None:
        """A property the file has but the model lost is a breaking removal."""
        _edit(
            exported,
            "triage.decision",
            lambda s: s["properties"].setdefault("score", {"type": "integer"}),
        )
        line = _line(_drift(exported), "field 'score'")
        assert line == "triage.decision v1: field 'score' removed (breaking)"

    def test_nested_property_is_named_by_its_path(self, exported: Path) -> None:
        """A property removed inside a nested model is named parent.child."""
        _edit(
            exported,
            "report.received",
            lambda s: s["$defs"]["Indicators"]["properties"].update(hunch={}),
        )
        line = _line(_drift(exported), "indicators.hunch")
        assert line == "report.received v1: field 'indicators.hunch' removed (breaking)"

    def test_new_required_field_is_breaking(self, exported: Path) -> None:
        """A required property the file lacks altogether is a breaking addition."""

        def drop_commune(schema: Schema) -> None:
            schema["properties"].pop("commune")
            schema["required"].remove("commune")

        _edit(exported, "report.received", drop_commune)
        line = _line(_drift(exported), "commune")
        assert line == "report.received v1: field 'commune' added (required) (breaking)"

    def test_field_becoming_required_is_breaking(self, exported: Path) -> None:
        """A property optional in the file but required by the model is breaking."""
        _edit(exported, "case.override", lambda s: s["required"].remove("reason"))
        line = _line(_drift(exported), "field 'reason'")
        assert line == "case.override v1: field 'reason' became required (breaking)"

    def test_field_becoming_optional_is_compatible(self, exported: Path) -> None:
        """A property required in the file but optional in the model is compatible."""
        _edit(exported, "case.override", lambda s: s["required"].append("second_reviewer"))
        line = _line(_drift(exported), "field 'second_reviewer'")
        assert line == "case.override v1: field 'second_reviewer' became optional"

    def test_type_change_is_breaking(self, exported: Path) -> None:
        """A property whose type differs is reported with both types, as breaking."""
        _edit(exported, "triage.decision", lambda s: s["properties"]["total"].update(type="string"))
        line = _line(_drift(exported), "field 'total'")
        assert line == (
            'triage.decision v1: type of field \'total\' changed ("string" → "integer") (breaking)'
        )

    def test_missing_file_is_named(self, exported: Path) -> None:
        """A contract with no file is reported by file name."""
        (exported / schema_filename("case.closed", 1)).unlink()
        line = _line(_drift(exported), "case.closed.v1.schema.json")
        assert line == "case.closed v1: missing file case.closed.v1.schema.json"

    def test_extra_file_is_breaking(self, exported: Path) -> None:
        """A schema file no model produces (a retired contract) is breaking."""
        (exported / "report.received.v0.schema.json").write_text("{}\n")
        line = _line(_drift(exported), "report.received.v0.schema.json")
        assert line.startswith("report.received v0: extra file ")
        assert line.endswith("(breaking)")

    def test_unrecognised_keyword_falls_back_to_a_json_pointer(self, exported: Path) -> None:
        """A difference the walker has no words for is located by JSON pointer."""
        _edit(exported, "device.alarm", lambda s: s.update({"$id": "urn:elsewhere"}))
        assert (
            _line(_drift(exported), "$id") == "device.alarm v1: content differs at #/$id (breaking)"
        )

    def test_formatting_only_difference_is_reported_but_not_breaking(self, exported: Path) -> None:
        """A file with the right content but not in canonical form still fails the check."""
        path = exported / schema_filename("case.closed", 1)
        path.write_text(json.dumps(_load(path)), encoding="utf-8")
        assert (
            _line(_drift(exported), "case.closed") == "case.closed v1: formatting is not canonical"
        )

    def test_invalid_json_is_reported(self, exported: Path) -> None:
        """A file that is not JSON is reported, not raised as a JSON error."""
        (exported / schema_filename("case.closed", 1)).write_text("{not json\n")
        assert "not valid JSON" in _line(_drift(exported), "case.closed")

    def test_missing_directory_reports_every_file(self, tmp_path: Path) -> None:
        """Checking a directory that does not exist reports every contract as missing."""
        lines = _drift(tmp_path / "nowhere")
        assert len(lines) == 1 + len(ALL_MODELS)
        assert all("missing file" in line for line in lines[1:])
