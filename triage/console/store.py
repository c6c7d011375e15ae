"""The console's SQLite files: the read model (rebuildable) and the accounts.

``read-model.sqlite3`` holds the projection and, in the same transaction as its
rows, the next offset of every partition it read: after a restart it goes on where
it stopped, and deleting the file (or ``--rebuild``) rebuilds it from the topics.
``accounts.sqlite3`` holds what the topics cannot give back: accounts, the secret
that signs sessions, downgrade proposals awaiting a second person, and the actions
already published (by form token, so a double click is one event).

stdlib sqlite3 suits one console on one machine; a multi-site deployment would keep
both in PostgreSQL (see README).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from triage.console.projection import (
    CaseClosedAt,
    CaseSeen,
    Change,
    EscalationRaised,
    OverrideRefused,
    TimelineEntry,
    WorkAnswered,
    WorkMoved,
    WorkUpserted,
    WorkWithdrawn,
)

READ_MODEL_SCHEMA = """
CREATE TABLE IF NOT EXISTS offsets (
  topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,
  PRIMARY KEY (topic, partition));
CREATE TABLE IF NOT EXISTS cases (
  case_key TEXT PRIMARY KEY, victim_ref TEXT NOT NULL, level TEXT, decision_id TEXT,
  unit TEXT, decided_at TEXT, closed_at TEXT, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS work (
  work_item_id TEXT PRIMARY KEY, case_key TEXT NOT NULL, decision_id TEXT NOT NULL,
  queue TEXT NOT NULL, unit TEXT NOT NULL, level TEXT NOT NULL, kind TEXT NOT NULL,
  ack_due TEXT NOT NULL, action_due TEXT NOT NULL, time TEXT NOT NULL,
  withdrawn INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS work_case ON work (case_key);
CREATE TABLE IF NOT EXISTS moves (
  case_key TEXT NOT NULL, queue TEXT NOT NULL, time TEXT NOT NULL,
  PRIMARY KEY (case_key, queue, time));
CREATE TABLE IF NOT EXISTS answers (
  decision_id TEXT NOT NULL, queue TEXT NOT NULL, stage TEXT NOT NULL, time TEXT NOT NULL,
  PRIMARY KEY (decision_id, queue, stage));
CREATE TABLE IF NOT EXISTS escalations (
  escalation_id TEXT PRIMARY KEY, case_key TEXT NOT NULL, decision_id TEXT NOT NULL,
  queue TEXT NOT NULL, unit TEXT NOT NULL, level TEXT NOT NULL, stage TEXT NOT NULL,
  deadline TEXT NOT NULL, fields TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS refusals (
  record_id TEXT PRIMARY KEY, case_key TEXT NOT NULL, source_event_id TEXT NOT NULL,
  reason_code TEXT NOT NULL, direction TEXT NOT NULL, requested_level TEXT NOT NULL,
  author TEXT NOT NULL, time TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS timeline (
  entry_id TEXT PRIMARY KEY, case_key TEXT NOT NULL, time TEXT NOT NULL, kind TEXT NOT NULL,
  source_event_id TEXT, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS timeline_case ON timeline (case_key, time);
CREATE INDEX IF NOT EXISTS timeline_source ON timeline (source_event_id);
"""
PROJECTION_TABLES = ("offsets", "cases", "work", "answers", "escalations", "refusals", "timeline")

ACCOUNTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
  responder_id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('responder', 'supervisor')));
CREATE TABLE IF NOT EXISTS proposals (
  proposal_id TEXT PRIMARY KEY, case_key TEXT NOT NULL, decision_id TEXT NOT NULL,
  new_level TEXT NOT NULL, reason TEXT NOT NULL, author TEXT NOT NULL, time TEXT NOT NULL,
  confirmed_by TEXT, event_id TEXT);
CREATE TABLE IF NOT EXISTS sent (
  form_token TEXT PRIMARY KEY, event_id TEXT NOT NULL, case_key TEXT NOT NULL,
  action TEXT NOT NULL, responder_id TEXT NOT NULL, time TEXT NOT NULL);
"""


def _iso(t: datetime) -> str:
    return t.isoformat()


def apply_change(db: sqlite3.Connection, change: Change) -> None:
    """Write one change; every write is an idempotent upsert or a max/min merge."""
    match change:
        case CaseSeen():
            db.execute(
                "INSERT INTO cases (case_key, victim_ref, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (case_key) DO UPDATE SET updated_at ="
                " max(updated_at, excluded.updated_at)",
                (change.case_key, change.victim_ref, _iso(change.time)),
            )
            if change.level is not None:
                db.execute(
                    "UPDATE cases SET level = ?, decision_id = ?, unit = ?, decided_at = ?"
                    " WHERE case_key = ? AND (decided_at IS NULL OR decided_at <= ?)",
                    (change.level, change.decision_id, change.unit, _iso(change.time),
                     change.case_key, _iso(change.time)),
                )  # fmt: skip
        case WorkUpserted():
            db.execute(
                "INSERT INTO work (work_item_id, case_key, decision_id, queue, unit, level,"
                " kind, ack_due, action_due, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (work_item_id) DO UPDATE SET decision_id = excluded.decision_id,"
                " unit = excluded.unit, level = excluded.level, kind = excluded.kind,"
                " ack_due = excluded.ack_due, action_due = excluded.action_due,"
                " time = excluded.time WHERE excluded.time >= work.time",
                (change.work_item_id, change.case_key, change.decision_id, change.queue,
                 change.unit, change.level, change.kind, _iso(change.ack_due),
                 _iso(change.action_due), _iso(change.time)),
            )  # fmt: skip
        case WorkAnswered():
            db.execute(
                "INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?)",
                (change.decision_id, change.queue, change.stage, _iso(change.time)),
            )
        case WorkWithdrawn():
            db.executemany(
                "INSERT INTO work (work_item_id, case_key, decision_id, queue, unit, level,"
                " kind, ack_due, action_due, time, withdrawn)"
                " VALUES (?, '', '', '', '', '', '', '', '', '', 1)"
                " ON CONFLICT (work_item_id) DO UPDATE SET withdrawn = 1",
                [(w,) for w in change.work_item_ids],
            )
        case WorkMoved():
            db.execute(
                "INSERT OR IGNORE INTO moves VALUES (?, ?, ?)",
                (change.case_key, change.queue, _iso(change.time)),
            )
        case CaseClosedAt():
            db.execute(
                "UPDATE cases SET closed_at = max(coalesce(closed_at, ''), ?) WHERE case_key = ?",
                (_iso(change.time), change.case_key),
            )
        case EscalationRaised():
            db.execute(
                "INSERT OR IGNORE INTO escalations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (change.escalation_id, change.case_key, change.decision_id, change.queue,
                 change.unit, change.level, change.stage, _iso(change.deadline),
                 json.dumps(list(change.fields))),
            )  # fmt: skip
        case OverrideRefused():
            db.execute(
                "INSERT OR IGNORE INTO refusals VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (change.record_id, change.case_key, change.source_event_id, change.reason_code,
                 change.direction, change.requested_level, change.author, _iso(change.time)),
            )  # fmt: skip
        case TimelineEntry():
            db.execute(
                "INSERT OR IGNORE INTO timeline VALUES (?, ?, ?, ?, ?, ?)",
                (change.entry_id, change.case_key, _iso(change.time), change.kind,
                 change.source_event_id, json.dumps(change.detail, sort_keys=True)),
            )  # fmt: skip


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


class ReadModel:
    """The projection's SQLite file. One writer (the consumer thread), many readers."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = _connect(path)
        self._db.executescript(READ_MODEL_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def rebuild(self) -> None:
        """Forget every row and offset: the consumer reads the topics from the start."""
        with self._lock:
            for table in PROJECTION_TABLES:
                self._db.execute(f"DROP TABLE IF EXISTS {table}")
            self._db.executescript(READ_MODEL_SCHEMA)

    def offsets(self) -> dict[tuple[str, int], int]:
        """The next offset to read of every partition read so far."""
        with self._lock:
            rows = self._db.execute("SELECT topic, partition, next_offset FROM offsets")
            return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    def apply(self, batch: Iterable[tuple[str, int, int, list[Change]]]) -> int:
        """Write the changes of records (topic, partition, offset, changes) and move each
        partition's offset past them, in one transaction. Returns the records written."""
        count = 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for topic, partition, offset, changes in batch:
                    for change in changes:
                        apply_change(self._db, change)
                    self._db.execute(
                        "INSERT INTO offsets VALUES (?, ?, ?) ON CONFLICT (topic, partition)"
                        " DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)",
                        (topic, partition, offset + 1),
                    )
                    count += 1
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return count

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Rows of a read-only query."""
        with self._lock:
            return list(self._db.execute(sql, params))


@dataclass(frozen=True, slots=True)
class Account:
    """A signed-in person: responder id, user name, role."""

    responder_id: str
    username: str
    role: str


class Accounts:
    """Accounts, the session secret, downgrade proposals and published actions."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = _connect(path)
        self._db.executescript(ACCOUNTS_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def secret(self) -> bytes:
        """The secret that signs session cookies and makes case keys (made once)."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE name = 'secret'").fetchone()
            if row is None:
                value = secrets.token_hex(32)
                db.execute("INSERT INTO meta VALUES ('secret', ?)", (value,))
                return bytes.fromhex(value)
            return bytes.fromhex(row["value"])

    def add_user(self, responder_id: str, username: str, password_hash: str, role: str) -> None:
        """Create or replace an account."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO users VALUES (?, ?, ?, ?) ON CONFLICT (responder_id) DO UPDATE SET"
                " username = excluded.username, password_hash = excluded.password_hash,"
                " role = excluded.role",
                (responder_id, username, password_hash, role),
            )

    def password_hash(self, username: str) -> tuple[Account, str] | None:
        """An account and its stored hash, by user name."""
        with self._lock:
            row = self._db.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
        if row is None:
            return None
        return Account(row["responder_id"], row["username"], row["role"]), row["password_hash"]

    def account(self, responder_id: str) -> Account | None:
        """An account by responder id."""
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM users WHERE responder_id = ?", (responder_id,)
            ).fetchone()
        return None if row is None else Account(row["responder_id"], row["username"], row["role"])

    def claim_token(
        self, form_token: str, event_id: str, case_key: str, action: str, who: str, at: datetime
    ) -> bool:
        """Record that ``form_token`` is being sent; False when it already was."""
        with self._tx() as db:
            cur = db.execute(
                "INSERT OR IGNORE INTO sent VALUES (?, ?, ?, ?, ?, ?)",
                (form_token, event_id, case_key, action, who, _iso(at)),
            )
            return cur.rowcount == 1

    def release_token(self, form_token: str) -> None:
        """Forget a token whose event could not be published (the form may be sent again)."""
        with self._tx() as db:
            db.execute("DELETE FROM sent WHERE form_token = ?", (form_token,))

    def sent_for_case(self, case_key: str, limit: int = 20) -> list[sqlite3.Row]:
        """The actions published from the console for a case, newest first."""
        with self._lock:
            return list(
                self._db.execute(
                    "SELECT * FROM sent WHERE case_key = ? ORDER BY time DESC LIMIT ?",
                    (case_key, limit),
                )
            )

    def propose(
        self, proposal_id: str, case_key: str, decision_id: str, new_level: str, reason: str,
        author: str, at: datetime,
    ) -> None:  # fmt: skip
        """Store a downgrade proposal awaiting a second person (idempotent by id)."""
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO proposals VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                (proposal_id, case_key, decision_id, new_level, reason, author, _iso(at)),
            )

    def proposal(self, proposal_id: str) -> sqlite3.Row | None:
        """One proposal."""
        with self._lock:
            row: sqlite3.Row | None = self._db.execute(
                "SELECT * FROM proposals WHERE proposal_id = ?", (proposal_id,)
            ).fetchone()
            return row

    def proposals_for_case(self, case_key: str) -> list[sqlite3.Row]:
        """The case's proposals, newest first."""
        with self._lock:
            return list(
                self._db.execute(
                    "SELECT * FROM proposals WHERE case_key = ? ORDER BY time DESC", (case_key,)
                )
            )

    def open_proposals(self) -> list[sqlite3.Row]:
        """Proposals not confirmed yet, oldest first."""
        with self._lock:
            return list(
                self._db.execute("SELECT * FROM proposals WHERE confirmed_by IS NULL ORDER BY time")
            )

    def confirm(self, proposal_id: str, reviewer: str, event_id: str) -> bool:
        """Mark a proposal confirmed by ``reviewer``; False if it already was."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE proposals SET confirmed_by = ?, event_id = ?"
                " WHERE proposal_id = ? AND confirmed_by IS NULL",
                (reviewer, event_id, proposal_id),
            )
            return cur.rowcount == 1
