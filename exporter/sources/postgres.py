"""The PostgreSQL source: runs the query pack in read-only transactions on named databases.

A thin adapter (STYLE.md 1 and 5): :meth:`PostgresSource.collect` reads each database in
one snapshot into a typed :class:`DatabaseRead`, interpreting nothing, and the pure
:func:`collection_of` turns the reads into families, failures and folded-series counts.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from prometheus_client.core import Metric
from psycopg import errors as pgerrors
from psycopg import sql as pgsql
from psycopg_pool import ConnectionPool, PoolTimeout

from exporter.catalog import DATABASE_DURATION, DATABASE_UP, REPLICATION_LAG_METRIC
from exporter.config import BoundMetric, Database
from exporter.sources.base import LABELS_TRUNCATED, ROWS_TRUNCATED, Collection, Failure
from exporter.sources.checkpoint import Checkpoints
from exporter.sources.engine_series import ENGINE_METRICS
from exporter.sources.explain import SeqScan, cycle_statements, find_seq_scans, now_on
from exporter.sources.families import SharedLabels, family, labelled, merged
from exporter.sources.guard import CardinalityGuard
from exporter.sources.incremental import EngineSettings, IncrementalEngine
from exporter.sources.pgconn import (
    first_line,
    import_snapshot,
    make_pool,
    reconciliation_connection,
    set_statement_timeout,
    skip_jit,
    type_name,
)
from exporter.sources.querypack import BoundQuery, MetricSpec, bind
from exporter.sources.reconcile import Reconciler
from exporter.sources.replay import Position, read_position
from exporter.sources.reuse import FamilyCache, guarded_family
from exporter.sources.samples import (
    ColumnMismatchError,
    Sample,
    check_columns,
    clip_label,
    to_samples,
)


@dataclass(frozen=True, kw_only=True)
class IncrementalOptions:
    """The incremental settings PostgresSource needs, in seconds."""

    overlap: float
    track_for: float
    reconcile_interval: float
    full_timeout: float
    state_dir: str | None = None  # checkpoints off when None
    state_max_age: float = 86400.0


@dataclass(frozen=True, kw_only=True)
class QueryBounds:
    """What one configured query may cost: rows fetched, characters per label value."""

    max_rows: int = 10000
    max_label_length: int = 256


# Rows fetched per round trip: peak memory is about this many rows before labels are cut.
_BATCH = 200


@dataclass(frozen=True)
class QueryProblem:
    """A metric whose SQL does not fit its database (found before serving)."""

    metric: BoundQuery
    reason: str


@dataclass(frozen=True, kw_only=True)
class QueryResult:
    """What one query gave: its columns as (name, type name) and its rows, or its failure."""

    query: BoundQuery
    columns: tuple[tuple[str, str], ...] = ()
    rows: tuple[tuple[Any, ...], ...] = ()
    failure: Failure | None = None
    rows_cut: int = 0  # rows past the bound, neither fetched nor published
    labels_cut: int = 0  # label values shortened to the bound


@dataclass(frozen=True, kw_only=True)
class DatabaseRead:
    """Everything one collection read from one database, in one snapshot."""

    database: str
    unavailable: str | None = None  # why the database could not be read at all
    queries: tuple[QueryResult, ...] = ()
    # The incremental engine's series (before the cardinality guard) and its own families.
    engine_series: tuple[tuple[MetricSpec, list[Sample]], ...] = ()
    engine_families: tuple[Metric, ...] = ()
    engine_failure: Failure | None = None
    # Seconds the database is behind its primary (0 on a primary; None: cannot tell).
    lag: float | None = None
    # The database's constant labels, added to every series read from it.
    labels: tuple[tuple[str, str], ...] = ()
    duration: float | None = None  # seconds the read took, connection wait included

    @property
    def ok(self) -> bool:
        """True when the database was reached and every query on it succeeded."""
        return (
            self.unavailable is None
            and self.engine_failure is None
            and all(result.failure is None for result in self.queries)
        )


def collection_of(
    reads: Sequence[DatabaseRead], guard: CardinalityGuard, cache: FamilyCache | None = None
) -> Collection:
    """The families, failures and folded series of one cycle's reads.

    Pure apart from ``guard``, whose only state is which series it kept last time, and
    ``cache``, last cycle's families (a family whose samples did not change is published
    again as the same object). Each database's series carry its constant labels; a metric
    several databases feed is one family, and the guard caps the series of each metric per
    database.
    """
    families: list[tuple[Metric, Mapping[str, str]]] = []
    failures: list[Failure] = []
    dropped: dict[str, int] = {}
    cut: dict[tuple[str, str], int] = {}
    up = family(DATABASE_UP)
    took = family(DATABASE_DURATION)
    several = len({read.database for read in reads}) > 1

    def publish(
        spec: MetricSpec, samples: list[Sample], read: DatabaseRead, shared: SharedLabels
    ) -> Metric:
        key = f"{spec.name}@{read.database}" if several else spec.name
        built, folded = guarded_family(
            spec,
            samples,
            read.database,
            read.labels,
            guard=guard,
            key=key,
            cache=cache,
            shared=shared,
        )
        if folded:
            dropped[spec.name] = dropped.get(spec.name, 0) + folded
        return built

    for read in reads:
        labels = dict(read.labels)
        shared: SharedLabels = {}
        own: list[Metric] = []

        health = family(DATABASE_UP)
        health.add_metric([read.database], 1.0 if read.ok else 0.0)
        own.append(health)
        if read.duration is not None:
            duration = family(DATABASE_DURATION)
            duration.add_metric([read.database], read.duration)
            own.append(duration)
        if read.unavailable is not None:
            failures.append(
                Failure("connection", f"database {read.database!r}: {read.unavailable}")
            )
            families += [(labelled(metric, labels), labels) for metric in own]
            continue
        if read.lag is not None:
            lag = family(REPLICATION_LAG_METRIC)
            lag.add_metric([read.database], read.lag)
            own.append(lag)
        failures += [result.failure for result in read.queries if result.failure is not None]
        if read.engine_failure is not None:
            failures.append(read.engine_failure)
        own = [labelled(metric, labels) for metric in own]
        own += [publish(spec, samples, read, shared) for spec, samples in read.engine_series]
        own += [labelled(metric, labels) for metric in read.engine_families]
        for result in read.queries:
            if result.failure is not None:
                continue
            spec = result.query.spec
            for name, count in (
                (ROWS_TRUNCATED, result.rows_cut),
                (LABELS_TRUNCATED, result.labels_cut),
            ):
                if count:
                    cut[(name, spec.name)] = cut.get((name, spec.name), 0) + count
            try:
                samples = to_samples(spec, result.columns, result.rows)
            except ColumnMismatchError as exc:
                failures.append(Failure("columns", f"{spec.name}: {exc}"))
                continue
            own.append(publish(spec, samples, read, shared))
        families += [(metric, labels) for metric in own]
    # Always present, even before the first database answers (the catalog's families).
    every = [(up, {}), (took, {}), *families]
    return Collection(tuple(merged(every)), tuple(failures), dropped, cut)


class PostgresSource:
    """Collects the catalog metrics from one or more PostgreSQL databases.

    Creating it opens no connection; :meth:`start` starts the background reconciliations
    of the incremental totals, and :meth:`close` stops them and closes the pools.
    """

    name = "postgres"

    def __init__(
        self,
        *,
        databases: Mapping[str, Database],
        metrics: Sequence[BoundMetric],
        interval: float,
        timeout: float,
        guard: CardinalityGuard,
        bounds: QueryBounds | None = None,
        incremental: IncrementalOptions | None = None,
        parallelism: int = 4,
        pool_factory: Callable[[Database], ConnectionPool] = make_pool,
    ) -> None:
        self.interval = interval
        self._parallelism = max(1, parallelism)
        self._workers: ThreadPoolExecutor | None = None
        self.timeout = timeout
        self._guard = guard
        self._reuse = FamilyCache()
        self._bounds = bounds or QueryBounds()
        self._databases = databases
        self._all: dict[str, list[BoundQuery]] = {}
        for metric in metrics:
            query = bind(metric.spec.name, database=metric.database, sql=metric.sql)
            self._all.setdefault(metric.database, []).append(query)
        self._pools = {name: pool_factory(databases[name]) for name in self._all}
        # Metrics with the default SQL are computed incrementally; the rest run their SQL.
        self._by_sql = {name: list(queries) for name, queries in self._all.items()}
        self._engines: dict[str, IncrementalEngine] = {}
        self._reconcilers: dict[str, Reconciler] = {}
        self._checkpoints: dict[str, Checkpoints] = {}
        if incremental is not None:
            for name, queries in self._all.items():
                owned = [q for q in queries if not q.overridden and q.spec.name in ENGINE_METRICS]
                if owned:
                    self._by_sql[name] = [q for q in queries if q not in owned]
                    self._add_engine(name, [q.spec for q in owned], incremental)

    def _add_engine(
        self, name: str, specs: list[MetricSpec], incremental: IncrementalOptions
    ) -> None:
        engine = IncrementalEngine(
            specs,
            EngineSettings(
                overlap=timedelta(seconds=incremental.overlap),
                track_for=timedelta(seconds=incremental.track_for),
                timeout=self.timeout,
                full_timeout=incremental.full_timeout,
            ),
        )
        self._engines[name] = engine
        self._reconcilers[name] = Reconciler(
            engine,
            functools.partial(reconciliation_connection, self._databases[name]),
            database=name,
            interval=incremental.reconcile_interval,
            wait=2 * self.interval + self.timeout,
            timeout=incremental.full_timeout,
        )
        if incremental.state_dir is not None:
            self._checkpoints[name] = Checkpoints(
                Path(incremental.state_dir) / f"incremental-{name}.json",
                database=name,
                max_age=timedelta(seconds=incremental.state_max_age),
            )

    def start(self) -> None:
        """Reconcile the incremental totals in the background from now on."""
        for reconciler in self._reconcilers.values():
            reconciler.start()

    def collect(self) -> Collection:
        """Read every database, a bounded number at a time, each on one connection.

        One that fails costs only its own metrics: the others' series and their
        ``boxoffice_database_up`` are published as usual.
        """

        def read(name: str) -> DatabaseRead:
            started = time.monotonic()
            queries = [(q, q.sql) for q in self._by_sql[name]]
            result = self._read(name, queries, engine=self._engines.get(name))
            return replace(
                result,
                labels=tuple(sorted(self._databases[name].labels.items())),
                duration=time.monotonic() - started,
            )

        names = list(self._by_sql)
        if len(names) <= 1 or self._parallelism == 1:
            reads = [read(name) for name in names]
        else:
            if self._workers is None:
                self._workers = ThreadPoolExecutor(
                    max_workers=min(self._parallelism, len(names)),
                    thread_name_prefix="postgres-read",
                )
            reads = list(self._workers.map(read, names))
        return collection_of(reads, self._guard, self._reuse)

    def check_queries(self) -> tuple[list[QueryProblem], list[str]]:
        """Describe every query without running it: problems found, and databases not reached."""
        problems: list[QueryProblem] = []
        unreachable: list[str] = []
        for name, queries in self._all.items():
            # The newline keeps a trailing `-- comment` in user SQL from eating the parenthesis.
            probes = [(q, f"SELECT * FROM ({q.sql}\n) AS boxoffice_probe LIMIT 0") for q in queries]
            read = self._read(name, probes, engine=None, planned_only=True)
            if read.unavailable is not None:
                unreachable.append(name)
                continue
            ran = [r for r in read.queries if r.failure is None]
            problems += [
                QueryProblem(r.query, r.failure.cause)
                for r in read.queries
                if r.failure is not None
            ]
            for result in ran:
                problem = check_columns(result.query.spec, result.columns)
                if problem:
                    problems.append(QueryProblem(result.query, problem))
        return problems, unreachable

    def find_seq_scans(self, min_rows: int) -> tuple[dict[str, list[SeqScan]], list[str]]:
        """Plan every per-cycle statement: sequential scans found, and databases not reached."""
        found: dict[str, list[SeqScan]] = {}
        unreachable: list[str] = []
        for name, queries in self._all.items():
            engine = self._engines.get(name)
            try:
                with self._pools[name].connection(
                    timeout=self._databases[name].connect_timeout
                ) as conn:
                    statements = cycle_statements(
                        queries,
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
        """Stop reconciling, checkpoint the totals and close every pool."""
        for reconciler in self._reconcilers.values():
            reconciler.stop()
        for name, checkpoints in self._checkpoints.items():
            checkpoints.save(self._engines[name], force=True)
        if self._workers is not None:
            self._workers.shutdown(wait=True, cancel_futures=True)
        for pool in self._pools.values():
            pool.close()

    def _read(
        self,
        database: str,
        queries: Sequence[tuple[BoundQuery, str]],
        *,
        engine: IncrementalEngine | None,
        planned_only: bool = False,
    ) -> DatabaseRead:
        """Run ``queries`` (then the engine's cycle) in one read-only snapshot.

        ``planned_only``: the queries return no rows (the start-up check's ``LIMIT 0``
        probes), so nothing is JIT-compiled for them.
        """
        try:
            with self._pools[database].connection(
                timeout=self._databases[database].connect_timeout
            ) as conn:
                # In a transaction of its own, before the snapshot the cycle reads in.
                position = read_position(conn)
                imported = engine.snapshot_to_import() if engine is not None else None
                if imported is not None:
                    imported = import_snapshot(conn, imported)
                set_statement_timeout(conn, self.timeout)
                if planned_only:
                    skip_jit(conn)
                results = tuple(
                    _run_query(conn, query, sql, self._bounds) for query, sql in queries
                )
                if engine is None:
                    return DatabaseRead(database=database, queries=results, lag=position.lag)
                set_statement_timeout(conn, engine.statement_timeout)
                checkpoints = self._checkpoints.get(database)
                read = _read_engine(
                    conn, database, engine, imported, results, position, checkpoints
                )
                if checkpoints is not None and read.engine_failure is None:
                    checkpoints.save(engine)
                return replace(read, lag=position.lag)
        except (PoolTimeout, psycopg.OperationalError, psycopg.InterfaceError) as exc:
            return DatabaseRead(database=database, unavailable=first_line(exc))


_CURSOR = "boxoffice_query"


def _run_query(
    conn: psycopg.Connection[Any], query: BoundQuery, sql: str, bounds: QueryBounds
) -> QueryResult:
    try:
        # A savepoint per query: one broken metric does not abort the others.
        # A server-side cursor: DECLARE goes by the extended protocol, which refuses a
        # second statement, and DECLARE itself takes only SELECT or VALUES without
        # data-modifying WITH clauses (the simple protocol would run all of `…; INSERT …`).
        with conn.transaction(), conn.cursor(name=_CURSOR) as cur:
            cur.execute(sql.encode())
            columns = tuple((d.name, type_name(conn, d.type_code)) for d in cur.description or [])
            if check_columns(query.spec, columns) is not None:
                return QueryResult(query=query, columns=columns)  # reported when converted
            return _fetch_bounded(conn, cur, query, columns, bounds)
    except pgerrors.QueryCanceled as exc:
        return QueryResult(query=query, failure=_failure("timeout", query.spec.name, exc))
    except (psycopg.OperationalError, psycopg.InterfaceError):
        raise
    except psycopg.Error as exc:
        return QueryResult(query=query, failure=_failure("query", query.spec.name, exc))


def _fetch_bounded(
    conn: psycopg.Connection[Any],
    cur: psycopg.ServerCursor[Any],
    query: BoundQuery,
    columns: tuple[tuple[str, str], ...],
    bounds: QueryBounds,
) -> QueryResult:
    """At most ``bounds.max_rows`` rows, label values cut as they arrive; the rest counted."""
    names = [name for name, _type in columns]
    label_at = [names.index(label) for label in query.spec.labels]
    rows: list[tuple[Any, ...]] = []
    labels_cut = 0
    while len(rows) < bounds.max_rows:
        size = min(_BATCH, bounds.max_rows - len(rows))
        batch = cur.fetchmany(size)
        for raw in batch:
            row = list(raw)
            for i in label_at:
                if row[i] is not None:
                    row[i], clipped = clip_label(str(row[i]), bounds.max_label_length)
                    labels_cut += clipped
            rows.append(tuple(row))
        if len(batch) < size:
            break  # the cursor is exhausted: no round trip for an empty batch
    rows_cut = 0
    if len(rows) == bounds.max_rows:
        # The server counts the rest without sending it (MOVE's command tag carries the count).
        moved = conn.execute(
            pgsql.SQL("MOVE FORWARD ALL FROM {}").format(pgsql.Identifier(_CURSOR))
        )
        rows_cut = max(0, moved.rowcount)
    return QueryResult(
        query=query, columns=columns, rows=tuple(rows), rows_cut=rows_cut, labels_cut=labels_cut
    )


def _read_engine(
    conn: psycopg.Connection[Any],
    database: str,
    engine: IncrementalEngine,
    imported: str | None,
    results: tuple[QueryResult, ...],
    position: Position,
    checkpoints: Checkpoints | None,
) -> DatabaseRead:
    label = f"incremental totals ({len(engine.specs)} metrics)"
    try:
        with conn.transaction():
            if checkpoints is not None and imported is None:
                checkpoints.resume(engine, conn, position.at)
            series, families = engine.collect(conn, imported=imported, position=position)
    except pgerrors.QueryCanceled as exc:
        failure = Failure("timeout", f"{label}: {first_line(exc)}")
    except (psycopg.OperationalError, psycopg.InterfaceError):
        raise
    except psycopg.Error as exc:
        failure = Failure("query", f"{label}: {first_line(exc)}")
    else:
        return DatabaseRead(
            database=database,
            queries=results,
            engine_series=tuple(series),
            engine_families=tuple(families),
        )
    return DatabaseRead(database=database, queries=results, engine_failure=failure)


def _failure(reason: str, metric: str, exc: BaseException) -> Failure:
    cause = first_line(exc)
    return Failure(reason, f"{metric}: {cause}", cause)
