"""Personal data stays where it belongs: queue records' contact block and dead letters.

A generated log is rewritten so that every report carries sentinel personal values
(a name, a phone number, an address, free-text notes, some in headers too), and
malformed records carrying the same sentinels are mixed in (truncated JSON, wrong
types, unknown fields named after a sentinel, invalid UTF-8, oversize…). After a
worker (logging at DEBUG) has processed it all, no sentinel may appear

- in the worker's log file,
- in its /metrics text,
- in any record of the decision audit log, the supervisor (escalation) queue, or
  the worker's state changelog,
- in any record of the other topics, except queue records' ``contact`` block and
  the dead-letter records' base64 copy of the original bytes (``value_b64``,
  ``key_b64``).

The sentinels must still reach the responders (queue records) and the dead-letter
topic: the test checks that too, so that it cannot pass by losing them.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.deploy.live import scrape, wait_for_metrics, with_metrics_port
from tests.integration.kafka_helpers import (
    publish,
    read_topics,
    running_worker,
    settings_for,
    wait_caught_up,
)
from triage.events.wire import format_timestamp
from triage.generate import GeneratorConfig, generate_log
from triage.pipeline.engine import Engine
from triage.replay.records import LogRecord
from triage.settings import TriageSettings
from triage.streaming.app import TABLE_NAME

pytestmark = pytest.mark.integration

REPORTS = "dv.reports.v1"
UPDATES = "dv.case-updates.v1"

CONTACTS = (
    {
        "name": "Philomène Zorglubsentinel",
        "phone": "+33 6 39 98 73 19",
        "address": "14 impasse Qwertysentinel, 62300 Lens",
        "notes": "Note Xylofaunesentinel : il a menacé de la tuer, rappeler après 18 h",
    },
    {
        "name": "Gontran Bzzwqsentinel",
        "phone": "06 39 98 52 46",
        "address": "3 rue Plumpixsentinel, 62000 Arras",
        "notes": "Voisine Kroknaksentinel témoin des cris, code porte 4821B",
    },
)
"""Two visibly fictional identities; every value holds a token found nowhere else."""
TOKENS = (
    "Zorglubsentinel", "Qwertysentinel", "Xylofaunesentinel", "0639987319", "39 98 73 19",
    "Bzzwqsentinel", "Plumpixsentinel", "Kroknaksentinel", "0639985246", "39 98 52 46",
    "code porte 4821B",
)  # fmt: skip
"""Distinctive parts: a partial leak (a truncated name, a phone without spaces) counts."""
HEADER = ("x-caller-name", CONTACTS[0]["name"])


def needles() -> list[bytes]:
    """Every sentinel, as UTF-8 and as JSON with non-ASCII escaped (structlog's default)."""
    texts = {value for contact in CONTACTS for value in contact.values()} | set(TOKENS)
    out: set[bytes] = set()
    for text in texts:
        out.add(text.encode())
        out.add(json.dumps(text)[1:-1].encode())
        out.add(json.dumps(text, ensure_ascii=False)[1:-1].encode())
    return sorted(out)


def leaks(blob: bytes) -> list[str]:
    """The sentinels found in ``blob``."""
    digits = blob.replace(b" ", b"").replace(b".", b"")
    return [n.decode() for n in needles() if n in blob or n.replace(b" ", b"") in digits]


@dataclass(frozen=True)
class Bad:
    """A malformed record carrying sentinels, and the reason it must be rejected for."""

    record: LogRecord
    reason: str


def with_sentinels(records: list[LogRecord]) -> list[LogRecord]:
    """Every report gets a sentinel contact block; a few get a sentinel header too."""
    out = []
    reports = 0
    for record in records:
        body = orjson.loads(record.value) if record.topic == REPORTS else None
        if body is None or body.get("type") != "report.received":
            out.append(record)
            continue
        body["contact"] = CONTACTS[reports % 2]
        headers = dict(record.headers)
        if reports % 5 == 0:
            headers[HEADER[0]] = HEADER[1]
        reports += 1
        out.append(
            LogRecord(record.topic, record.key, record.timestamp, orjson.dumps(body), headers)
        )
    return out


def malformed(good: list[LogRecord]) -> list[Bad]:
    """Rejected records of many kinds, each carrying sentinels."""
    report = next(r for r in good if r.topic == REPORTS and b'"contact"' in r.value)
    ack = next(r for r in good if b'"case.acknowledged"' in r.value)
    body, ack_body = orjson.loads(report.value), orjson.loads(ack.value)
    key, when = report.key, report.timestamp
    contact = CONTACTS[0]
    name, phone, notes = contact["name"], contact["phone"], contact["notes"]

    def variant(n: int, **changes: Any) -> dict[str, Any]:
        return {**body, "id": f"bad-sentinel-{n}", **changes}

    def rec(value: bytes, *, topic: str = REPORTS, k: str | None = key) -> LogRecord:
        return LogRecord(topic, k, when, value)

    contact_first = orjson.dumps({"contact": contact, **variant(1)})
    naive = variant(9, time=format_timestamp(when).removesuffix("Z"))
    future = variant(12, time=format_timestamp(when + timedelta(days=3)))
    return [
        Bad(rec(contact_first[: len(contact_first) * 2 // 3]), "invalid_json"),
        Bad(
            rec(orjson.dumps(variant(2, contact={**contact, "name": name * 20}))),
            "schema_violation",
        ),
        Bad(rec(orjson.dumps(variant(3, channel=notes))), "schema_violation"),
        Bad(rec(orjson.dumps(variant(4, Zorglubsentinel_field=phone))), "schema_violation"),
        Bad(rec(orjson.dumps(variant(5, victim_ref=name)), k=name), "schema_violation"),
        Bad(rec(notes.encode() + b"\xff\xfe" + phone.encode()), "invalid_utf8"),
        Bad(rec(orjson.dumps(variant(6, contact={**contact, "notes": notes * 1200}))), "oversize"),
        Bad(rec(orjson.dumps(variant(7, type="report.deleted"))), "unknown_event_type"),
        Bad(rec(orjson.dumps(variant(8, schema_version=99))), "unsupported_schema_version"),
        Bad(rec(orjson.dumps(naive)), "naive_timestamp"),
        Bad(rec(orjson.dumps([name, phone, contact["address"]])), "not_an_object"),
        Bad(rec(orjson.dumps(variant(10)), topic=UPDATES), "wrong_topic"),
        Bad(rec(orjson.dumps(variant(11)), k="V-00000000"), "key_mismatch"),
        Bad(rec(orjson.dumps(future)), "future_timestamp"),
        Bad(
            rec(
                orjson.dumps({**ack_body, "id": "bad-sentinel-13", "responder_ref": name}),
                topic=UPDATES,
                k=ack.key,
            ),
            "schema_violation",
        ),
        Bad(
            rec(
                orjson.dumps({**ack_body, "id": "bad-sentinel-14", "notes": notes}),
                topic=UPDATES,
                k=ack.key,
            ),
            "schema_violation",
        ),
    ]


@dataclass(frozen=True)
class Run:
    """What the worker left behind."""

    settings: TriageSettings
    log: bytes
    metrics: str
    outputs: list[tuple[str, bytes | None, bytes]]
    changelog: list[tuple[str, bytes | None, bytes]]
    bad: list[Bad]


@pytest.fixture(scope="module")
def run(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The sentinel log through a worker logging at DEBUG."""
    tmp: Path = tmp_path_factory.mktemp("privacy")
    config = GeneratorConfig(victims=40, days=10, start=date(2026, 4, 6), seed=31, bad_rate=0.0)
    good = with_sentinels(list(generate_log(config, Engine())))
    bad = malformed(good)
    records = [*good[:10], *(b.record for b in bad), *good[10:]]
    settings = with_metrics_port(
        settings_for(broker.bootstrap, f"s{uuid.uuid4().hex[:8]}.", log_level="DEBUG")
    )
    log_path = tmp / "worker.log"
    with running_worker(settings, log_path) as worker:
        wait_for_metrics(settings, worker.alive)
        publish(settings, records)
        wait_caught_up(settings, worker)
        metrics = scrape(settings)
    outputs = read_topics(broker.bootstrap, settings.topics.outputs)
    changelog_topic = f"{settings.group_id}-{TABLE_NAME}-changelog"
    changelog = [(t, k, v or b"") for t, k, v in read_topics(broker.bootstrap, [changelog_topic])]
    return Run(settings, log_path.read_bytes(), metrics, outputs, changelog, bad)


def logical(run: Run, topic: str) -> str:
    """A topic's name without the test's prefix."""
    return run.settings.topics.logical(topic)


class TestSentinelsReachWhereTheyMay:
    def test_queue_records_carry_the_contact_block(self, run: Run) -> None:
        """Responders get the contact details (otherwise the test below proves nothing)."""
        contacts = [
            orjson.loads(v).get("contact")
            for t, _k, v in run.outputs
            if logical(run, t).startswith("dv.queue.")
            and logical(run, t) != "dv.queue.supervisor.v1"
        ]
        names = {c["name"] for c in contacts if c}
        assert names == {c["name"] for c in CONTACTS}

    def test_every_malformed_record_is_dead_lettered_whole(self, run: Run) -> None:
        """Each sentinel-bearing bad record is on the dead-letter topic, bytes intact,
        with the reason it was built for."""
        letters = [
            orjson.loads(v)
            for t, _k, v in run.outputs
            if logical(run, t) == run.settings.topics.logical(run.settings.topics.deadletter)
        ]
        kept = {base64.b64decode(letter["value_b64"]): letter["reason"] for letter in letters}
        for bad in run.bad:
            assert bad.record.value in kept, f"not dead-lettered: {bad.reason}"
            assert kept[bad.record.value] == bad.reason
            assert leaks(bad.record.value), "each bad record carries a sentinel"


class TestNoSentinelElsewhere:
    def test_worker_log(self, run: Run) -> None:
        """The worker's log (JSON, DEBUG level) holds no sentinel."""
        assert run.log.count(b"\n") > 10, "the worker logged almost nothing"
        assert b'"decision"' in run.log, "DEBUG decision lines are there to be checked"
        assert b'"dead_letter"' in run.log
        assert leaks(run.log) == []

    def test_metrics(self, run: Run) -> None:
        """/metrics holds no sentinel (labels are levels, queues, units, reasons)."""
        assert "triage_dead_letters_total" in run.metrics
        assert leaks(run.metrics.encode()) == []

    def test_decisions_and_escalations(self, run: Run) -> None:
        """The decision audit log and the supervisor queue hold no sentinel, key or value."""
        watched = {"dv.decisions.v1", "dv.queue.supervisor.v1"}
        records = [(t, k, v) for t, k, v in run.outputs if logical(run, t) in watched]
        assert {logical(run, t) for t, _k, _v in records} == watched
        for topic, key, value in records:
            assert leaks(key or b"") == [], topic
            assert leaks(value) == [], (topic, leaks(value))

    def test_state_changelog(self, run: Run) -> None:
        """The victim-state changelog (the worker's table) holds no sentinel."""
        assert run.changelog, "the worker wrote no state"
        for _topic, key, value in run.changelog:
            assert leaks((key or b"") + value) == []

    def test_every_output_outside_contact_and_dead_letter_payload(self, run: Run) -> None:
        """Queue records without ``contact`` and dead letters without their base64 copy of
        the input hold no sentinel either (reason details name fields, never values)."""
        for topic, _key, value in run.outputs:
            body = orjson.loads(value)
            body.pop("contact", None)
            if body.get("type") == "triage.dead_letter":
                body.pop("value_b64")
                body.pop("key_b64")
            found = leaks(orjson.dumps(body))
            assert found == [], (logical(run, topic), body.get("type"), found)


def test_the_detector_finds_partial_and_escaped_sentinels() -> None:
    """A name in escaped JSON, a phone number reformatted, a token inside other text:
    each is found; ordinary pipeline text is not."""
    name, phone = CONTACTS[0]["name"], CONTACTS[0]["phone"]
    assert leaks(json.dumps({"n": name}).encode())  # "Philom\u00e8ne …"
    assert leaks(b"tel=+33639987319")
    assert leaks(b"tel=06.39.98.73.19")
    assert leaks(b"...Kroknaksentinel...")
    assert leaks(phone.encode())
    assert leaks(b'{"event": "decision", "level_": "P2", "queue": "high-risk"}') == []
