"""Idempotency records: which SMS of which notification went to which recipient.

The protocol is claim, send, then confirm, so that a crash can never double-send silently:

1. ``claim`` records the message as being sent *before* Twilio is called (committed and,
   for SQLite, synced to disk). A record already sent, refused or deferred means "done,
   skip it"; a fresh claim by someone else means "in flight elsewhere, answer 503 and let
   Alertmanager retry later".
2. After Twilio answers, ``confirm`` stores the SID, ``reject`` stores a permanent error
   (never retried) and ``release`` drops the claim of a retryable failure.
3. A claim older than its lease belongs to a bridge that died between claiming and
   confirming: Twilio may or may not have the message. Taking it over sends again, which
   can duplicate the SMS; the take-over is reported (``Claim.stale``) so the caller logs
   and counts it. We chose a possible, visible duplicate over a silently lost page.

A message's key says what the recipient is told (group, status, each alert's fingerprint and
status), not when: the peers of an Alertmanager cluster fed by a Prometheus HA pair can see
different ``startsAt`` for one alert and must still produce one key. So that a later incident
that reads the same is still sent, the store keeps, per group and recipient, the key last
decided (sent, refused or deferred); a sent or refused record that is no longer its group's
latest no longer deduplicates. A peer's duplicate that arrives after the group has moved on
is sent again, the visible-duplicate side of the same choice.

A recipient over its rate limit gets its message ``defer``-red: the record then keeps the
number and the text until the digest sender (:mod:`exporter.smsbridge.digest`) takes all
of a recipient's deferred messages at once and sends them as one SMS. Otherwise keys and
recipients are hashes, so the store holds no phone numbers. Records live ``window``
seconds: older ones no longer deduplicate and are pruned (deferred ones only once sent).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

from exporter.logs import Redactor
from exporter.smsbridge.payload import Notification

State = Literal["claimed", "sent", "rejected", "deferred"]
Verdict = Literal["send", "sent", "rejected", "deferred", "busy"]

_TABLE = "sms_bridge_messages"
# The advisory lock key serialising schema creation: a fixed 64-bit number derived from the
# table name, so it is the same for every bridge and unlikely to meet another program's.
_SCHEMA_LOCK = int.from_bytes(hashlib.sha256(_TABLE.encode()).digest()[:8], "big", signed=True)


class StoreError(Exception):
    """The store cannot be read or written now (a retry may succeed); no secret in the text."""


@dataclass(frozen=True, kw_only=True)
class Claim:
    """The outcome of a claim: send now, already sent, refused, deferred, or in flight."""

    verdict: Verdict
    sid: str | None = None
    error_code: int | None = None
    stale: bool = False  # the claim of a bridge that died mid-send was taken over


@dataclass(frozen=True, kw_only=True)
class Deferred:
    """A deferred message taken for a digest."""

    key: str
    body: str
    created_at: float
    stale: bool  # a digest a dead bridge had claimed: it may have gone out already


@dataclass(frozen=True, kw_only=True)
class _Row:
    state: State
    sid: str | None
    error_code: int | None
    created_at: float
    claimed_at: float


def _row(found: Sequence[Any]) -> _Row:
    """A record as selected by claim(): state, sid, error_code, created_at, claimed_at."""
    state, sid, error_code, created_at, claimed_at = found
    return _Row(
        state=state,
        sid=sid,
        error_code=error_code,
        created_at=created_at,
        claimed_at=claimed_at,
    )


def message_key(notification: Notification, recipient: str) -> str:
    """The identity of one SMS: group, status, each alert's fingerprint and status, and the
    recipient; the same notification retried or re-sent by another Alertmanager, whatever
    ``startsAt`` its Prometheus gave, has the same key."""
    alerts = sorted((a.fingerprint, a.status) for a in notification.alerts)
    identity = [notification.group_key, notification.status, alerts, recipient]
    return hashlib.sha256(json.dumps(identity, separators=(",", ":")).encode()).hexdigest()


def thread_key(notification: Notification, recipient: str) -> str:
    """The conversation a message belongs to: one alert group told to one recipient."""
    identity = ["thread", notification.group_key, recipient]
    return hashlib.sha256(json.dumps(identity, separators=(",", ":")).encode()).hexdigest()


def recipient_hash(recipient: str) -> str:
    """What the store keeps of a number it only needs to count sends to."""
    return hashlib.sha256(f"recipient:{recipient}".encode()).hexdigest()


def _decide(
    row: _Row | None, now: float, lease: float, window: float, *, superseded: bool = False
) -> Claim:
    """What to do with an existing record (pure; both stores share it); ``superseded``: the
    record's thread has since decided another message, so a sent or refused one is history."""
    expired = row is None or row.created_at < now - window
    if expired or (superseded and row is not None and row.state in ("sent", "rejected")):
        return Claim(verdict="send")
    assert row is not None
    if row.state == "sent":
        return Claim(verdict="sent", sid=row.sid)
    if row.state == "rejected":
        return Claim(verdict="rejected", error_code=row.error_code)
    if row.state == "deferred":
        return Claim(verdict="deferred")
    if row.claimed_at >= now - lease:
        return Claim(verdict="busy")
    return Claim(verdict="send", stale=True)


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_TABLE} (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('claimed', 'sent', 'rejected', 'deferred')),
    sid TEXT,
    error_code INTEGER,
    created_at DOUBLE PRECISION NOT NULL,
    claimed_at DOUBLE PRECISION NOT NULL,
    recipient_hash TEXT NOT NULL,
    recipient TEXT,
    body TEXT
)
"""
# Per thread (one alert group, one recipient), the key of the message decided last.
_LATEST = "sms_bridge_latest"
_LATEST_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {_LATEST} (
    thread TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    decided_at DOUBLE PRECISION NOT NULL
)
"""
_INDEX = f"CREATE INDEX IF NOT EXISTS {_TABLE}_recent ON {_TABLE} (recipient_hash, claimed_at)"
# Rows the digest sender takes: deferred ones, and its own claims left by a dead bridge.
_DIGEST_ROWS = (
    "(state = 'deferred' OR (state = 'claimed' AND body IS NOT NULL AND claimed_at < %s))"
)


