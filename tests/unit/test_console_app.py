"""The console's web app, called in-process (ASGI): sign-in, CSRF, roles, idempotent
actions, the two-person downgrade, and what pages never show."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from tests.factories import contact_values
from triage.console.app import ConsoleContext, create_app
from triage.console.auth import hash_password
from triage.console.projection import project, role_of
from triage.console.store import Accounts, ReadModel
from triage.console.web import Changes, Notice
from triage.generate import GeneratorConfig, generate_log
from triage.pipeline.engine import Engine
from triage.publishing import validate_event
from triage.replay.offline import replay_offline
from triage.topics import Topics

NOW = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)
PASSWORD = "synthetic-password-2"


class FakePublisher:
    """Validates like the real one and keeps what it would send."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def publish(self, body: dict[str, Any], stamp: datetime) -> Any:
        publication = validate_event(orjson.dumps(body), Topics(), stamp)
        self.sent.append(body)
        return publication


class Browser:
    """A minimal in-process HTTP client with a cookie jar."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.cookies: dict[str, str] = {}

    async def request(
        self, method: str, path: str, form: dict[str, str] | None = None, query: str = ""
    ) -> tuple[int, dict[str, str], str]:
        body = urlencode(form or {}).encode()
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        headers = [(b"cookie", cookie.encode())] if cookie else []
        if form is not None:
            headers.append((b"content-type", b"application/x-www-form-urlencoded"))
        scope = {
            "type": "http", "method": method, "path": path, "raw_path": path.encode(),
            "query_string": query.encode(), "headers": headers, "root_path": "", "scheme": "http",
            "server": ("testserver", 80), "client": ("127.0.0.1", 1), "http_version": "1.1",
        }  # fmt: skip
        messages: list[dict[str, Any]] = []
        done = False

        async def receive() -> dict[str, Any]:
            nonlocal done
            if done:
                return {"type": "http.disconnect"}
            done = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await self.app(scope, receive, send)
        start = next(m for m in messages if m["type"] == "http.response.start")
        out: dict[str, str] = {}
        for name, value in start["headers"]:
            if name == b"set-cookie":
                jar: SimpleCookie = SimpleCookie(value.decode())
                for key, morsel in jar.items():
                    if morsel.value:
                        self.cookies[key] = morsel.value
                    else:
                        self.cookies.pop(key, None)
            out[name.decode()] = value.decode()
        text = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        return start["status"], out, text.decode()

    async def sign_in(self, user: str) -> None:
        _, _, page = await self.request("GET", "/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        status, headers, _ = await self.request(
            "POST", "/login", {"csrf": csrf.group(1), "username": user, "password": PASSWORD}
        )
        assert status == 303, "sign-in failed"
        assert headers["location"] == "/"


@pytest.fixture(scope="module")
def records() -> list[Any]:
    """A synthetic log's outputs (with contact blocks) and its responders' updates."""
    config = GeneratorConfig(victims=20, days=3, start=date(2026, 3, 2), seed=9, bad_rate=0.0)
    log = list(generate_log(config, Engine()))
    return [*replay_offline(log, Engine()), *(r for r in log if r.topic == "dv.case-updates.v1")]


@pytest.fixture
def desk(tmp_path: Path, records: list[Any]) -> tuple[Any, FakePublisher, ReadModel]:
    """The app over a read model fed with :func:`records`, two accounts, a fake publisher."""
    model = ReadModel(tmp_path / "rm.sqlite3")
    accounts = Accounts(tmp_path / "acc.sqlite3")
    accounts.add_user("R-AL01", "alice", hash_password(PASSWORD), "responder")
    accounts.add_user("R-BO02", "bob", hash_password(PASSWORD), "supervisor")
    secret = accounts.secret()
    rows = []
    for offset, record in enumerate(records):
        role = role_of(record.topic, Topics())
        rows.append((record.topic, 0, offset, project(role, record.value, secret) if role else []))
    model.apply(rows)
    publisher = FakePublisher()
    ctx = ConsoleContext(
        model=model, accounts=accounts, publisher=publisher, changes=Changes(),  # type: ignore[arg-type]
        now=lambda: NOW, wall=lambda: 1_000_000.0,
    )  # fmt: skip
    return create_app(ctx), publisher, model


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def _first_case(page: str) -> str:
    found = re.search(r'href="/cases/([0-9a-f]+)"', page)
    assert found is not None
    return found.group(1)


class TestAccess:
    """Who gets in, and with what."""

    async def test_pages_need_a_signed_in_person(self, desk: Any) -> None:
        """Without a session every page sends to the sign-in page."""
        browser = Browser(desk[0])
        for path in ("/", "/supervisor", "/cases/abc", "/fragments/work"):
            status, headers, _ = await browser.request("GET", path)
            assert (status, headers.get("location")) == (303, "/login")

    async def test_a_wrong_password_is_refused(self, desk: Any) -> None:
        """Sign-in with a wrong password gives 401 and no session."""
        browser = Browser(desk[0])
        _, _, page = await browser.request("GET", "/login")
        status, _, _ = await browser.request(
            "POST", "/login", {"csrf": _csrf(page), "username": "alice", "password": "nope"}
        )
        assert status == 401
        assert "triage_session" not in browser.cookies

    async def test_repeated_wrong_passwords_lock_the_name(self, desk: Any) -> None:
        """The sixth try after five wrong passwords is refused even with the right one."""
        browser = Browser(desk[0])
        for _ in range(5):
            _, _, page = await browser.request("GET", "/login")
            status, _, _ = await browser.request(
                "POST", "/login", {"csrf": _csrf(page), "username": "alice", "password": "x"}
            )
            assert status == 401
        _, _, page = await browser.request("GET", "/login")
        status, _, _ = await browser.request(
            "POST", "/login", {"csrf": _csrf(page), "username": "alice", "password": PASSWORD}
        )
        assert status == 429

    async def test_responses_carry_the_security_headers(self, desk: Any) -> None:
        """Scripts and styles from the console only, no framing, no referrer."""
        _, headers, _ = await Browser(desk[0]).request("GET", "/login")
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"

    async def test_sign_in_without_its_csrf_token_is_refused(self, desk: Any) -> None:
        """The sign-in form's token must match its cookie."""
        browser = Browser(desk[0])
        await browser.request("GET", "/login")
        status, _, _ = await browser.request(
            "POST", "/login", {"csrf": "forged", "username": "alice", "password": PASSWORD}
        )
        assert status == 403

    async def test_a_post_without_the_session_token_is_refused(self, desk: Any) -> None:
        """An action without the session's CSRF token publishes nothing."""
        app, publisher, _ = desk
        browser = Browser(app)
        await browser.sign_in("alice")
        _, _, page = await browser.request("GET", "/")
        key = _first_case(page)
        status, _, _ = await browser.request(
            "POST", f"/cases/{key}/actions",
            {"csrf": "forged", "form_token": "x" * 24, "action": "close", "outcome": "resolved"},
        )  # fmt: skip
        assert status == 403
        assert publisher.sent == []

    async def test_the_supervisor_view_is_for_supervisors(self, desk: Any) -> None:
        """A responder gets 403, a supervisor the page."""
        alice, bob = Browser(desk[0]), Browser(desk[0])
        await alice.sign_in("alice")
        await bob.sign_in("bob")
        assert (await alice.request("GET", "/supervisor"))[0] == 403
        assert (await bob.request("GET", "/supervisor"))[0] == 200


