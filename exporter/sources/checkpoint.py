"""The incremental engine's checkpoint: a restart resumes instead of the full computation.

After successful cycles the engine's state (boundary, settled totals, watched rows) and
what it has published (reconciliation offsets, the counters' high-water marks) are written
to a local file, atomically (temporary file, fsync, rename). At start the file is used
only when it is this version's, for the same database (system identifier, timeline,
database name), for the same stream SQL, and its boundary is recent enough; otherwise the
engine runs the full computation and the log says why. Reconciliation stays the safety net.

docs/incremental.md explains why resuming from any consistent state is exact.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from exporter.sources import streams as st
from exporter.sources.incremental import EngineState, IncrementalEngine, Published

log = logging.getLogger(__name__)

VERSION = 1
# A cycle's state is written at most this often (and when the source closes).
SAVE_EVERY = 30.0

IDENTITY_SQL = """
SELECT (SELECT system_identifier::text FROM pg_control_system()),
       (SELECT timeline_id FROM pg_control_checkpoint()),
       current_database()"""


@dataclass(frozen=True)
class Identity:
    """Which data a state counts: a restored backup or a failover starts a new timeline."""

    system: str
    timeline: int
    database: str
    fingerprint: str  # of the stream SQL and the quantities it feeds


def fingerprint(queries: Iterable[st.Query], metrics: Iterable[str]) -> str:
    """What a state depends on besides the data: the statements and the metrics computed."""
    digest = hashlib.sha256(str(VERSION).encode())
    for text in [q.sql for q in queries] + sorted(metrics):
        digest.update(b"\0" + text.encode())
    return digest.hexdigest()[:16]


def read_identity(conn: psycopg.Connection[Any], metrics: Iterable[str]) -> Identity:
    """The database's identity, in the current transaction."""
    row = conn.execute(IDENTITY_SQL.encode()).fetchone()
    assert row is not None
    queries = (*st.AGGREGATES, st.PENDING_SETTLING_SQL, st.PENDING_RESOLVED_SQL)
    queries += (st.OPEN_SETTLING_SQL, st.OPEN_RESOLVED_SQL)
    return Identity(str(row[0]), int(row[1]), str(row[2]), fingerprint(queries, metrics))


def encode(identity: Identity, published: Published) -> str:
    """The checkpoint's text (JSON; integers stay exact)."""
    state = published.state
    assert state.boundary is not None
    return json.dumps(
        {
            "version": VERSION,
            "identity": {
                "system": identity.system,
                "timeline": identity.timeline,
                "database": identity.database,
                "fingerprint": identity.fingerprint,
            },
            "boundary": state.boundary.isoformat(),
            "settled": _totals(state.settled),
            "pending_orders": {str(k): at.isoformat() for k, at in state.pending_orders.items()},
            "open_sessions": {k: at.isoformat() for k, at in state.open_sessions.items()},
            "refund_memos": {
                str(k): [m.refunded_at.isoformat(), m.tickets, m.amount]
                for k, m in state.refund_memos.items()
            },
            "offsets": _totals(published.offsets),
            "exposed": [[name, list(labels), value] for (name, labels), value in published.exposed],
        },
        separators=(",", ":"),
    )


class CheckpointError(ValueError):
    """Why a checkpoint is not used (its text, never the data)."""


