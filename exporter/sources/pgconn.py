"""The PostgreSQL edge: pools, the reconciliation's own connection, the statement timeout.

Every session setting boxoffice relies on is made here, once: a collection and a
reconciliation read in a read-only REPEATABLE READ snapshot, and each transaction's
statements are bounded by a timeout set through :func:`set_statement_timeout`.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg import sql as pgsql
from psycopg_pool import ConnectionPool

from exporter.config import Database

log = logging.getLogger(__name__)


def make_pool(db: Database) -> ConnectionPool:
    """A bounded pool of read-only connections that never blocks the caller at start."""

    def configure(conn: psycopg.Connection[Any]) -> None:
        # Every collection is one snapshot: all metrics of a database agree with each other.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True

    pool = ConnectionPool(
        db.dsn,
        min_size=0,
        max_size=db.pool_max_size,
        kwargs={
            "connect_timeout": max(1, round(db.connect_timeout)),
            "application_name": "boxoffice",
            # Prepared statements break PgBouncer in transaction mode; queries are few anyway.
            "prepare_threshold": None,
        },
        configure=configure,
        check=ConnectionPool.check_connection,
        # Give up on a failed connection at once; the next cycle asks again, so a database
        # that comes back is used within one interval instead of after a long backoff.
        reconnect_timeout=0,
        open=False,
        name=f"boxoffice-{db.name}",
        # One background worker (psycopg_pool's default is 3): it opens and checks the
        # cycle's one connection; with 50 databases the default's threads were 150.
        num_workers=1,
    )
    pool.open(wait=False)
    return pool


def reconciliation_connection(db: Database) -> psycopg.Connection[Any]:
    """A connection of its own for a reconciliation, configured like the pool's."""
    conn = psycopg.connect(
        db.dsn,
        connect_timeout=max(1, round(db.connect_timeout)),
        application_name="boxoffice-reconcile",
        prepare_threshold=None,
    )
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    return conn


def set_statement_timeout(conn: psycopg.Connection[Any], seconds: float) -> None:
    """Bound every later statement of the current transaction (``SET LOCAL``, at least 1 ms)."""
    conn.execute(
        "SELECT set_config('statement_timeout', %s, true)", [f"{max(1, round(seconds * 1000))}"]
    )


def skip_jit(conn: psycopg.Connection[Any]) -> None:
    """Plan the current transaction's statements without JIT compilation (``SET LOCAL``).

    For statements that are only planned and described, never run: a query over millions
    of rows passes ``jit_above_cost``, and a server-side cursor's plan (never parallel) can
    pass the inlining and optimisation costs too, so PostgreSQL spent up to a quarter of a
    second per query compiling code that a ``LIMIT 0`` never runs (docs/benchmarks.md,
    restarts). A server without the setting (before PostgreSQL 11) is left alone.
    """
    conn.execute(
        "SELECT set_config('jit', 'off', true) WHERE current_setting('jit', true) IS NOT NULL"
    )


def import_snapshot(conn: psycopg.Connection[Any], snapshot_id: str) -> str | None:
    """Read this cycle in a reconciliation's snapshot; None (and a fresh one) if it is gone.

    Must be the transaction's first statement: the reconciliation compares this cycle's
    totals with a full recomputation in the same snapshot.
    """
    try:
        conn.execute(pgsql.SQL("SET TRANSACTION SNAPSHOT {}").format(pgsql.Literal(snapshot_id)))
    except (psycopg.OperationalError, psycopg.InterfaceError):
        raise
    except psycopg.Error as exc:
        # The reconciliation gave up and closed its transaction: collect as usual.
        log.info("reconciliation snapshot not available: %s", first_line(exc))
        conn.rollback()
        return None
    return snapshot_id


def type_name(conn: psycopg.Connection[Any], oid: int) -> str:
    """The name of a column's type, as :func:`~exporter.sources.samples.check_columns` wants."""
    info = conn.adapters.types.get(oid)
    return info.name if info is not None else f"oid {oid}"


def first_line(exc: BaseException) -> str:
    """The first line of an error: psycopg's details may quote user data."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