class TestUnitFilter:
    """The open-work view can keep one unit's work."""

    async def test_one_units_work(self, desk: Any) -> None:
        """``?unit=`` shows that unit's groups only."""
        browser = Browser(desk[0])
        await browser.sign_in("alice")
        _, _, everything = await browser.request("GET", "/")
        units = sorted(set(re.findall(r"<h2 id=\"g\d+\">[^·]+· ([A-Z0-9-]+)", everything)))
        assert len(units) > 1
        status, _, one = await browser.request("GET", "/fragments/work", query=f"unit={units[0]}")
        assert status == 200
        assert set(re.findall(r"<h2 id=\"g\d+\">[^·]+· ([A-Z0-9-]+)", one)) == {units[0]}


class TestActions:
    """Actions publish once, with the signed-in person's id."""

    async def test_a_double_click_is_one_event(self, desk: Any) -> None:
        """The same form sent twice publishes one event, with alice's responder id."""
        app, publisher, _ = desk
        browser = Browser(app)
        await browser.sign_in("alice")
        _, _, page = await browser.request("GET", "/")
        key = _first_case(page)
        _, _, case = await browser.request("GET", f"/cases/{key}")
        form = {"csrf": _csrf(case), "form_token": "t" * 24, "action": "protection",
                "measure": "tgd"}  # fmt: skip
        for _ in range(2):
            status, _, _ = await browser.request("POST", f"/cases/{key}/actions", form)
            assert status == 303
        assert len(publisher.sent) == 1
        assert publisher.sent[0]["responder_ref"] == "R-AL01"
        assert publisher.sent[0]["type"] == "case.protection_granted"

    async def test_a_downgrade_is_published_only_when_another_person_confirms(
        self, desk: Any
    ) -> None:
        """Proposed by alice: nothing published; confirmed by alice: refused; confirmed
        by bob: one override down, author alice, second reviewer bob."""
        app, publisher, model = desk
        alice, bob = Browser(app), Browser(app)
        await alice.sign_in("alice")
        await bob.sign_in("bob")
        key, level, decision = next(
            (r["case_key"], r["level"], r["decision_id"])
            for r in model.query("SELECT * FROM cases WHERE level IN ('P1', 'P2', 'P3')")
        )
        lower = f"P{int(level[1]) + 1}"
        _, _, case = await alice.request("GET", f"/cases/{key}")
        status, _, _ = await alice.request("POST", f"/cases/{key}/actions", {
            "csrf": _csrf(case), "form_token": "d" * 24, "action": "override_down",
            "decision_id": decision, "new_level": lower, "reason": "protection_in_place",
        })  # fmt: skip
        assert status == 303
        assert publisher.sent == []
        _, _, case = await alice.request("GET", f"/cases/{key}")
        confirm = re.search(r'action="(/cases/[0-9a-f]+/proposals/[^"]+/confirm)"', case)
        assert confirm is not None
        status, _, page = await alice.request("POST", confirm.group(1), {"csrf": _csrf(case)})
        assert status == 409
        assert "a second person must confirm" in page
        assert publisher.sent == []
        _, _, bobs = await bob.request("GET", f"/cases/{key}")
        status, _, _ = await bob.request("POST", confirm.group(1), {"csrf": _csrf(bobs)})
        assert status == 303
        (sent,) = publisher.sent
        assert (sent["direction"], sent["new_level"], sent["responder_ref"],
                sent["second_reviewer"]) == ("down", lower, "R-AL01", "R-BO02")  # fmt: skip
        status, _, _ = await bob.request("POST", confirm.group(1), {"csrf": _csrf(bobs)})
        assert status == 409
        assert len(publisher.sent) == 1


