"""The PostgreSQL source: runs the query pack in read-only transactions on named databases."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from prometheus_client.core import Metric
from psycopg import errors as pgerrors
from psycopg import sql as pgsql
from psycopg_pool import ConnectionPool, PoolTimeout

from exporter.config import BoundMetric, Database
from exporter.sources.base import Collection, Failure
from exporter.sources.explain import SeqScan, cycle_statements, find_seq_scans, now_on
from exporter.sources.guard import CardinalityGuard
from exporter.sources.incremental import ENGINE_METRICS, EngineSettings, IncrementalEngine
from exporter.sources.querypack import MetricSpec
from exporter.sources.reconcile import Reconciler
from exporter.sources.samples import (
    ColumnMismatchError,
    Sample,
    check_columns,
    to_family,
    to_samples,
)

log = logging.getLogger(__name__)

Columns = list[tuple[str, str]]
EngineSeries = tuple[list[tuple[MetricSpec, list[Sample]]], list[Metric]]


@dataclass(frozen=True)
class QueryProblem:
    """A metric whose SQL does not fit its database (found before serving)."""

    metric: BoundMetric
    reason: str


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
    )
    pool.open(wait=False)
    return pool


class PostgresSource:
    """Collects the catalog metrics from one or more PostgreSQL databases."""

    name = "postgres"

    def __init__(
        self,
        *,
        databases: Mapping[str, Database],
        metrics: Sequence[BoundMetric],
        interval: float,
        timeout: float,
        guard: CardinalityGuard,
        incremental: IncrementalOptions | None = None,
        pool_factory: Callable[[Database], ConnectionPool] = make_pool,
    ) -> None:
        self.interval = interval
        self.timeout = timeout
        self._guard = guard
        self._databases = databases
        self._by_database: dict[str, list[BoundMetric]] = {}
        for metric in metrics:
            self._by_database.setdefault(metric.database, []).append(metric)
        self._pools = {name: pool_factory(databases[name]) for name in self._by_database}
        self._all_metrics = {name: list(bound) for name, bound in self._by_database.items()}
        # Metrics with the default SQL are computed incrementally; the rest run their SQL.
        self._engines: dict[str, IncrementalEngine] = {}
        self._reconcilers: dict[str, Reconciler] = {}
        self._by_engine: dict[str, list[BoundMetric]] = {}
        if incremental is not None:
            for name, bound in self._by_database.items():
                owned = [m for m in bound if not m.overridden and m.spec.name in ENGINE_METRICS]
                if not owned:
                    continue
                self._by_engine[name] = owned
                self._by_database[name] = [m for m in bound if m not in owned]
                engine = IncrementalEngine(
                    [m.spec for m in owned],
                    EngineSettings(
                        overlap=timedelta(seconds=incremental.overlap),
                        track_for=timedelta(seconds=incremental.track_for),
                        timeout=timeout,
                        full_timeout=incremental.full_timeout,
                    ),
                )
                self._engines[name] = engine
                self._reconcilers[name] = Reconciler(
                    engine,
                    functools.partial(_reconciliation_connection, databases[name]),
                    database=name,
                    interval=incremental.reconcile_interval,
                    wait=2 * interval + timeout,
                    timeout=incremental.full_timeout,
                )

    @property
    def engines(self) -> Mapping[str, IncrementalEngine]:
        """The incremental engine of each database that has one."""
        return self._engines

    @property
    def reconcilers(self) -> Mapping[str, Reconciler]:
        """The reconciliation of each incremental engine."""
        return self._reconcilers

    def collect(self) -> Collection:
        """Run every metric's query; a database that fails costs only its own metrics."""
        families: list[Metric] = []
        failures: list[Failure] = []
        dropped: dict[str, int] = {}
        for name, metrics in self._by_database.items():
            query_failures: list[tuple[BoundMetric, Failure]] = []
            engine_out: list[EngineSeries] = []
            try:
                results = self._run(name, [(m, m.sql) for m in metrics], query_failures, engine_out)
            except _DatabaseUnavailableError as exc:
                failures.append(Failure("connection", f"database {name!r}: {exc}"))
                continue
            failures += [failure for _metric, failure in query_failures]
            if name in self._reconcilers and engine_out:
                self._reconcilers[name].start()
            for series, extra in engine_out:
                for spec, samples in series:
                    kept, folded = self._guard.apply(spec.name, samples, spec.fold)
                    if folded:
                        dropped[spec.name] = folded
                    families.append(to_family(spec, kept))
                families += extra
            for metric, (columns, rows) in results.items():
                try:
                    samples = to_samples(metric.spec, columns, rows)
                except ColumnMismatchError as exc:
                    failures.append(Failure("columns", f"{metric.spec.name}: {exc}"))
                    continue
                kept, folded = self._guard.apply(metric.spec.name, samples, metric.spec.fold)
                if folded:
                    dropped[metric.spec.name] = folded
                families.append(to_family(metric.spec, kept))
        return Collection(tuple(families), tuple(failures), dropped)

    def check_queries(self) -> tuple[list[QueryProblem], list[str]]:
        """Describe every query without running it: problems found, and databases not reached."""
        problems: list[QueryProblem] = []
        unreachable: list[str] = []
        for name, metrics in self._all_metrics.items():
            failures: list[tuple[BoundMetric, Failure]] = []
            # The newline keeps a trailing `-- comment` in user SQL from eating the parenthesis.
            probes = [(m, f"SELECT * FROM ({m.sql}\n) AS boxoffice_probe LIMIT 0") for m in metrics]
            try:
                results = self._run(name, probes, failures)
            except _DatabaseUnavailableError:
                unreachable.append(name)
                continue
            problems += [QueryProblem(metric, failure.cause) for metric, failure in failures]
            for metric, (columns, _rows) in results.items():
                problem = check_columns(metric.spec, columns)
                if problem:
                    problems.append(QueryProblem(metric, problem))
        return problems, unreachable

    def find_seq_scans(self, min_rows: int) -> tuple[dict[str, list[SeqScan]], list[str]]:
        """Plan every per-cycle statement: sequential scans found, and databases not reached."""
        found: dict[str, list[SeqScan]] = {}
        unreachable: list[str] = []
        for name, metrics in self._all_metrics.items():
            engine = self._engines.get(name)
            try:
                with self._pools[name].connection(
                    timeout=self._databases[name].connect_timeout
                ) as conn:
                    statements = cycle_statements(
                        metrics,
                        incremental=engine is not None,
                        now=now_on(conn),
                        overlap=engine.settings.overlap if engine else timedelta(0),
                        interval=timedelta(seconds=self.interval),
                        track_for=engine.settings.track_for if engine else timedelta(0),
                    )
                    found[name] = find_seq_scans(conn, statements, min_rows=min_rows)
            except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError):
                unreachable.append(name)
        return found, unreachable

    def close(self) -> None:
        """Stop reconciling and close every pool."""
        for reconciler in self._reconcilers.values():
            reconciler.stop()
        for pool in self._pools.values():
            pool.close()

    def _run(
        self,
        database: str,
        queries: Sequence[tuple[BoundMetric, str]],
        failures: list[tuple[BoundMetric, Failure]],
        engine_out: list[EngineSeries] | None = None,
    ) -> dict[BoundMetric, tuple[Columns, list[tuple[Any, ...]]]]:
        """Run queries in one read-only snapshot; per-query errors go to ``failures``.

        With ``engine_out``, the database's incremental engine runs in the same snapshot
        (after the queries) and appends its families there.
        """
        pool = self._pools[database]
        engine = self._engines.get(database) if engine_out is not None else None
        results: dict[BoundMetric, tuple[Columns, list[tuple[Any, ...]]]] = {}
        try:
            with pool.connection(timeout=self._databases[database].connect_timeout) as conn:
                imported = engine.snapshot_to_import() if engine is not None else None
                if imported is not None:
                    imported = _import_snapshot(conn, imported)
                timeout_ms = max(1, round(self.timeout * 1000))
                conn.execute("SELECT set_config('statement_timeout', %s, true)", [f"{timeout_ms}"])
                for metric, sql in queries:
                    try:
                        # A savepoint per query: one broken metric does not abort the others.
                        with conn.transaction(), conn.cursor() as cur:
                            cur.execute(sql.encode())
                            columns = [
                                (d.name, _type_name(conn, d.type_code))
                                for d in cur.description or []
                            ]
                            results[metric] = (columns, cur.fetchall())
                    except pgerrors.QueryCanceled as exc:
                        failures.append((metric, _failure("timeout", metric, exc)))
                    except (psycopg.OperationalError, psycopg.InterfaceError):
                        raise
                    except psycopg.Error as exc:
                        failures.append((metric, _failure("query", metric, exc)))
                if engine is not None and engine_out is not None:
                    self._run_engine(conn, database, engine, engine_out, imported, failures)
        except PoolTimeout as exc:
            raise _DatabaseUnavailableError(_first_line(exc)) from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise _DatabaseUnavailableError(_first_line(exc)) from None
        return results

    def _run_engine(
        self,
        conn: psycopg.Connection[Any],
        database: str,
        engine: IncrementalEngine,
        out: list[EngineSeries],
        imported: str | None,
        failures: list[tuple[BoundMetric, Failure]],
    ) -> None:
        first = self._by_engine[database][0]
        label = f"incremental totals ({len(engine.specs)} metrics)"
        try:
            with conn.transaction():
                out.append(engine.collect(conn, imported=imported))
        except pgerrors.QueryCanceled as exc:
            failures.append((first, Failure("timeout", f"{label}: {_first_line(exc)}")))
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise
        except psycopg.Error as exc:
            failures.append((first, Failure("query", f"{label}: {_first_line(exc)}")))


@dataclass(frozen=True)
class IncrementalOptions:
    """The incremental settings PostgresSource needs, in seconds."""

    overlap: float
    track_for: float
    reconcile_interval: float
    full_timeout: float


def _import_snapshot(conn: psycopg.Connection[Any], snapshot_id: str) -> str | None:
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
        log.info("reconciliation snapshot not available: %s", _first_line(exc))
        conn.rollback()
        return None
    return snapshot_id


def _reconciliation_connection(db: Database) -> psycopg.Connection[Any]:
    conn = psycopg.connect(
        db.dsn,
        connect_timeout=max(1, round(db.connect_timeout)),
        application_name="boxoffice-reconcile",
        prepare_threshold=None,
    )
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    return conn


class _DatabaseUnavailableError(Exception):
    """The database could not be reached or the connection broke."""


def _failure(reason: str, metric: BoundMetric, exc: BaseException) -> Failure:
    cause = _first_line(exc)
    return Failure(reason, f"{metric.spec.name}: {cause}", cause)


def _type_name(conn: psycopg.Connection[Any], oid: int) -> str:
    info = conn.adapters.types.get(oid)
    return info.name if info is not None else f"oid {oid}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