def create_schema_once(conn: psycopg.Connection[Any]) -> None:
    """Create the table and index, safe when several bridges start at once.

    ``CREATE … IF NOT EXISTS`` is not atomic in PostgreSQL: two sessions can both find the
    table missing and one then fails on the catalog's unique index
    (``pg_type_typname_nsp_index``). A transaction-level advisory lock makes the second
    wait for the first to commit, after which its ``IF NOT EXISTS`` finds the table.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        conn.execute(_SCHEMA)
        conn.execute(_INDEX)
        conn.execute(_LATEST_SCHEMA)


class IdempotencyStore:
    """The store's interface, in SQL both databases run; subclasses give a transaction, the
    placeholder style and the row lock."""

    _lock_row = ""  # appended to the SELECTs that must lock the rows they read

    def _transaction(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Release files and connections."""
        raise NotImplementedError

    def _run(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        return conn.execute(sql, tuple(params))

    def _lock_schema(self, conn: Any) -> None:
        """Serialise schema changes with other bridges on the same store (see
        :func:`create_schema_once`); SQLite's ``BEGIN IMMEDIATE`` already does."""

    def ensure_tables(self, *statements: str) -> None:
        """Run ``CREATE … IF NOT EXISTS`` statements of a feature's own tables, safe when
        several bridges start at once."""
        with self._transaction() as conn:
            self._lock_schema(conn)
            for sql in statements:
                self._run(conn, sql)

    def claim(
        self,
        key: str,
        recipient: str,
        *,
        now: float,
        lease: float,
        window: float,
        thread: str | None = None,
    ) -> Claim:
        """Atomically decide and, for "send", record the claim before anything is sent;
        ``thread`` (:func:`thread_key`) lets a later incident that reads the same be sent."""
        with self._transaction() as conn:
            inserted = self._run(
                conn,
                f"INSERT INTO {_TABLE} (key, state, created_at, claimed_at, recipient_hash) "
                "VALUES (%s, 'claimed', %s, %s, %s) ON CONFLICT (key) DO NOTHING RETURNING key",
                (key, now, now, recipient_hash(recipient)),
            ).fetchone()
            if inserted:
                return Claim(verdict="send")
            found = self._run(
                conn,
                f"SELECT state, sid, error_code, created_at, claimed_at FROM {_TABLE} "
                f"WHERE key = %s{self._lock_row}",
                (key,),
            ).fetchone()
            latest = None
            if thread is not None:
                latest = self._run(
                    conn, f"SELECT key FROM {_LATEST} WHERE thread = %s", (thread,)
                ).fetchone()
            superseded = latest is not None and latest[0] != key
            row = _row(found) if found else None
            claim = _decide(row, now, lease, window, superseded=superseded)
            if claim.verdict == "send":
                self._run(
                    conn,
                    f"INSERT INTO {_TABLE} (key, state, created_at, claimed_at, recipient_hash) "
                    "VALUES (%s, 'claimed', %s, %s, %s) ON CONFLICT (key) DO UPDATE SET "
                    "state = 'claimed', sid = NULL, error_code = NULL, recipient = NULL, "
                    "body = NULL, created_at = excluded.created_at, "
                    "claimed_at = excluded.claimed_at, recipient_hash = excluded.recipient_hash",
                    (key, now, now, recipient_hash(recipient)),
                )
            return claim

    def _decided(self, conn: Any, key: str, thread: str | None, now: float) -> None:
        if thread is not None:
            self._run(
                conn,
                f"INSERT INTO {_LATEST} (thread, key, decided_at) VALUES (%s, %s, %s) "
                "ON CONFLICT (thread) DO UPDATE SET key = excluded.key, "
                "decided_at = excluded.decided_at",
                (thread, key, now),
            )

    def confirm(self, key: str, sid: str, *, now: float, thread: str | None = None) -> None:
        """The message was accepted by Twilio under ``sid``; a deferred text is dropped."""
        with self._transaction() as conn:
            self._run(
                conn,
                f"UPDATE {_TABLE} SET state = 'sent', sid = %s, claimed_at = %s, recipient = NULL, "
                "body = NULL WHERE key = %s",
                (sid, now, key),
            )
            self._decided(conn, key, thread, now)

    def reject(
        self, key: str, error_code: int | None, *, now: float, thread: str | None = None
    ) -> None:
        """The message can never be sent (invalid number, opted out): do not try again."""
        with self._transaction() as conn:
            self._run(
                conn,
                f"UPDATE {_TABLE} SET state = 'rejected', error_code = %s, claimed_at = %s, "
                "recipient = NULL, body = NULL WHERE key = %s",
                (error_code, now, key),
            )
            self._decided(conn, key, thread, now)

    def release(self, key: str) -> None:
        """Sending failed in a way a retry can fix: forget the claim."""
        with self._transaction() as conn:
            self._run(conn, f"DELETE FROM {_TABLE} WHERE key = %s AND state = 'claimed'", (key,))

    def recent_sends(self, recipient: str, since: float) -> int:
        """SMS sent or being sent to ``recipient`` since ``since`` (a digest counts once)."""
        with self._transaction() as conn:
            row = self._run(
                conn,
                f"SELECT count(DISTINCT coalesce(sid, key)) FROM {_TABLE} "
                "WHERE recipient_hash = %s AND state IN ('claimed', 'sent') AND claimed_at >= %s",
                (recipient_hash(recipient), since),
            ).fetchone()
            return int(row[0])

    def defer(
        self, key: str, recipient: str, body: str, *, now: float, thread: str | None = None
    ) -> None:
        """Keep a claimed message for the recipient's next digest instead of sending it now."""
        with self._transaction() as conn:
            self._run(
                conn,
                f"UPDATE {_TABLE} SET state = 'deferred', recipient = %s, body = %s, "
                "claimed_at = %s WHERE key = %s",
                (recipient, body, now, key),
            )
            self._decided(conn, key, thread, now)

    def deferred_recipients(self, *, now: float, lease: float) -> list[str]:
        """Recipients with messages waiting for a digest."""
        with self._transaction() as conn:
            rows = self._run(
                conn,
                f"SELECT DISTINCT recipient FROM {_TABLE} WHERE {_DIGEST_ROWS} "
                "AND recipient IS NOT NULL ORDER BY recipient",
                (now - lease,),
            ).fetchall()
            return [str(r[0]) for r in rows]

    def take_deferred(self, recipient: str, *, now: float, lease: float) -> list[Deferred]:
        """Claim every message waiting for ``recipient``, oldest first."""
        with self._transaction() as conn:
            rows = self._run(
                conn,
                f"SELECT key, body, created_at, state FROM {_TABLE} WHERE {_DIGEST_ROWS} "
                f"AND recipient = %s ORDER BY created_at, key{self._lock_row}",
                (now - lease, recipient),
            ).fetchall()
            for key, *_rest in rows:
                self._run(
                    conn,
                    f"UPDATE {_TABLE} SET state = 'claimed', claimed_at = %s WHERE key = %s",
                    (now, key),
                )
            return [
                Deferred(key=str(k), body=str(b), created_at=float(c), stale=st == "claimed")
                for k, b, c, st in rows
            ]

    def restore_deferred(self, keys: Sequence[str]) -> None:
        """A digest could not be sent now: its messages wait for the next one."""
        with self._transaction() as conn:
            for key in keys:
                self._run(
                    conn,
                    f"UPDATE {_TABLE} SET state = 'deferred' WHERE key = %s AND state = 'claimed'",
                    (key,),
                )

    def prune(self, before: float) -> int:
        """Drop records created before ``before`` (never a deferred one), and threads last
        decided before it; the number of records dropped."""
        with self._transaction() as conn:
            cursor = self._run(
                conn,
                f"DELETE FROM {_TABLE} WHERE created_at < %s AND body IS NULL",
                (before,),
            )
            dropped = int(cursor.rowcount)
            self._run(conn, f"DELETE FROM {_LATEST} WHERE decided_at < %s", (before,))
            return dropped


class SqliteStore(IdempotencyStore):
    """Records in a local SQLite file (WAL, synced on each commit): one bridge, restarts safe."""

    def __init__(self, path: str, *, busy_timeout: float = 5.0) -> None:
        try:
            self._conn = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a claim is on disk before Twilio is called, even if the machine dies.
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(_SCHEMA)
            self._conn.execute(_INDEX)
            self._conn.execute(_LATEST_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the SQLite store {path}: {exc}") from None
        self._lock = threading.Lock()

    def _run(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        return conn.execute(sql.replace("%s", "?"), tuple(params))

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock first, so a claim's read and write are one
        # step for every process on the file.
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

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._conn.close()


class PostgresStore(IdempotencyStore):
    """Records in PostgreSQL, shared by every bridge behind an Alertmanager cluster.

    A claim is one transaction: insert if absent, else lock the row (``FOR UPDATE``) and
    decide, so two bridges receiving the same notification never both send it.
    """

    _lock_row = " FOR UPDATE"

    def __init__(self, dsn: str, *, connect_timeout: float = 5.0, max_size: int = 4) -> None:
        timeout = max(1, round(connect_timeout))
        # One plain connection first: a clear error (and no pool retrying in the background)
        # when the database is unreachable, and the table exists before the first webhook.
        try:
            with psycopg.connect(dsn, connect_timeout=timeout, autocommit=True) as conn:
                create_schema_once(conn)
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
            raise StoreError(f"cannot use the PostgreSQL store: {type(exc).__name__}") from None

    def _lock_schema(self, conn: Any) -> None:
        self._run(conn, "SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield conn
        except psycopg.Error as exc:  # the pool's own timeouts are psycopg errors too
            raise StoreError(f"PostgreSQL store: {type(exc).__name__}") from None

    def close(self) -> None:
        """Close the pool."""
        self._pool.close()
