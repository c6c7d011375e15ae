"""Schema evolution: report.received v2 adds an optional field and is decided exactly like
v1; a breaking change to a contract makes the schema check fail, saying what broke.

Version 2 adds ``language`` (the reporter's, ISO 639-1, optional). Producers may send
v1 and v2 side by side; a worker that does not know v2 yet dead-letters v2 records
(original bytes kept, nothing lost) rather than crashing, so a rolling upgrade is
safe in either order.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import orjson
import pytest
from pydantic import Field

from triage.errors import SchemaDriftError
from triage.events import schema_export
from triage.events.inputs import Channel, ReportReceived, ReportReceivedV2
from triage.events.outputs import DeadLetter, Decision
from triage.events.registry import INPUT_MODELS, KNOWN_FIELDS
from triage.events.schema_export import check_schemas
from triage.pipeline import ingest as ingest_module
from triage.pipeline.engine import Engine
from triage.pipeline.ingest import Accepted, Rejected, ingest
from triage.pipeline.processor import Processor
from triage.testing import make_raw, make_report, raw_of
from triage.topics import Topics

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
V2 = ("report.received", 2)


def v2_body(**changes: Any) -> dict[str, Any]:
    """A report with contact and indicators, as version 2 with a language."""
    report = make_report(indicators={"weapon": "yes", "children_present": "yes"})
    body: dict[str, Any] = orjson.loads(report.model_dump_json())
    return {**body, "schema_version": 2, "language": "nl", **changes}


def outputs(engine: Engine, value: bytes) -> list[bytes]:
    """What a fresh processor makes of one record on the reports topic, as JSON lines."""
    batch = Processor(engine, Topics()).feed(make_raw(value))
    return [o.model_dump_json().encode() for o in batch.outputs]


class TestReportVersion2:
    def test_v2_is_registered_beside_v1(self) -> None:
        """Both versions are accepted; v2 is a v1 report plus one optional field."""
        assert INPUT_MODELS[("report.received", 1)] is ReportReceived
        assert INPUT_MODELS[V2] is ReportReceivedV2
        assert issubclass(ReportReceivedV2, ReportReceived)
        assert set(ReportReceivedV2.model_fields) - set(ReportReceived.model_fields) == {"language"}
        assert not ReportReceivedV2.model_fields["language"].is_required()
        assert "language" in KNOWN_FIELDS  # named in error details, not masked

    @pytest.mark.parametrize("language", ["nl", None, "absent"])
    def test_v2_is_decided_exactly_like_v1(self, engine: Engine, language: str | None) -> None:
        """A v2 report (with a language, a null one, or none) gives byte for byte the
        decision and queue records of the same report sent as v1."""
        body = v2_body(language=language)
        if language == "absent":
            del body["language"]
        v1 = {k: v for k, v in body.items() if k != "language"} | {"schema_version": 1}

        decided_v2 = outputs(engine, orjson.dumps(body))

        assert [orjson.loads(o)["type"] for o in decided_v2] == [
            "triage.decision",
            "triage.queue_record",
            "triage.queue_record",
        ]
        assert decided_v2 == outputs(engine, orjson.dumps(v1))

    def test_v2_report_parsed_keeps_its_language(self) -> None:
        """Ingestion gives the engine a ReportReceivedV2 carrying the language."""
        result = ingest(make_raw(orjson.dumps(v2_body())), Topics())

        assert isinstance(result, Accepted)
        assert isinstance(result.event, ReportReceivedV2)
        assert result.event.language == "nl"

    @pytest.mark.parametrize("language", ["NL", "dutch", "nld", "n", "nl-BE", 31, True, ["nl"]])
    def test_v2_language_must_be_an_iso_639_1_code(self, language: object) -> None:
        """A language that is not two lower-case letters is a schema violation naming it."""
        result = ingest(make_raw(orjson.dumps(v2_body(language=language))), Topics())

        assert isinstance(result, Rejected)
        assert result.reason == "schema_violation"
        assert result.detail.startswith("language: ")

    def test_v1_has_no_language(self) -> None:
        """The v2 field on a v1 report is an unknown field: v1 is unchanged."""
        body = v2_body(schema_version=1)

        result = ingest(make_raw(orjson.dumps(body)), Topics())

        assert isinstance(result, Rejected)
        assert (result.reason, result.detail) == ("schema_violation", "language: extra_forbidden")

    def test_a_worker_without_v2_dead_letters_it_whole(
        self, engine: Engine, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A worker deployed before v2 (its registry has v1 only) dead-letters v2 records
        with their original bytes, for a replay once it is upgraded; it does not crash."""
        monkeypatch.delitem(ingest_module.INPUT_MODELS, V2)
        value = orjson.dumps(v2_body())

        batch = Processor(engine, Topics()).feed(make_raw(value))

        (letter,) = batch.outputs
        assert isinstance(letter, DeadLetter)
        assert letter.reason == "unsupported_schema_version"
        assert letter.detail == "report.received has no schema version 2"
        assert base64.b64decode(letter.value_b64) == value

    def test_v1_and_v2_reports_about_one_victim_share_a_history(self, engine: Engine) -> None:
        """A v2 report after a v1 report for the same victim counts the first as history."""
        first = make_report(indicators={"strangulation": "yes"})
        processor = Processor(engine, Topics())
        processor.feed(raw_of(first))
        later = v2_body(id="evt-v2-second", time="2026-01-06T10:00:00Z")

        batch = processor.feed(make_raw(orjson.dumps(later)))

        (decision,) = [o for o in batch.outputs if isinstance(o, Decision)]
        assert decision.incidents_12m == 2


