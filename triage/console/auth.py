"""Accounts and sessions: scrypt password hashes, signed session cookies, CSRF tokens,
roles and the two-person rule for downgrades. Pure functions over bytes and times.

Passwords are hashed with the standard library's ``hashlib.scrypt`` (no native
dependency to build; parameters of OWASP's recommendation, n=2**14, r=8, p=1 would
be the floor, we use n=2**15). A session is a cookie ``payload.signature``: the
payload names the responder, the session's CSRF token and when it was issued, signed
with HMAC-SHA256 under the console's secret; it expires after ``max_age`` seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

import orjson

Role = Literal["responder", "supervisor"]
ROLES: tuple[Role, ...] = ("responder", "supervisor")

_N, _R, _P = 2**15, 8, 1
_MAXMEM = 64 * 1024 * 1024


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` (salt and hash in hex)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a hash made by :func:`hash_password` (constant time)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(
            password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
            maxmem=_MAXMEM,
        )  # fmt: skip
    except ValueError:
        return False
    return hmac.compare_digest(computed, bytes.fromhex(digest))


@dataclass(frozen=True, slots=True)
class Session:
    """Who is signed in, the CSRF token of this session, when it was issued (epoch s)."""

    responder_id: str
    csrf: str
    issued: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_session(responder_id: str, now: float) -> Session:
    """A fresh session with its own CSRF token."""
    return Session(responder_id, secrets.token_urlsafe(24), now)


def sign_session(session: Session, secret: bytes) -> str:
    """The cookie value of a session."""
    payload = _b64(
        orjson.dumps({"r": session.responder_id, "c": session.csrf, "i": session.issued})
    )
    mac = hmac.new(secret, payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def read_session(cookie: str | None, secret: bytes, now: float, max_age: float) -> Session | None:
    """The session of a cookie, or None when absent, forged, malformed or expired."""
    if not cookie or "." not in cookie:
        return None
    payload, _, signature = cookie.partition(".")
    expected = hmac.new(secret, payload.encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(signature)):
            return None
        body = orjson.loads(_unb64(payload))
        session = Session(str(body["r"]), str(body["c"]), float(body["i"]))
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None
    if not 0 <= now - session.issued <= max_age:
        return None
    return session


def csrf_ok(session: Session | None, submitted: str | None) -> bool:
    """Whether a POST carries its session's CSRF token."""
    if session is None or not submitted:
        return False
    return hmac.compare_digest(session.csrf.encode(), submitted.encode())


class SignInThrottle:
    """At most ``limit`` failed sign-ins per user name within ``window`` seconds; past
    that, the name is refused until its oldest failure leaves the window. In memory:
    a restart forgets it (a deployment behind a proxy would also limit per address)."""

    def __init__(self, limit: int = 5, window: float = 900.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, list[float]] = {}

    def _recent(self, username: str, now: float) -> list[float]:
        kept = [t for t in self._failures.get(username, []) if now - t < self.window]
        if kept:
            self._failures[username] = kept
        else:
            self._failures.pop(username, None)
        return kept

    def allowed(self, username: str, now: float) -> bool:
        """Whether a sign-in for ``username`` may be tried now."""
        return len(self._recent(username, now)) < self.limit

    def failed(self, username: str, now: float) -> None:
        """Count a failed sign-in."""
        if len(self._failures) > 10_000:  # bounded: forget names whose failures expired
            for name in list(self._failures):
                self._recent(name, now)
        self._failures.setdefault(username, []).append(now)

    def succeeded(self, username: str) -> None:
        """A successful sign-in clears the name's failures."""
        self._failures.pop(username, None)


def may_see_supervisor_view(role: str) -> bool:
    """Only supervisors see escalations, conflicts and rejected overrides together."""
    return role == "supervisor"


def confirm_problem(author: str, reviewer: str, already_confirmed: bool) -> str | None:
    """Why ``reviewer`` may not confirm a downgrade proposed by ``author`` (None: may)."""
    if already_confirmed:
        return "this downgrade was already confirmed"
    if reviewer == author:
        return "a second person must confirm a downgrade: you proposed it"
    return None
