"""The console's people: passwords, sessions, CSRF, roles, the two-person rule,
idempotent actions, and an access log without victims."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog

from triage.console import auth
from triage.console.actions import ActionError, build_event, event_id
from triage.console.store import Accounts
from triage.console.web import AccessLog
from triage.publishing import PublishRefused, validate_event
from triage.topics import Topics

SECRET = b"k" * 32
AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DECISION = "D-" + "c" * 24


class TestPasswords:
    """scrypt hashes."""

    def test_the_right_password_verifies_and_a_wrong_one_does_not(self) -> None:
        """A hash verifies its own password only."""
        stored = auth.hash_password("synthetic-pass")
        assert auth.verify_password("synthetic-pass", stored)
        assert not auth.verify_password("synthetic-pasS", stored)

    def test_each_hash_has_its_own_salt(self) -> None:
        """The same password hashed twice gives two hashes, neither holding it."""
        one, two = auth.hash_password("synthetic-pass"), auth.hash_password("synthetic-pass")
        assert one != two
        assert "synthetic-pass" not in one

    @pytest.mark.parametrize("stored", ["", "plain", "scrypt$1$2$3$zz$zz", "md5$a$b$c$d$e"])
    def test_a_malformed_hash_never_verifies(self, stored: str) -> None:
        """Garbage in the store is a refusal, not an exception."""
        assert not auth.verify_password("x", stored)


class TestSessions:
    """Signed cookies with a maximum age."""

    def test_a_signed_session_reads_back(self) -> None:
        """Sign, then read: the same person and CSRF token."""
        session = auth.new_session("R-AL01", 1000.0)
        assert auth.read_session(auth.sign_session(session, SECRET), SECRET, 1001.0, 60) == session

    def test_a_forged_or_tampered_cookie_is_no_session(self) -> None:
        """Another secret, or a payload changed by hand, gives nothing."""
        cookie = auth.sign_session(auth.new_session("R-AL01", 1000.0), SECRET)
        assert auth.read_session(cookie, b"x" * 32, 1001.0, 60) is None
        _payload, _, mac = cookie.partition(".")
        forged = auth.sign_session(auth.new_session("R-BO02", 1000.0), b"x" * 32)
        assert auth.read_session(forged.partition(".")[0] + "." + mac, SECRET, 1001.0, 60) is None
        assert auth.read_session("garbage", SECRET, 1001.0, 60) is None
        assert auth.read_session(None, SECRET, 1001.0, 60) is None

    def test_a_session_expires(self) -> None:
        """Past its maximum age (or issued in the future) a session is gone."""
        cookie = auth.sign_session(auth.new_session("R-AL01", 1000.0), SECRET)
        assert auth.read_session(cookie, SECRET, 1000.0 + 3600, 3600) is not None
        assert auth.read_session(cookie, SECRET, 1000.0 + 3601, 3600) is None
        assert auth.read_session(cookie, SECRET, 900.0, 3600) is None

    def test_csrf_needs_the_sessions_own_token(self) -> None:
        """A POST passes only with its session's token."""
        session = auth.new_session("R-AL01", 0.0)
        assert auth.csrf_ok(session, session.csrf)
        assert not auth.csrf_ok(session, "other")
        assert not auth.csrf_ok(session, None)
        assert not auth.csrf_ok(None, session.csrf)


class TestSignInThrottle:
    """Guessing passwords is slowed down per user name."""

    def test_five_failures_lock_the_name_for_the_window(self) -> None:
        """After five failures in 15 minutes the name is refused, then free again;
        another name is not affected; a success clears the count."""
        throttle = auth.SignInThrottle(limit=5, window=900)
        for i in range(5):
            assert throttle.allowed("alice", 1000.0 + i)
            throttle.failed("alice", 1000.0 + i)
        assert not throttle.allowed("alice", 1010.0)
        assert throttle.allowed("bob", 1010.0)
        assert throttle.allowed("alice", 1905.0)
        throttle.failed("bob", 1.0)
        throttle.succeeded("bob")
        assert throttle.allowed("bob", 2.0)


class TestRoles:
    """Who may do what."""

    def test_only_supervisors_see_the_supervisor_view(self) -> None:
        """Responders do not."""
        assert auth.may_see_supervisor_view("supervisor")
        assert not auth.may_see_supervisor_view("responder")

    def test_a_downgrade_needs_another_person(self) -> None:
        """Its author cannot confirm it; another person can, once."""
        assert auth.confirm_problem("R-AL01", "R-AL01", False) is not None
        assert auth.confirm_problem("R-AL01", "R-BO02", False) is None
        assert auth.confirm_problem("R-AL01", "R-BO02", True) is not None

    def test_accounts_round_trip(self, tmp_path: Path) -> None:
        """add-user stores a hash and a role; the secret is made once and kept."""
        accounts = Accounts(tmp_path / "a.sqlite3")
        accounts.add_user("R-AL01", "alice", auth.hash_password("pw-synthetic"), "responder")
        found = accounts.password_hash("alice")
        assert found is not None
        assert found[0].role == "responder"
        assert auth.verify_password("pw-synthetic", found[1])
        assert accounts.secret() == accounts.secret()
        assert accounts.password_hash("bob") is None


