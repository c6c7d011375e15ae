"""The console's Starlette app: pages, fragments for htmx, server-sent events, actions.

Every page needs a signed-in person; every POST carries the session's CSRF token
(the sign-in form a double-submit cookie). URLs name cases by their opaque key only.
Three small sets of endpoints share one :class:`_Desk`: :class:`SignIn`,
:class:`Pages` (what people read) and :class:`Actions` (what they publish).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from triage.console import auth, reads, views
from triage.console.actions import ACTION_CHOICES, ActionError, Publisher, build_event, event_id
from triage.console.store import Account, Accounts, ReadModel
from triage.console.web import AccessLog, Changes, Notice, SecurityHeaders

SESSION_COOKIE = "triage_session"
LOGIN_COOKIE = "triage_login"
STATIC = Path(__file__).parent / "static"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleContext:
    """What the app works with: its stores, its publisher, its clocks."""

    model: ReadModel
    accounts: Accounts
    publisher: Publisher
    changes: Changes
    now: Callable[[], datetime]
    """The console's clock: the wall clock, or in the demo the stream's event time."""
    wall: Callable[[], float]
    """Epoch seconds of the wall clock (session expiry)."""
    session_max_age: float = 8 * 3600.0
    secure_cookies: bool = False
    status: Callable[[], Notice | None] = lambda: None
    """What every page must say about the read model (stopped, catching up), or None."""


_env = Environment(
    loader=PackageLoader("triage.console", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    response = HTMLResponse(_env.get_template(name).render(**context), status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return dict(parse_qsl(body, keep_blank_values=True))


def _new_token() -> str:
    return secrets.token_urlsafe(18)


class _Desk:
    """What the endpoints share: who is signed in, rendering a page, a case's context."""

    def __init__(self, ctx: ConsoleContext) -> None:
        self.ctx = ctx
        self.secret = ctx.accounts.secret()

    def who(self, request: Request) -> tuple[auth.Session, Account] | None:
        """The signed-in person, or None (no cookie, forged, expired, account gone)."""
        session = auth.read_session(
            request.cookies.get(SESSION_COOKIE), self.secret, self.ctx.wall(),
            self.ctx.session_max_age,
        )  # fmt: skip
        account = None if session is None else self.ctx.accounts.account(session.responder_id)
        return None if session is None or account is None else (session, account)

    def page(self, name: str, request: Request, status: int = 200, **context: Any) -> Response:
        """A template for the signed-in person, or the way to the sign-in page."""
        signed = self.who(request)
        if signed is None:
            return RedirectResponse("/login", status_code=303)
        session, account = signed
        now = self.ctx.now()
        notice = self.ctx.status()
        return _render(
            name, status, me=account, csrf=session.csrf, now_ms=int(now.timestamp() * 1000),
            now_text=views.paris(now), new_token=_new_token, choices=ACTION_CHOICES,
            banner=notice.text if notice else None, **context,
        )  # fmt: skip

    def case_context(self, case_key: str, viewer: str) -> dict[str, Any] | None:
        """The case page's view model, or None for an unknown case."""
        model, accounts = self.ctx.model, self.ctx.accounts
        row = reads.case(model, case_key)
        if row is None:
            return None
        sent = [dict(s) for s in accounts.sent_for_case(case_key)]
        page = views.case_page(
            row, reads.open_work(model, case_key), reads.timeline(model, case_key), sent,
            reads.answers_to(model, [s["event_id"] for s in sent]),
            [dict(p) for p in accounts.proposals_for_case(case_key)], viewer, self.ctx.now(),
        )  # fmt: skip
        return {"case": page}

    def case_error(self, request: Request, status: int, error: str, viewer: str) -> Response:
        """The case page again, with what went wrong."""
        key = request.path_params["case_key"]
        return self.page("case.html", request, status, error=error,
                         **(self.case_context(key, viewer) or {}))  # fmt: skip