class TestPrivacy:
    """What pages and URLs never carry."""

    async def test_no_contact_data_and_no_victim_in_urls(
        self, desk: Any, records: list[Any]
    ) -> None:
        """Across the work list, every case page and the supervisor view: none of the
        contact blocks' strings, and links name cases by opaque keys only."""
        app, _, model = desk
        browser = Browser(app)
        await browser.sign_in("bob")
        pages = [(await browser.request("GET", "/"))[2],
                 (await browser.request("GET", "/supervisor"))[2]]  # fmt: skip
        for row in model.query("SELECT case_key FROM cases"):
            pages.append((await browser.request("GET", f"/cases/{row['case_key']}"))[2])
        secrets = contact_values(records)
        assert secrets
        text = "\n".join(pages)
        assert not [s for s in secrets if s in text]
        links = re.findall(r'(?:href|action)="([^"]*)"', text)
        assert links
        assert not [link for link in links if "V-" in link]
        assert "Contact details are not shown" in text


class TestStatus:
    """A read model that stopped is said on every page and by /healthz."""

    async def test_a_stopped_read_model_is_said(self, tmp_path: Path) -> None:
        """The banner is on the page and /healthz answers 503."""
        accounts = Accounts(tmp_path / "acc.sqlite3")
        accounts.add_user("R-AL01", "alice", hash_password(PASSWORD), "responder")
        ctx = ConsoleContext(
            model=ReadModel(tmp_path / "rm.sqlite3"), accounts=accounts,
            publisher=FakePublisher(), changes=Changes(),  # type: ignore[arg-type]
            now=lambda: NOW, wall=lambda: 1_000_000.0,
            status=lambda: Notice("The read model stopped (KafkaError): out of date.", failed=True),
        )  # fmt: skip
        browser = Browser(create_app(ctx))
        await browser.sign_in("alice")
        _, _, page = await browser.request("GET", "/")
        assert "The read model stopped" in page
        assert (await browser.request("GET", "/healthz"))[0] == 503


class TestStartUp:
    """Start-up failures are one line."""

    def test_a_taken_port_names_its_option(self, tmp_path: Path) -> None:
        """``console port N is in use (--console-port)``, before anything else starts."""
        import socket

        from triage.console.server import ConsoleConfig, ConsoleError, ConsoleServer
        from triage.settings import TriageSettings

        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            server = ConsoleServer(
                TriageSettings(kafka_bootstrap="127.0.0.1:9"),
                ConsoleConfig(port=port, data_dir=tmp_path, port_option="--console-port"),
            )
            with pytest.raises(ConsoleError) as refused:
                server.start()
            server.stop()
        assert str(refused.value) == f"console port {port} is in use (--console-port)"
        assert not server.feeder.is_alive()
