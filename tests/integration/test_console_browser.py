"""The console in a real browser (Debian's chromium driven by Playwright), against the
real embedded broker and worker: reports appear live, acknowledgements reach Kafka,
a downgrade needs two people."""

from __future__ import annotations

import os
import shutil
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.kafka_helpers import read_topics, running_worker, settings_for
from triage.clock import SystemClock
from triage.console.auth import hash_password
from triage.console.server import ConsoleConfig, ConsoleServer
from triage.events.wire import to_millis
from triage.publishing import send_event, validate_event
from triage.replay.player import close_producer, make_producer, watermark_records
from triage.settings import TriageSettings

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PASSWORD = "synthetic-password-1"
USERS = {"alice": ("R-AL01", "responder"), "bob": ("R-BO02", "supervisor")}
SEEN_WITHIN = 15_000
"""Milliseconds a change may take to reach an open page (it takes about one second)."""


@dataclass
class Desk:
    """A running pipeline with its console, and a producer for upstream reports."""

    settings: TriageSettings
    console: ConsoleServer
    producer: Any
    shots: Path

    @property
    def url(self) -> str:
        return self.console.url

    def report(self, victim: str, *, when: datetime | None = None) -> None:
        """Publish a P1 report for ``victim`` through the validated publish path."""
        when = when or SystemClock().now()
        body = {
            "specversion": "1.0", "id": f"rep-{uuid.uuid4().hex[:12]}", "source": "tests.console",
            "time": when.isoformat(), "type": "report.received", "schema_version": 1,
            "victim_ref": victim, "channel": "call_17_112", "commune": "62041",
            "reporter_role": "victim",
            "indicators": {"immediate_danger": "yes", "strangulation": "yes"},
        }  # fmt: skip
        send_event(self.producer, validate_event(orjson.dumps(body), self.settings.topics, when))

    def updates(self) -> list[dict[str, Any]]:
        """Every case update on Kafka."""
        rows = read_topics(self.settings.kafka_bootstrap or "", [self.settings.topics.updates])
        return [orjson.loads(v) for _t, _k, v in rows]

    def escalations(self) -> list[dict[str, Any]]:
        """Every escalation on Kafka."""
        topic = self.settings.topics.queue("supervisor")
        return [
            orjson.loads(v)
            for _t, _k, v in read_topics(self.settings.kafka_bootstrap or "", [topic])
        ]


def _victim() -> str:
    return "V-T" + uuid.uuid4().hex[:10].upper()