class SignIn(_Desk):
    """The sign-in form (a double-submit CSRF cookie), signing in and out."""

    def __init__(self, ctx: ConsoleContext) -> None:
        super().__init__(ctx)
        self.throttle = auth.SignInThrottle()

    def _form_page(self, status: int = 200, error: str | None = None) -> Response:
        token = _new_token()
        response = _render("login.html", status, login_csrf=token, error=error)
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                            secure=self.ctx.secure_cookies, max_age=600)  # fmt: skip
        return response

    async def form(self, request: Request) -> Response:
        """GET /login."""
        return self._form_page()

    async def sign_in(self, request: Request) -> Response:
        """POST /login: check the password, then set the signed session cookie."""
        form = await _form(request)
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        if not cookie or not secrets.compare_digest(cookie, form.get("csrf", "")):
            return PlainTextResponse("CSRF check failed: reload the sign-in page", 403)
        username, password = form.get("username", ""), form.get("password", "")
        if not self.throttle.allowed(username, self.ctx.wall()):
            return self._form_page(429, "Too many failed sign-ins: wait 15 minutes.")
        found = self.ctx.accounts.password_hash(username)
        if found is None or not await asyncio.to_thread(auth.verify_password, password, found[1]):
            self.throttle.failed(username, self.ctx.wall())
            return self._form_page(401, "Unknown user name or wrong password.")
        self.throttle.succeeded(username)
        session = auth.new_session(found[0].responder_id, self.ctx.wall())
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, auth.sign_session(session, self.secret),
                            httponly=True, samesite="strict", secure=self.ctx.secure_cookies,
                            max_age=int(self.ctx.session_max_age))  # fmt: skip
        response.delete_cookie(LOGIN_COOKIE)
        return response

    async def sign_out(self, request: Request) -> Response:
        """POST /logout."""
        signed = self.who(request)
        form = await _form(request)
        if signed is None or not auth.csrf_ok(signed[0], form.get("csrf")):
            return PlainTextResponse("CSRF check failed", 403)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response


class Pages(_Desk):
    """What people read: open work, a case, the supervisor view, and their fragments."""

    def _work(self, unit: str | None) -> dict[str, Any]:
        work, escalations = reads.open_work(self.ctx.model), reads.open_escalations(self.ctx.model)
        units = views.units_of(work, escalations)
        unit = unit if unit in units else None
        groups = views.open_work(work, escalations, self.ctx.now(), unit)
        return {"groups": groups, "units": units, "unit": unit}

    async def work(self, request: Request) -> Response:
        """GET / (and its fragment); ``?unit=`` keeps one unit's work (not personal data)."""
        fragment = request.url.path.startswith("/fragments/")
        context = self._work(request.query_params.get("unit") or None)
        return self.page("_work.html" if fragment else "work.html", request, **context)

    async def case(self, request: Request) -> Response:
        """GET /cases/{case_key} (and its fragment)."""
        signed = self.who(request)
        if signed is None:
            return self.page("case.html", request)  # the way to sign in
        context = self.case_context(request.path_params["case_key"], signed[1].responder_id)
        if context is None:
            return self.page("missing.html", request, 404)
        fragment = request.url.path.startswith("/fragments/")
        return self.page("_case.html" if fragment else "case.html", request, **context)

    async def supervisor(self, request: Request) -> Response:
        """GET /supervisor (and its fragment): supervisors only."""
        signed = self.who(request)
        if signed is not None and not auth.may_see_supervisor_view(signed[1].role):
            return self.page("forbidden.html", request, 403)
        data = views.supervisor_page(
            reads.supervisor(self.ctx.model),
            [dict(p) for p in self.ctx.accounts.open_proposals()],
        )
        fragment = request.url.path.startswith("/fragments/")
        return self.page("_supervisor.html" if fragment else "supervisor.html", request, sup=data)

    async def events(self, request: Request) -> Response:
        """GET /events: server-sent events, one ``changed`` per change of the read model."""
        if self.who(request) is None:
            return PlainTextResponse("sign in first", 401)

        async def stream() -> AsyncIterator[str]:
            async for chunk in self.ctx.changes.stream():
                if await request.is_disconnected():
                    return
                yield chunk

        return StreamingResponse(
            stream(), media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )  # fmt: skip

    async def health(self, request: Request) -> Response:
        """GET /healthz: 503 when the read model stopped."""
        notice = self.ctx.status()
        if notice is not None and notice.failed:
            return PlainTextResponse(notice.text, 503)
        return PlainTextResponse(notice.text if notice else "ok")


