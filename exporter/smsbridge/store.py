"""Idempotency records: which SMS of which notification went to which recipient.

The protocol is claim, send, then confirm, so that a crash can never double-send silently:

1. ``claim`` records the message as being sent *before* Twilio is called (committed and,
   for SQLite, synced to disk). A record already sent or rejected means "done, skip it";
   a fresh claim by someone else means "in flight elsewhere, answer 503 and let
   Alertmanager retry later".
2. After Twilio answers, ``confirm`` stores the SID, ``reject`` stores a permanent error
   (never retried) and ``release`` drops the claim of a retryable failure.
3. A claim older than its lease belongs to a bridge that died between claiming and
   confirming: Twilio may or may not have the message. Taking it over sends again, which
   can duplicate the SMS; the take-over is reported (``Claim.stale``) so the caller logs
   and counts it. We chose a possible, visible duplicate over a silently lost page.

Keys are hashes, so the store holds no phone numbers. Records live ``window`` seconds: a
record older than that no longer deduplicates and is pruned.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from exporter.logs import Redactor
from exporter.smsbridge.payload import Notification

State = Literal["claimed", "sent", "rejected"]
Verdict = Literal["send", "sent", "rejected", "busy"]

_TABLE = "sms_bridge_messages"


class StoreError(Exception):
    """The store cannot be read or written now (a retry may succeed); no secret in the text."""


@dataclass(frozen=True)
class Claim:
    """The outcome of a claim: send now, already sent, rejected for good, or in flight."""

    verdict: Verdict
    sid: str | None = None
    error_code: int | None = None
    stale: bool = False  # the claim of a bridge that died mid-send was taken over


@dataclass(frozen=True)
class _Row:
    state: State
    sid: str | None
    error_code: int | None
    created_at: float
    claimed_at: float


def message_key(notification: Notification, recipient: str) -> str:
    """The identity of one SMS: group, status, each alert's fingerprint, start and status, and
    the recipient; the same notification retried or re-sent by another Alertmanager has the
    same key."""
    alerts = sorted((a.fingerprint, a.starts_at, a.status) for a in notification.alerts)
    identity = [notification.group_key, notification.status, alerts, recipient]
    return hashlib.sha256(json.dumps(identity, separators=(",", ":")).encode()).hexdigest()


def _decide(row: _Row | None, now: float, lease: float, window: float) -> Claim:
    """What to do with an existing record (pure; both stores share it)."""
    if row is None or row.created_at < now - window:
        return Claim("send")
    if row.state == "sent":
        return Claim("sent", sid=row.sid)
    if row.state == "rejected":
        return Claim("rejected", error_code=row.error_code)
    if row.claimed_at >= now - lease:
        return Claim("busy")
    return Claim("send", stale=True)


class IdempotencyStore(Protocol):
    """What the delivery needs from a store; SQLite and PostgreSQL implement it."""

    def claim(self, key: str, *, now: float, lease: float, window: float) -> Claim:
        """Atomically decide and, for "send", record the claim before anything is sent."""

    def confirm(self, key: str, sid: str, *, now: float) -> None:
        """The message was accepted by Twilio under ``sid``."""

    def reject(self, key: str, error_code: int | None, *, now: float) -> None:
        """The message can never be sent (invalid number, opted out): do not try again."""

    def release(self, key: str) -> None:
        """Sending failed in a way a retry can fix: forget the claim."""

    def prune(self, before: float) -> int:
        """Drop records created before ``before``; the number dropped."""

    def close(self) -> None:
        """Release files and connections."""


_SQLITE_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('claimed', 'sent', 'rejected')),
    sid TEXT,
    error_code INTEGER,
    created_at REAL NOT NULL,
    claimed_at REAL NOT NULL
)
"""