@pytest.fixture(scope="module")
def desk(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """A worker and a console on their own topics, with two synthetic accounts."""
    base = tmp_path_factory.mktemp("console")
    settings = settings_for(broker.bootstrap, f"c{uuid.uuid4().hex[:8]}.")
    with running_worker(settings, base / "worker.log"):
        console = ConsoleServer(settings, ConsoleConfig(port=0, data_dir=base / "data"))
        for name, (rid, role) in USERS.items():
            console.accounts.add_user(rid, name, hash_password(PASSWORD), role)
        producer = make_producer(broker.bootstrap)
        with console:
            try:
                desk = Desk(settings, console, producer, base / "shots")
                # The worker's first record waits for its consumer group to settle
                # (seconds, more on a loaded machine): the tests start after it.
                warm_up = _victim()
                desk.report(warm_up)
                _wait(lambda: console.model.query(
                    "SELECT 1 FROM cases WHERE victim_ref = ? AND level IS NOT NULL", (warm_up,)
                ), timeout=90)  # fmt: skip
                yield desk
            finally:
                close_producer(producer)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless (never a browser downloaded by Playwright)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: make test installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _signed_in(browser: Any, desk: Desk, user: str, width: int = 1280, height: int = 720) -> Any:
    context = browser.new_context(
        viewport={"width": width, "height": height}, locale="fr-FR", timezone_id="Europe/Paris"
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors  # checked by the tests: no script error, no CSP violation
    page.goto(desk.url + "login")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(desk.url)
    page.wait_for_selector("#live-status:has-text('live updates: on')")
    return page


def _shot(desk: Desk, page: Any, name: str) -> None:
    desk.shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(desk.shots / f"{name}.png"), full_page=True)
    target = os.environ.get("TRIAGE_CONSOLE_SCREENSHOT")
    if target and name == "work":
        shutil.copy(desk.shots / f"{name}.png", target)


def _wait(predicate: Any, timeout: float = 30.0, every: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(every)
    raise AssertionError("condition not met in time")


class TestLiveQueue:
    """Work reaches open pages without a reload."""

    def test_a_published_report_appears_in_two_browsers(self, desk: Desk, browser: Any) -> None:
        """A report published upstream shows in the queue view of two signed-in people
        within seconds, level written out, with no reload; the refresh keeps the focus."""
        alice = _signed_in(browser, desk, "alice")
        bob = _signed_in(browser, desk, "bob", width=390, height=844)
        victim = _victim()
        desk.report(victim)
        row = f"tr:has(a.case-link:text-is('{victim}'))"
        alice.wait_for_selector(row, timeout=SEEN_WITHIN)
        bob.wait_for_selector(row, timeout=SEEN_WITHIN)
        assert "P1" in alice.inner_text(row)
        _shot(desk, alice, "work")
        _shot(desk, bob, "work-phone")
        # A refresh keeps the keyboard focus where it was.
        alice.focus(f"a.case-link:text-is('{victim}')")
        other = _victim()
        desk.report(other)
        alice.wait_for_selector(f"a.case-link:text-is('{other}')", timeout=SEEN_WITHIN)
        assert alice.evaluate("document.activeElement.textContent") == victim
        assert alice.errors == []
        assert bob.errors == []
        alice.context.close()
        bob.context.close()

    def test_publish_to_browser_latency(self, desk: Desk, browser: Any) -> None:
        """Twenty reports, one at a time (the worker warmed up by the fixture's report): the
        time from publishing to seeing each in an open page, and in the read model
        (printed: median and max)."""
        page = _signed_in(browser, desk, "alice")
        seconds, stored = [], []
        for _ in range(20):
            victim = _victim()
            began = time.perf_counter()
            desk.report(victim)
            _wait(lambda v=victim: desk.console.model.query(
                "SELECT 1 FROM cases c JOIN work w USING (case_key) WHERE c.victim_ref = ?", (v,)
            ), timeout=SEEN_WITHIN / 1000, every=0.01)  # fmt: skip
            stored.append(time.perf_counter() - began)
            page.wait_for_selector(f"a.case-link:text-is('{victim}')", timeout=SEEN_WITHIN)
            seconds.append(time.perf_counter() - began)
        print(
            f"\npublish -> browser over 20 reports: median {statistics.median(seconds):.2f} s,"
            f" max {max(seconds):.2f} s (in the read model: median"
            f" {statistics.median(stored):.2f} s, max {max(stored):.2f} s)"
        )
        page.context.close()


class TestActions:
    """Actions from the browser go to Kafka and the pipeline answers."""

    def test_acknowledged_in_the_browser_then_no_escalation(self, desk: Desk, browser: Any) -> None:
        """Acknowledged from the queue view, the case update is on Kafka with the person's
        responder id; past the deadline only the case left alone is escalated."""
        page = _signed_in(browser, desk, "alice")
        acked, ignored = _victim(), _victim()
        desk.report(acked)
        desk.report(ignored)
        row = f"tr:has(a.case-link:text-is('{acked}'))"
        page.wait_for_selector(row, timeout=SEEN_WITHIN)
        page.click(f"{row} button:text-is('Acknowledge')")
        page.wait_for_selector(f"{row} >> text=action", timeout=SEEN_WITHIN)
        acks = _wait(lambda: [u for u in desk.updates() if u["victim_ref"] == acked])
        assert acks[0]["type"] == "case.acknowledged"
        assert acks[0]["responder_ref"] == "R-AL01"
        assert len(acks) == 1
        # The worker runs on event time: move every partition's clock an hour on.
        later = SystemClock().now() + timedelta(hours=1)
        for partition, mark in watermark_records(
            desk.settings.topics, desk.settings.partitions, later
        ):
            desk.producer.send(mark.topic, value=mark.value, partition=partition,
                               timestamp_ms=to_millis(later)).get(timeout=10)  # fmt: skip

        def escalated(victim: str) -> list[dict[str, Any]]:
            return [e for e in desk.escalations() if e["victim_ref"] == victim]

        _wait(lambda: [e for e in escalated(ignored) if e["stage"] == "ack"])
        # The acknowledged case's partition has passed the deadlines too once its action
        # deadline (15 min, no action taken) has escalated.
        _wait(lambda: [e for e in escalated(acked) if e["stage"] == "action"])
        assert not [e for e in escalated(acked) if e["stage"] == "ack"]
        page.context.close()

    def test_a_downgrade_needs_two_people(self, desk: Desk, browser: Any) -> None:
        """Proposed by one person, a downgrade is refused when the same person confirms
        it, published when another does; the pipeline's answer shows on both pages."""
        alice = _signed_in(browser, desk, "alice")
        bob = _signed_in(browser, desk, "bob")
        victim = _victim()
        desk.report(victim)
        alice.click(f"a.case-link:text-is('{victim}')", timeout=SEEN_WITHIN)
        alice.wait_for_selector("h1:has-text('P1')")
        case_url = alice.url
        alice.select_option("#down-level", "P2")
        alice.select_option("#down-reason", "protection_in_place")
        alice.click("button:text-is('Propose downgrade')")
        alice.wait_for_selector("text=awaiting a second person")
        alice.click("button:text-is('Confirm downgrade')")
        assert "a second person must confirm" in alice.inner_text("p.error[role=alert]")
        assert not [u for u in desk.updates() if u["victim_ref"] == victim]
        bob.goto(case_url)
        bob.click("button:text-is('Confirm downgrade')")
        bob.wait_for_selector(
            "strong.answer:text-is('accepted: level now P2')", timeout=SEEN_WITHIN
        )
        alice.wait_for_selector("h1:has-text('P2')", timeout=SEEN_WITHIN)
        overrides = [u for u in desk.updates() if u["victim_ref"] == victim]
        assert [(o["direction"], o["responder_ref"], o["second_reviewer"]) for o in overrides] == [
            ("down", "R-AL01", "R-BO02")
        ]
        _shot(desk, bob, "case")
        # The one error: the refused confirmation's page came with status 409.
        assert [e for e in alice.errors if "409 (Conflict)" not in e] == []
        assert bob.errors == []
        alice.context.close()
        bob.context.close()

    def test_a_rejected_override_shows_in_the_supervisor_view(
        self, desk: Desk, browser: Any
    ) -> None:
        """A downgrade published elsewhere without a second reviewer is rejected by the
        pipeline; the supervisor sees why, live."""
        bob = _signed_in(browser, desk, "bob")
        bob.goto(desk.url + "supervisor")
        bob.wait_for_selector("#live-status:has-text('live updates: on')")
        victim = _victim()
        desk.report(victim)
        decision = _wait(
            lambda: next(
                (
                    orjson.loads(v)
                    for _t, _k, v in read_topics(
                        desk.settings.kafka_bootstrap or "", [desk.settings.topics.decisions]
                    )
                    if orjson.loads(v).get("victim_ref") == victim
                ),
                None,
            )
        )
        now = SystemClock().now()
        body = {
            "specversion": "1.0", "id": f"ovr-{uuid.uuid4().hex[:12]}", "source": "tests.console",
            "time": now.isoformat(), "type": "case.override", "schema_version": 1,
            "victim_ref": victim, "responder_ref": "R-AL01", "decision_id": decision["id"],
            "direction": "down", "new_level": "P3", "reason": "professional_judgement",
        }  # fmt: skip
        send_event(desk.producer, validate_event(orjson.dumps(body), desk.settings.topics, now))
        bob.wait_for_selector("td:text-is('second reviewer required')", timeout=SEEN_WITHIN)
        _shot(desk, bob, "supervisor")
        bob.context.close()


class TestReadModelPlace:
    """The read model keeps its place across restarts and rebuilds to the same rows."""

    def test_restart_goes_on_and_rebuild_gives_the_same_rows(
        self, desk: Desk, tmp_path: Path
    ) -> None:
        """A second feeder on the same file reads only what came after (its offsets are
        the topics' ends, its rows those of a rebuild from the start)."""
        from triage.broker.admin import end_offsets
        from triage.console.consumer import Feeder
        from triage.console.store import ReadModel

        bootstrap = desk.settings.kafka_bootstrap or ""
        topics = desk.settings.topics
        wanted = [topics.decisions, topics.updates, *topics.queues]
        secret = desk.console.accounts.secret()

        def caught_up(model: ReadModel) -> int:
            def done() -> bool:
                ends = {tp: n for tp, n in end_offsets(bootstrap, wanted).items() if n}
                stored = model.offsets()
                return all(stored.get(tp, 0) >= n for tp, n in ends.items())

            feeder = Feeder(bootstrap, {}, topics, model, secret, lambda: None)
            feeder.start()
            try:
                _wait(done)
            finally:
                feeder.stop()
                feeder.join(10)
            return feeder.records

        def rows(model: ReadModel) -> dict[str, list[tuple[Any, ...]]]:
            return {
                t: [tuple(r) for r in model.query(f"SELECT * FROM {t} ORDER BY 1, 2")]
                for t in ("cases", "work", "answers", "timeline", "escalations", "refusals")
            }

        model = ReadModel(tmp_path / "rm.sqlite3")
        caught_up(model)
        before = model.query("SELECT count(*) FROM timeline")[0][0]
        read_before = sum(model.offsets().values())
        victim = _victim()
        desk.report(victim)
        _wait(lambda: desk.console.model.query(
            "SELECT 1 FROM cases WHERE victim_ref = ? AND level IS NOT NULL", (victim,)
        ))  # fmt: skip
        # A new feeder, the same file: it reads only the records after its offsets.
        assert caught_up(model) == sum(model.offsets().values()) - read_before
        assert model.query("SELECT count(*) FROM timeline")[0][0] > before
        kept = rows(model)
        model.rebuild()
        caught_up(model)
        assert rows(model) == kept