class Actions(_Desk):
    """What people publish: case updates, downgrade proposals and their confirmation."""

    async def _signed(self, request: Request) -> tuple[Account, dict[str, str]] | Response:
        signed = self.who(request)
        form = await _form(request)
        if signed is None or not auth.csrf_ok(signed[0], form.get("csrf")):
            return PlainTextResponse("CSRF check failed: reload the page", 403)
        return signed[1], form

    async def act(self, request: Request) -> Response:
        """POST /cases/{case_key}/actions: publish an update, or store a downgrade
        proposal (published only when a second person confirms it)."""
        signed = await self._signed(request)
        if isinstance(signed, Response):
            return signed
        account, form = signed
        key = request.path_params["case_key"]
        row = reads.case(self.ctx.model, key)
        token, action = form.get("form_token", ""), form.get("action", "")
        if row is None or len(token) < 16:
            return PlainTextResponse("unknown case or form", 400)
        back = "/" if form.get("back") == "work" else f"/cases/{key}"
        now = self.ctx.now()
        try:
            body = build_event(action, form, victim_ref=row["victim_ref"],
                               responder_id=account.responder_id, at=now, form_token=token,
                               current_level=row["level"])  # fmt: skip
        except ActionError as exc:
            return self.case_error(request, 400, str(exc), account.responder_id)
        if action == "override_down":
            self.ctx.accounts.propose(event_id(token), key, str(body["decision_id"]),
                                      body["new_level"], body["reason"], account.responder_id,
                                      now)  # fmt: skip
            return RedirectResponse(back, status_code=303)
        error = await self._send(body, token, key, action, account.responder_id, now)
        if error is not None:
            return self.case_error(request, 502, error, account.responder_id)
        return RedirectResponse(back, status_code=303)

    async def confirm(self, request: Request) -> Response:
        """POST /cases/{case_key}/proposals/{proposal_id}/confirm: a second person
        confirms a downgrade; the override is published with both names."""
        signed = await self._signed(request)
        if isinstance(signed, Response):
            return signed
        account = signed[0]
        key = request.path_params["case_key"]
        proposal = self.ctx.accounts.proposal(request.path_params["proposal_id"])
        row = reads.case(self.ctx.model, key)
        if proposal is None or row is None or proposal["case_key"] != key:
            return PlainTextResponse("unknown proposal", 404)
        problem = auth.confirm_problem(
            proposal["author"], account.responder_id, proposal["confirmed_by"] is not None
        )
        if problem is not None:
            return self.case_error(request, 409, problem, account.responder_id)
        now = self.ctx.now()
        token = "confirm-" + proposal["proposal_id"]
        values = {"decision_id": proposal["decision_id"], "new_level": proposal["new_level"],
                  "reason": proposal["reason"]}  # fmt: skip
        body = build_event("override_down", values, victim_ref=row["victim_ref"],
                           responder_id=proposal["author"], at=now, form_token=token,
                           second_reviewer=account.responder_id)  # fmt: skip
        error = await self._send(body, token, key, "override_down", account.responder_id, now)
        if error is not None:
            return self.case_error(request, 502, error, account.responder_id)
        self.ctx.accounts.confirm(proposal["proposal_id"], account.responder_id, body["id"])
        return RedirectResponse(f"/cases/{key}", status_code=303)

    async def _send(
        self, body: dict[str, Any], token: str, key: str, action: str, who: str, now: datetime
    ) -> str | None:
        """Publish once per form token; the refusal's text, or None."""
        from triage.publishing import PublishRefused

        if not self.ctx.accounts.claim_token(token, body["id"], key, action, who, now):
            return None  # sent already: a double click is one event
        try:
            await asyncio.to_thread(self.ctx.publisher.publish, body, now)
        except PublishRefused as exc:
            self.ctx.accounts.release_token(token)
            return str(exc)
        return None


def routes(ctx: ConsoleContext) -> list[BaseRoute]:
    """Every route of the console."""
    sign_in, pages, actions = SignIn(ctx), Pages(ctx), Actions(ctx)
    return [
        Route("/", pages.work),
        Route("/login", sign_in.form, methods=["GET"]),
        Route("/login", sign_in.sign_in, methods=["POST"]),
        Route("/logout", sign_in.sign_out, methods=["POST"]),
        Route("/fragments/work", pages.work),
        Route("/cases/{case_key}", pages.case),
        Route("/fragments/cases/{case_key}", pages.case),
        Route("/cases/{case_key}/actions", actions.act, methods=["POST"]),
        Route(
            "/cases/{case_key}/proposals/{proposal_id}/confirm", actions.confirm, methods=["POST"]
        ),
        Route("/supervisor", pages.supervisor),
        Route("/fragments/supervisor", pages.supervisor),
        Route("/events", pages.events),
        Route("/healthz", pages.health),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


def create_app(ctx: ConsoleContext, *, access_log: bool = True) -> Starlette:
    """The web app over ``ctx``."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ctx.changes.bind(asyncio.get_running_loop())
        yield

    app = Starlette(routes=routes(ctx), lifespan=lifespan)
    app.add_middleware(SecurityHeaders)
    if access_log:
        app.add_middleware(AccessLog)
    return app