def decode(text: str, identity: Identity, now: datetime, max_age: timedelta) -> Published:
    """The published state a checkpoint holds, if it may be resumed from here and now."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise CheckpointError(f"corrupt: not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        version = doc.get("version") if isinstance(doc, dict) else None
        raise CheckpointError(f"written by another version ({version!r}, this is {VERSION})")
    try:
        saved = Identity(**doc["identity"])
        boundary = datetime.fromisoformat(doc["boundary"])
        state = EngineState(
            boundary=boundary,
            settled=_untotals(doc["settled"]),
            pending_orders={
                int(k): datetime.fromisoformat(v) for k, v in doc["pending_orders"].items()
            },
            open_sessions={
                str(k): datetime.fromisoformat(v) for k, v in doc["open_sessions"].items()
            },
            refund_memos={
                int(k): st.RefundMemo(datetime.fromisoformat(at), int(tickets), int(amount))
                for k, (at, tickets, amount) in doc["refund_memos"].items()
            },
        )
        offsets = _untotals(doc["offsets"])
        exposed = tuple(
            ((str(name), tuple(str(v) for v in labels)), float(value))
            for name, labels, value in doc["exposed"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"corrupt: {type(exc).__name__} {exc}") from None
    if saved != identity:
        fields = ("system", "timeline", "database", "fingerprint")
        differs = [f for f in fields if getattr(saved, f) != getattr(identity, f)]
        raise CheckpointError(f"foreign: its {', '.join(differs)} differ from this database's")
    if boundary.tzinfo is None or boundary > now:
        raise CheckpointError(f"corrupt: its boundary {boundary.isoformat()} is in the future")
    if now - boundary > max_age:
        raise CheckpointError(f"stale: its boundary is {now - boundary} old (limit {max_age})")
    return Published(state=state, offsets=offsets, exposed=exposed)


def _totals(totals: st.Totals) -> list[list[Any]]:
    return [[list(key), value] for key, value in sorted(totals.items())]


def _untotals(rows: list[list[Any]]) -> st.Totals:
    return {tuple(str(k) for k in key): int(value) for key, value in rows}


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: a crash leaves the old file or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class Checkpoints:
    """Resumes one database's engine from its file, and writes the file after cycles."""

    def __init__(
        self, path: Path, *, database: str, max_age: timedelta, every: float = SAVE_EVERY
    ) -> None:
        self.path = path
        self._database = database
        self._max_age = max_age
        self._every = every
        self._identity: Identity | None = None
        self._tried = False
        self._saved_at = float("-inf")

    def resume(
        self, engine: IncrementalEngine, conn: psycopg.Connection[Any], now: datetime | None
    ) -> bool:
        """Before the engine's first cycle: restore its state if the checkpoint is valid."""
        if self._tried or not engine.full:
            return False
        self._tried = True
        try:
            with conn.transaction():
                self._identity = read_identity(conn, (spec.name for spec in engine.specs))
        except (psycopg.OperationalError, psycopg.InterfaceError):
            self._tried = False  # the connection broke: try again next cycle
            raise
        except psycopg.Error as exc:
            log.warning(
                "incremental totals of database %r: no checkpoints, the database's identity "
                "cannot be read: %s",
                self._database,
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
            )
            return False
        why = self._load(engine, now)
        if why is None:
            return True
        log.info("incremental totals of database %r: full computation, %s", self._database, why)
        return False

    def _load(self, engine: IncrementalEngine, now: datetime | None) -> str | None:
        assert self._identity is not None
        if now is None:
            return "the database's position is unknown"
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return f"no checkpoint at {self.path}"
        except (OSError, UnicodeDecodeError) as exc:
            return f"checkpoint {self.path} unreadable: {exc}"
        try:
            published = decode(text, self._identity, now, self._max_age)
        except CheckpointError as exc:
            return f"checkpoint {self.path} {exc}"
        engine.restore(published)
        # The file holds this state already: the first write waits SAVE_EVERY, which keeps
        # encoding and fsync off the first cycle a restart serves.
        self._saved_at = time.monotonic()
        log.info(
            "incremental totals of database %r resumed from checkpoint %s (boundary %s)",
            self._database,
            self.path,
            published.state.boundary.isoformat() if published.state.boundary else "",
        )
        return None

    def save(self, engine: IncrementalEngine, *, force: bool = False) -> None:
        """Write the engine's state if it has one and the last write is old enough."""
        if self._identity is None or engine.full:
            return
        if not force and time.monotonic() - self._saved_at < self._every:
            return
        try:
            write_atomically(self.path, encode(self._identity, engine.published()))
        except OSError as exc:
            log.warning("checkpoint %s not written: %s", self.path, exc)
            return
        self._saved_at = time.monotonic()
