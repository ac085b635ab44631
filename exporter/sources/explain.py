"""`boxoffice check`: find per-cycle queries that would read a large table sequentially.

Each statement a collection cycle runs is planned with EXPLAIN on the user's own database,
with sequential scans disabled: a Seq Scan that survives means no index can serve the
statement, and on a large table that is the cost that grows with every order. Each
finding names the index that fixes it. Nothing is executed, only planned.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg

from exporter.sources import streams as st
from exporter.sources.engine_series import ENGINE_METRICS
from exporter.sources.incremental import database_now
from exporter.sources.querypack import BoundQuery

# Default-pack statements that keep running in full each cycle, and the index each needs.
_PACK_INDEXES = {
    "boxoffice_last_paid_order_timestamp_seconds": st.PAID_SQL.index,
    "boxoffice_checkout_sessions_open": st.OPEN_SETTLING_SQL.index,
    "boxoffice_inventory_reserved_tickets": st.TIERS_SQL.index,
    "boxoffice_inventory_available_tickets": st.TIERS_SQL.index,
}
_FULL_AGGREGATE = (
    "aggregates every row each cycle; enable sources.postgres.incremental "
    "(it is on by default) so that only new rows are read"
)


@dataclass(frozen=True, kw_only=True)
class Statement:
    """One statement a cycle runs, with its parameters and the fix when it scans."""

    name: str
    sql: str
    params: dict[str, Any]
    fix: str


@dataclass(frozen=True, kw_only=True)
class SeqScan:
    """A statement that would read ``table`` (about ``rows`` rows) from end to end."""

    statement: str
    table: str
    rows: int
    fix: str


def cycle_statements(
    metrics: Sequence[BoundQuery],
    *,
    incremental: bool,
    now: Any,
    overlap: timedelta,
    interval: timedelta,
    track_for: timedelta,
) -> list[Statement]:
    """The statements one regular cycle runs on a database, with representative bounds."""
    engine = incremental and any(
        not m.overridden and m.spec.name in ENGINE_METRICS for m in metrics
    )
    out: list[Statement] = []
    if engine:
        params = st.Bounds(
            since=now - overlap - interval, settle=now - overlap, keep=now - track_for
        ).params()
        for query in (*st.AGGREGATES, st.PENDING_SETTLING_SQL, st.OPEN_SETTLING_SQL):
            out.append(Statement(name=query.name, sql=query.sql, params=params, fix=query.index))
        for query in (st.PENDING_RESOLVED_SQL, st.OPEN_RESOLVED_SQL):
            out.append(
                Statement(name=query.name, sql=query.sql, params={"ids": []}, fix="primary key")
            )
        tiers = st.TIERS_SQL
        out.append(Statement(name=tiers.name, sql=tiers.sql, params={}, fix=tiers.index))
    for metric in metrics:
        if metric.overridden or (engine and metric.spec.name in ENGINE_METRICS):
            continue
        fix = _PACK_INDEXES.get(metric.spec.name)
        if fix is None:
            fix = _FULL_AGGREGATE if metric.spec.name in ENGINE_METRICS else ""
        out.append(Statement(name=metric.spec.name, sql=metric.sql, params={}, fix=fix))
    return out


def find_seq_scans(
    conn: psycopg.Connection[Any], statements: Sequence[Statement], *, min_rows: int
) -> list[SeqScan]:
    """Plan each statement with sequential scans disabled; report those that still scan."""
    found: list[SeqScan] = []
    with conn.transaction():
        conn.execute("SET LOCAL enable_seqscan = off")
        for statement in statements:
            # Bound on the client: EXPLAIN takes no server-side parameters.
            with psycopg.ClientCursor(conn) as cur:
                cur.execute(b"EXPLAIN (FORMAT JSON) " + statement.sql.encode(), statement.params)
                row = cur.fetchone()
            assert row is not None
            plan = row[0][0]["Plan"]
            for table in sorted(set(_scanned_tables(plan))):
                rows = _estimated_rows(conn, table)
                if rows >= min_rows:
                    found.append(
                        SeqScan(statement=statement.name, table=table, rows=rows, fix=statement.fix)
                    )
    return found


def now_on(conn: psycopg.Connection[Any]) -> Any:
    """The database's current time, for representative bounds."""
    with conn.transaction():
        return database_now(conn)


def _scanned_tables(node: dict[str, Any]) -> Iterator[str]:
    if node.get("Node Type") == "Seq Scan":
        yield str(node["Relation Name"])
    for child in node.get("Plans", []):
        yield from _scanned_tables(child)


def _estimated_rows(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(
        "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = to_regclass(%s)", [table]
    ).fetchone()
    return int(row[0]) if row else 0