class SqliteStore:
    """Records in a local SQLite file (WAL, synced on each commit): one bridge, restarts safe."""

    def __init__(self, path: str, *, busy_timeout: float = 5.0) -> None:
        try:
            self._conn = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a claim is on disk before Twilio is called, even if the machine dies.
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(_SQLITE_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the SQLite store {path}: {exc}") from None
        self._lock = threading.Lock()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store: {exc}") from None

    def claim(self, key: str, *, now: float, lease: float, window: float) -> Claim:
        """See :class:`IdempotencyStore`."""
        with self._write() as conn:
            found = conn.execute(
                f"SELECT state, sid, error_code, created_at, claimed_at FROM {_TABLE} "
                "WHERE key = ?",
                (key,),
            ).fetchone()
            claim = _decide(_Row(*found) if found else None, now, lease, window)
            if claim.verdict == "send":
                conn.execute(
                    f"INSERT INTO {_TABLE} (key, state, created_at, claimed_at) "
                    "VALUES (?, 'claimed', ?, ?) ON CONFLICT (key) DO UPDATE SET "
                    "state = 'claimed', sid = NULL, error_code = NULL, "
                    "created_at = excluded.created_at, claimed_at = excluded.claimed_at",
                    (key, now, now),
                )
            return claim

    def confirm(self, key: str, sid: str, *, now: float) -> None:
        """See :class:`IdempotencyStore`."""
        with self._write() as conn:
            conn.execute(
                f"UPDATE {_TABLE} SET state = 'sent', sid = ?, claimed_at = ? WHERE key = ?",
                (sid, now, key),
            )

    def reject(self, key: str, error_code: int | None, *, now: float) -> None:
        """See :class:`IdempotencyStore`."""
        with self._write() as conn:
            conn.execute(
                f"UPDATE {_TABLE} SET state = 'rejected', error_code = ?, claimed_at = ? "
                "WHERE key = ?",
                (error_code, now, key),
            )

    def release(self, key: str) -> None:
        """See :class:`IdempotencyStore`."""
        with self._write() as conn:
            conn.execute(f"DELETE FROM {_TABLE} WHERE key = ? AND state = 'claimed'", (key,))

    def prune(self, before: float) -> int:
        """See :class:`IdempotencyStore`."""
        with self._write() as conn:
            return conn.execute(f"DELETE FROM {_TABLE} WHERE created_at < ?", (before,)).rowcount

    def close(self) -> None:
        """See :class:`IdempotencyStore`."""
        with self._lock:
            self._conn.close()


_POSTGRES_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    key text PRIMARY KEY,
    state text NOT NULL CHECK (state IN ('claimed', 'sent', 'rejected')),
    sid text,
    error_code integer,
    created_at double precision NOT NULL,
    claimed_at double precision NOT NULL
)
"""


class PostgresStore:
    """Records in PostgreSQL, shared by every bridge behind an Alertmanager cluster.

    A claim is one transaction: insert if absent, else lock the row (``FOR UPDATE``) and
    decide, so two bridges receiving the same notification never both send it.
    """

    def __init__(self, dsn: str, *, connect_timeout: float = 5.0, max_size: int = 4) -> None:
        timeout = max(1, round(connect_timeout))
        # One plain connection first: a clear error (and no pool retrying in the background)
        # when the database is unreachable, and the table exists before the first webhook.
        try:
            with psycopg.connect(dsn, connect_timeout=timeout, autocommit=True) as conn:
                conn.execute(_POSTGRES_SCHEMA)
        except psycopg.Error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            password = conninfo_to_dict(dsn).get("password")
            scrub = Redactor([dsn, str(password)] if password else [dsn])
            raise StoreError(f"cannot use the PostgreSQL store: {scrub(first)}") from None
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=max_size,
            timeout=connect_timeout,
            kwargs={"connect_timeout": timeout},
            open=False,
            name="sms-bridge-store",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except psycopg.Error as exc:
            self._pool.close()
            # psycopg's text may quote the connection string: name the kind of failure only.
            raise StoreError(f"cannot use the PostgreSQL store: {type(exc).__name__}") from None

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield conn
        except psycopg.Error as exc:  # the pool's own timeouts are psycopg errors too
            raise StoreError(f"PostgreSQL store: {type(exc).__name__}") from None

    def claim(self, key: str, *, now: float, lease: float, window: float) -> Claim:
        """See :class:`IdempotencyStore`."""
        with self._transaction() as conn:
            inserted = conn.execute(
                f"INSERT INTO {_TABLE} (key, state, created_at, claimed_at) "
                "VALUES (%s, 'claimed', %s, %s) ON CONFLICT (key) DO NOTHING RETURNING key",
                (key, now, now),
            ).fetchone()
            if inserted:
                return Claim("send")
            found = conn.execute(
                f"SELECT state, sid, error_code, created_at, claimed_at FROM {_TABLE} "
                "WHERE key = %s FOR UPDATE",
                (key,),
            ).fetchone()
            claim = _decide(_Row(*found) if found else None, now, lease, window)
            if claim.verdict == "send":
                conn.execute(
                    f"INSERT INTO {_TABLE} (key, state, created_at, claimed_at) "
                    "VALUES (%s, 'claimed', %s, %s) ON CONFLICT (key) DO UPDATE SET "
                    "state = 'claimed', sid = NULL, error_code = NULL, "
                    "created_at = excluded.created_at, claimed_at = excluded.claimed_at",
                    (key, now, now),
                )
            return claim

    def confirm(self, key: str, sid: str, *, now: float) -> None:
        """See :class:`IdempotencyStore`."""
        with self._transaction() as conn:
            conn.execute(
                f"UPDATE {_TABLE} SET state = 'sent', sid = %s, claimed_at = %s WHERE key = %s",
                (sid, now, key),
            )

    def reject(self, key: str, error_code: int | None, *, now: float) -> None:
        """See :class:`IdempotencyStore`."""
        with self._transaction() as conn:
            conn.execute(
                f"UPDATE {_TABLE} SET state = 'rejected', error_code = %s, claimed_at = %s "
                "WHERE key = %s",
                (error_code, now, key),
            )

    def release(self, key: str) -> None:
        """See :class:`IdempotencyStore`."""
        with self._transaction() as conn:
            conn.execute(f"DELETE FROM {_TABLE} WHERE key = %s AND state = 'claimed'", (key,))

    def prune(self, before: float) -> int:
        """See :class:`IdempotencyStore`."""
        with self._transaction() as conn:
            return conn.execute(f"DELETE FROM {_TABLE} WHERE created_at < %s", (before,)).rowcount

    def close(self) -> None:
        """See :class:`IdempotencyStore`."""
        self._pool.close()