ReportReceivedV2Base = ReportReceivedV2
"""The real v2 model, for the altered copies below (which must keep its class name)."""


def _copy(tmp_path: Path) -> Path:
    """A copy of the committed schemas/ (the contract) in ``tmp_path``."""
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, copy)
    return copy


def _drift(directory: Path) -> list[str]:
    with pytest.raises(SchemaDriftError) as caught:
        check_schemas(directory)
    return str(caught.value).splitlines()


def _v2_without_language() -> type[ReportReceived]:
    class ReportReceivedV2(ReportReceived):
        """A report of domestic violence (version 2): version 1 plus the reporter's language.

        The language (optional) tells responders whether to bring an interpreter; it
        takes no part in the score.
        """

        schema_version: Literal[2] = 2  # type: ignore[assignment]

    return ReportReceivedV2


def _v2_narrowed_channel() -> type[ReportReceived]:
    narrower = Literal[tuple(c for c in Channel.__args__ if c != "school")]  # type: ignore[valid-type, attr-defined]

    class ReportReceivedV2(ReportReceivedV2Base):  # type: ignore[valid-type, misc]
        __doc__ = ReportReceivedV2Base.__doc__
        channel: narrower  # type: ignore[valid-type]

    return ReportReceivedV2


def _v2_language_required() -> type[ReportReceived]:
    class ReportReceivedV2(ReportReceivedV2Base):  # type: ignore[valid-type, misc]
        __doc__ = ReportReceivedV2Base.__doc__
        language: str = Field(pattern=r"^[a-z]{2}$")

    return ReportReceivedV2


class TestBreakingChanges:
    """A change to the v2 model checked against the committed contract (a copy)."""

    def test_the_committed_contract_matches(self, tmp_path: Path) -> None:
        """Unchanged models match the committed schemas, v2 included."""
        check_schemas(_copy(tmp_path))
        assert (SCHEMAS / "report.received.v2.schema.json").is_file()

    @pytest.mark.parametrize(
        ("change", "expected"),
        [
            (_v2_without_language, "report.received v2: field 'language' removed (breaking)"),
            (
                _v2_narrowed_channel,
                "report.received v2: field 'channel' allowed values changed "
                "(removed: school) (breaking)",
            ),
            (
                _v2_language_required,
                "report.received v2: field 'language' became required (breaking)",
            ),
        ],
        ids=["field-removed", "enum-narrowed", "field-now-required"],
    )
    def test_breaking_change_is_named(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Any, expected: str
    ) -> None:
        """Removing a field, narrowing an enum or requiring an optional field fails the
        check with a line saying what broke; the summary counts it as breaking."""
        monkeypatch.setitem(schema_export.ALL_MODELS, V2, change())

        lines = _drift(_copy(tmp_path))

        assert expected in lines[1:], lines
        assert "(0 breaking)" not in lines[0]

    def test_retiring_v1_while_its_contract_is_committed_is_breaking(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Dropping the v1 model while producers still have its contract is breaking."""
        monkeypatch.delitem(schema_export.ALL_MODELS, ("report.received", 1))

        lines = _drift(_copy(tmp_path))

        assert lines[1:] == [
            "report.received v1: extra file report.received.v1.schema.json: "
            "no model produces it (breaking)"
        ]

    def test_an_optional_field_added_is_drift_but_not_breaking(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Adding another optional field is reported (export and commit it) but is not
        breaking, which is why v2 could add ``language``."""

        class ReportReceivedV2(ReportReceivedV2Base):  # type: ignore[valid-type, misc]
            __doc__ = ReportReceivedV2Base.__doc__
            interpreter_needed: bool | None = None

        monkeypatch.setitem(schema_export.ALL_MODELS, V2, ReportReceivedV2)

        lines = _drift(_copy(tmp_path))

        assert lines[1:] == ["report.received v2: field 'interpreter_needed' added"]
        assert "(0 breaking)" in lines[0]

    def test_the_cli_fails_and_says_what_broke(self, tmp_path: Path) -> None:
        """``triage schemas check`` on a contract the models no longer satisfy (here a
        channel the model dropped) exits 1 and names the field."""
        copy = _copy(tmp_path)
        path = copy / "report.received.v2.schema.json"
        schema = json.loads(path.read_text(encoding="utf-8"))
        schema["properties"]["channel"]["enum"].append("fax")
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")

        result = subprocess.run(
            [sys.executable, "-m", "triage", "schemas", "check", "--dir", str(copy)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

        assert result.returncode == 1
        assert result.stderr.startswith("error: ")
        assert (
            "report.received v2: field 'channel' allowed values changed (removed: fax) (breaking)"
            in result.stderr.splitlines()
        )
