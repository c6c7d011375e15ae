"""The console's Starlette app: pages, fragments for htmx, server-sent events, actions.

Every page needs a signed-in person; every POST carries the session's CSRF token
(the sign-in form a double-submit cookie). URLs name cases by their opaque key only.
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
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from triage.console import auth, reads, views
from triage.console.actions import ACTION_CHOICES, ActionError, Publisher, build_event, event_id
from triage.console.store import Account, Accounts, ReadModel
from triage.console.web import AccessLog, Changes
from triage.publishing import PublishRefused

SESSION_COOKIE = "triage_session"
LOGIN_COOKIE = "triage_login"
STATIC = Path(__file__).parent / "static"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleContext:
    """What the app works with: its stores, its publisher, its clock."""

    model: ReadModel
    accounts: Accounts
    publisher: Publisher
    changes: Changes
    now: Callable[[], datetime]
    """The console's clock: the wall clock, or in the demo the stream's event time."""
    session_max_age: float = 8 * 3600.0
    secure_cookies: bool = False
    wall: Callable[[], float]
    """Epoch seconds of the wall clock (session expiry)."""
    status: Callable[[], str | None] = lambda: None
    """A warning for every page (the read model stopped or is catching up), or None."""


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


def create_app(ctx: ConsoleContext, *, access_log: bool = True) -> Starlette:
    """The web app over ``ctx``."""
    secret = ctx.accounts.secret()

    def who(request: Request) -> tuple[auth.Session, Account] | None:
        session = auth.read_session(
            request.cookies.get(SESSION_COOKIE), secret, ctx.wall(), ctx.session_max_age
        )
        account = None if session is None else ctx.accounts.account(session.responder_id)
        return None if session is None or account is None else (session, account)

    def page(name: str, request: Request, status: int = 200, **context: Any) -> Response:
        signed = who(request)
        if signed is None:
            return RedirectResponse("/login", status_code=303)
        session, account = signed
        now = ctx.now()
        return _render(
            name, status, me=account, csrf=session.csrf, now_ms=int(now.timestamp() * 1000),
            now_text=views.paris(now), new_token=lambda: secrets.token_urlsafe(18),
            choices=ACTION_CHOICES, banner=ctx.status(),
            **context,
        )  # fmt: skip

    def work_context() -> dict[str, Any]:
        groups = views.open_work(
            reads.open_work(ctx.model), reads.open_escalations(ctx.model), ctx.now()
        )
        return {"groups": groups}

    def case_context(case_key: str, viewer: str) -> dict[str, Any] | None:
        row = reads.case(ctx.model, case_key)
        if row is None:
            return None
        sent = ctx.accounts.sent_for_case(case_key)
        answers = reads.answers_to(ctx.model, [s["event_id"] for s in sent])
        return {
            "case": views.case_page(
                row, reads.open_work(ctx.model, case_key), reads.timeline(ctx.model, case_key),
                [dict(s) for s in sent], answers,
                [dict(p) for p in ctx.accounts.proposals_for_case(case_key)], viewer, ctx.now(),
            )
        }  # fmt: skip

    async def login_form(request: Request) -> Response:
        token = secrets.token_urlsafe(18)
        response = _render("login.html", login_csrf=token, error=None)
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                            secure=ctx.secure_cookies, max_age=600)  # fmt: skip
        return response

    async def login(request: Request) -> Response:
        form = await _form(request)
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        if not cookie or not secrets.compare_digest(cookie, form.get("csrf", "")):
            return PlainTextResponse("CSRF check failed: reload the sign-in page", 403)
        found = ctx.accounts.password_hash(form.get("username", ""))
        password = form.get("password", "")
        if found is None or not await asyncio.to_thread(auth.verify_password, password, found[1]):
            token = secrets.token_urlsafe(18)
            refused = _render("login.html", 401, login_csrf=token,
                               error="Unknown user name or wrong password.")  # fmt: skip
            refused.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict",
                               secure=ctx.secure_cookies, max_age=600)  # fmt: skip
            return refused
        session = auth.new_session(found[0].responder_id, ctx.wall())
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, auth.sign_session(session, secret), httponly=True,
                            samesite="strict", secure=ctx.secure_cookies,
                            max_age=int(ctx.session_max_age))  # fmt: skip
        response.delete_cookie(LOGIN_COOKIE)
        return response

    async def logout(request: Request) -> Response:
        signed = who(request)
        form = await _form(request)
        if signed is None or not auth.csrf_ok(signed[0], form.get("csrf")):
            return PlainTextResponse("CSRF check failed", 403)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    async def home(request: Request) -> Response:
        return page("work.html", request, **work_context())

    async def work_fragment(request: Request) -> Response:
        return page("_work.html", request, **work_context())

    async def case_view(request: Request) -> Response:
        signed = who(request)
        context = (
            case_context(request.path_params["case_key"], signed[1].responder_id) if signed else {}
        )
        if context is None:
            return page("missing.html", request, 404)
        return page("case.html", request, **context)

    async def case_fragment(request: Request) -> Response:
        signed = who(request)
        context = (
            case_context(request.path_params["case_key"], signed[1].responder_id) if signed else {}
        )
        if context is None:
            return page("missing.html", request, 404)
        return page("_case.html", request, **context)

    async def supervisor_view(request: Request, fragment: bool = False) -> Response:
        signed = who(request)
        if signed is not None and not auth.may_see_supervisor_view(signed[1].role):
            return page("forbidden.html", request, 403)
        data = views.supervisor_page(
            reads.supervisor(ctx.model), [dict(p) for p in ctx.accounts.open_proposals()]
        )
        return page("_supervisor.html" if fragment else "supervisor.html", request, sup=data)

    async def supervisor_fragment(request: Request) -> Response:
        return await supervisor_view(request, fragment=True)

    async def act(request: Request) -> Response:
        signed = who(request)
        form = await _form(request)
        if signed is None or not auth.csrf_ok(signed[0], form.get("csrf")):
            return PlainTextResponse("CSRF check failed: reload the page", 403)
        account = signed[1]
        key = request.path_params["case_key"]
        back = "/" if form.get("back") == "work" else f"/cases/{key}"
        row = reads.case(ctx.model, key)
        token = form.get("form_token", "")
        action = form.get("action", "")
        if row is None or len(token) < 16:
            return PlainTextResponse("unknown case or form", 400)
        now = ctx.now()
        try:
            if action == "override_down":
                body = build_event(action, form, victim_ref=row["victim_ref"],
                                   responder_id=account.responder_id, at=now, form_token=token,
                                   current_level=row["level"])  # fmt: skip
                ctx.accounts.propose(event_id(token), key, str(form.get("decision_id")),
                                     body["new_level"], body["reason"], account.responder_id,
                                     now)  # fmt: skip
                return RedirectResponse(back, status_code=303)
            body = build_event(action, form, victim_ref=row["victim_ref"],
                               responder_id=account.responder_id, at=now, form_token=token,
                               current_level=row["level"])  # fmt: skip
        except ActionError as exc:
            return page(
                "case.html",
                request,
                400,
                error=str(exc),
                **(case_context(key, account.responder_id) or {}),
            )
        error = await _send(body, token, key, action, account.responder_id, now)
        if error is not None:
            return page(
                "case.html",
                request,
                502,
                error=error,
                **(case_context(key, account.responder_id) or {}),
            )
        return RedirectResponse(back, status_code=303)

    async def confirm(request: Request) -> Response:
        signed = who(request)
        form = await _form(request)
        if signed is None or not auth.csrf_ok(signed[0], form.get("csrf")):
            return PlainTextResponse("CSRF check failed: reload the page", 403)
        account = signed[1]
        key = request.path_params["case_key"]
        proposal = ctx.accounts.proposal(request.path_params["proposal_id"])
        row = reads.case(ctx.model, key)
        if proposal is None or row is None or proposal["case_key"] != key:
            return PlainTextResponse("unknown proposal", 404)
        problem = auth.confirm_problem(
            proposal["author"], account.responder_id, proposal["confirmed_by"] is not None
        )
        if problem is not None:
            return page(
                "case.html",
                request,
                409,
                error=problem,
                **(case_context(key, account.responder_id) or {}),
            )
        now = ctx.now()
        token = "confirm-" + proposal["proposal_id"]
        form_values = {"decision_id": proposal["decision_id"], "new_level": proposal["new_level"],
                       "reason": proposal["reason"]}  # fmt: skip
        body = build_event("override_down", form_values, victim_ref=row["victim_ref"],
                           responder_id=proposal["author"], at=now, form_token=token,
                           second_reviewer=account.responder_id)  # fmt: skip
        error = await _send(body, token, key, "override_down", account.responder_id, now)
        if error is not None:
            return page(
                "case.html",
                request,
                502,
                error=error,
                **(case_context(key, account.responder_id) or {}),
            )
        ctx.accounts.confirm(proposal["proposal_id"], account.responder_id, body["id"])
        return RedirectResponse(f"/cases/{key}", status_code=303)

    async def _send(
        body: dict[str, Any], token: str, key: str, action: str, who_id: str, now: datetime
    ) -> str | None:
        if not ctx.accounts.claim_token(token, body["id"], key, action, who_id, now):
            return None  # sent already: a double click is one event
        try:
            await asyncio.to_thread(ctx.publisher.publish, body, now)
        except PublishRefused as exc:
            ctx.accounts.release_token(token)
            return str(exc)
        return None

    async def events(request: Request) -> Response:
        if who(request) is None:
            return PlainTextResponse("sign in first", 401)

        async def stream() -> AsyncIterator[str]:
            async for chunk in ctx.changes.stream():
                if await request.is_disconnected():
                    return
                yield chunk

        return StreamingResponse(
            stream(), media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )  # fmt: skip

    async def health(request: Request) -> Response:
        problem = ctx.status()
        if problem is not None and "stopped" in problem:
            return PlainTextResponse(problem, 503)
        return PlainTextResponse(problem or "ok")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ctx.changes.bind(asyncio.get_running_loop())
        yield

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/login", login_form, methods=["GET"]),
            Route("/login", login, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/fragments/work", work_fragment),
            Route("/cases/{case_key}", case_view),
            Route("/fragments/cases/{case_key}", case_fragment),
            Route("/cases/{case_key}/actions", act, methods=["POST"]),
            Route("/cases/{case_key}/proposals/{proposal_id}/confirm", confirm, methods=["POST"]),
            Route("/supervisor", supervisor_view),
            Route("/fragments/supervisor", supervisor_fragment),
            Route("/events", events),
            Route("/healthz", health),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        lifespan=lifespan,
    )
    if access_log:
        app.add_middleware(AccessLog)
    return app