class TestActions:
    """Events built from forms."""

    def test_one_form_is_one_event(self, tmp_path: Path) -> None:
        """The event id comes from the form token: the same for a double click, another
        for another form; the second claim of a token is refused."""
        assert event_id("tok-1234567890abcdef") == event_id("tok-1234567890abcdef")
        assert event_id("tok-1234567890abcdef") != event_id("tok-1234567890abcdeg")
        accounts = Accounts(tmp_path / "a.sqlite3")
        assert accounts.claim_token("t" * 20, "e", "k", "acknowledge", "R-AL01", AT)
        assert not accounts.claim_token("t" * 20, "e", "k", "acknowledge", "R-AL01", AT)

    def _valid(self, body: dict[str, Any]) -> Any:
        return validate_event(orjson.dumps(body), Topics(), AT).event

    def test_an_acknowledgement_passes_the_publish_path(self) -> None:
        """Built for a signed-in responder, it passes ingestion as the worker's."""
        body = build_event(
            "acknowledge", {"queue": "immediate", "decision_id": DECISION},
            victim_ref="V-ABCD1234", responder_id="R-AL01", at=AT, form_token="f" * 20,
        )  # fmt: skip
        event = self._valid(body)
        assert event.type == "case.acknowledged"
        assert event.responder_ref == "R-AL01"

    def test_a_confirmed_downgrade_names_both_people(self) -> None:
        """The override down carries the author and the second reviewer."""
        body = build_event(
            "override_down",
            {"decision_id": DECISION, "new_level": "P3", "reason": "protection_in_place"},
            victim_ref="V-ABCD1234", responder_id="R-AL01", at=AT, form_token="g" * 20,
            current_level="P2", second_reviewer="R-BO02",
        )  # fmt: skip
        event = self._valid(body)
        assert (event.direction, event.responder_ref, event.second_reviewer) == (
            "down", "R-AL01", "R-BO02",
        )  # fmt: skip

    @pytest.mark.parametrize(
        ("action", "form"),
        [
            ("override_up", {"decision_id": DECISION, "new_level": "P3", "reason": "new_information"}),  # noqa: E501
            ("override_down", {"decision_id": DECISION, "new_level": "P1", "reason": "new_information"}),  # noqa: E501
            ("close", {"outcome": "because I said so"}),
            ("protection", {}),
            ("delete", {}),
        ],
    )  # fmt: skip
    def test_a_form_that_makes_no_valid_action_is_refused(
        self, action: str, form: dict[str, str]
    ) -> None:
        """Not an upgrade, not a downgrade, a choice not offered, an unknown action."""
        with pytest.raises(ActionError):
            build_event(action, form, victim_ref="V-ABCD1234", responder_id="R-AL01", at=AT,
                        form_token="h" * 20, current_level="P2")  # fmt: skip

    def test_a_forged_field_is_refused_by_ingestion(self) -> None:
        """A decision id that is not one never reaches Kafka."""
        body = build_event(
            "acknowledge", {"queue": "immediate", "decision_id": "D-nope"},
            victim_ref="V-ABCD1234", responder_id="R-AL01", at=AT, form_token="i" * 20,
        )  # fmt: skip
        with pytest.raises(PublishRefused, match="schema_violation"):
            self._valid(body)


class TestAccessLog:
    """The access log names route templates, never filled paths."""

    async def test_no_case_key_or_victim_in_the_access_log(self) -> None:
        """A request for a case page logs ``/cases/{case_key}``, method and status only."""
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Route

        async def page(request: Any) -> PlainTextResponse:
            return PlainTextResponse("V-ABCD1234")

        app = AccessLog(Starlette(routes=[Route("/cases/{case_key}", page)]))
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http", "method": "GET", "path": "/cases/3f2a9c0b1d", "raw_path": b"",
            "query_string": b"ref=V-ABCD1234", "headers": [], "root_path": "",
            "scheme": "http", "server": ("t", 80), "http_version": "1.1",
        }  # fmt: skip
        with structlog.testing.capture_logs() as logs:
            await app(scope, receive, send)
        (line,) = [entry for entry in logs if entry["event"] == "http_request"]
        assert line["path"] == "/cases/{case_key}"
        assert line["status"] == 200
        assert "3f2a9c0b1d" not in repr(line)
        assert "V-ABCD" not in repr(line)
