"""Pure tables: what PostgresSource read from its databases, turned into one collection."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from prometheus_client.core import Metric

from exporter.catalog import CATALOG_BY_NAME, DATABASE_UP
from exporter.config import BoundMetric, Database
from exporter.sources.base import Failure
from exporter.sources.families import family
from exporter.sources.guard import CardinalityGuard
from exporter.sources.postgres import (
    DatabaseRead,
    IncrementalOptions,
    PostgresSource,
    QueryResult,
    collection_of,
)
from exporter.sources.querypack import DEFAULT_PACK_BY_NAME, bind
from exporter.sources.samples import Sample

PAYMENTS = bind("boxoffice_payments_total", database="default", sql=None)
FAILED = bind("boxoffice_payments_failed_total", database="default", sql=None)
STARTS = bind("boxoffice_event_start_timestamp_seconds", database="default", sql=None)
SOLD = DEFAULT_PACK_BY_NAME["boxoffice_tickets_sold_total"]
RUNS = family("boxoffice_postgres_reconciliations_total", value=0)
TIMEOUT = Failure("timeout", "boxoffice_payments_total: canceled", "canceled")


def _ok(query: Any, columns: tuple[tuple[str, str], ...], *rows: tuple[Any, ...]) -> QueryResult:
    return QueryResult(query=query, columns=columns, rows=rows)


def _series(families: tuple[Metric, ...]) -> list[tuple[str, dict[str, str], float]]:
    """The business series, without each database's own health (checked on its own)."""
    return [
        (s.name, s.labels, s.value) for f in families for s in f.samples if f.name != DATABASE_UP
    ]


@pytest.mark.parametrize(
    ("reads", "series", "failures", "dropped"),
    [
        pytest.param(
            [
                DatabaseRead(
                    database="default", queries=(_ok(PAYMENTS, (("value", "int8"),), (7,)),)
                )
            ],
            [("boxoffice_payments_total", {}, 7.0)],
            [],
            {},
            id="one query",
        ),
        pytest.param(
            [DatabaseRead(database="sales", unavailable="connection refused")],
            [],
            [Failure("connection", "database 'sales': connection refused")],
            {},
            id="database unavailable",
        ),
        pytest.param(
            [
                DatabaseRead(
                    database="default",
                    queries=(
                        QueryResult(query=PAYMENTS, failure=TIMEOUT),
                        _ok(FAILED, (("code", "text"), ("value", "int8")), ("x", 1)),
                    ),
                    engine_failure=Failure("query", "incremental totals (1 metrics): boom"),
                )
            ],
            [],
            [
                TIMEOUT,
                Failure("query", "incremental totals (1 metrics): boom"),
                Failure(
                    "columns",
                    "boxoffice_payments_failed_total: query returns columns (code, value); "
                    "expected (failure_code, value)",
                ),
            ],
            {},
            id="query, engine and column failures in that order",
        ),
        pytest.param(
            [
                DatabaseRead(
                    database="default",
                    queries=(
                        _ok(
                            STARTS,
                            (("event", "text"), ("city", "text"), ("value", "float8")),
                            ("a", "x", 1.0),
                            ("b", "x", 2.0),
                            ("c", "x", 3.0),
                        ),
                    ),
                    engine_series=(
                        (
                            SOLD,
                            [
                                Sample(("a", "x", "ga"), 5.0),
                                Sample(("b", "x", "ga"), 1.0),
                                Sample(("c", "x", "ga"), 2.0),
                            ],
                        ),
                    ),
                    engine_families=(RUNS,),
                )
            ],
            [
                ("boxoffice_tickets_sold_total", {"event": "a", "city": "x", "tier": "ga"}, 5.0),
                (
                    "boxoffice_tickets_sold_total",
                    {"event": "other", "city": "other", "tier": "other"},
                    3.0,
                ),
                ("boxoffice_postgres_reconciliations_total", {}, 0.0),
                ("boxoffice_event_start_timestamp_seconds", {"event": "c", "city": "x"}, 3.0),
                ("boxoffice_event_start_timestamp_seconds", {"event": "b", "city": "x"}, 2.0),
            ],
            [],
            {"boxoffice_tickets_sold_total": 2, "boxoffice_event_start_timestamp_seconds": 1},
            id="engine first, then queries, through the guard",
        ),
    ],
)
def test_collection_of_reads(
    reads: list[DatabaseRead],
    series: list[tuple[str, dict[str, str], float]],
    failures: list[Failure],
    dropped: dict[str, int],
) -> None:
    collection = collection_of(reads, CardinalityGuard(2))
    assert _series(collection.families) == series
    # Every database read reports its own health: up when reached and every query worked.
    health = [
        (s.labels["database"], s.value)
        for f in collection.families
        if f.name == DATABASE_UP
        for s in f.samples
    ]
    assert health == [(r.database, 1.0 if r.ok else 0.0) for r in reads]
    assert list(collection.failures) == failures
    assert dict(collection.dropped) == dropped


class _NoPool:
    def __init__(self, _db: Database) -> None:
        pass

    def close(self) -> None:
        pass


def test_reconcilers_run_only_once_started() -> None:
    source = PostgresSource(
        databases={
            "default": Database(
                name="default", dsn="dbname=x", pool_max_size=1, connect_timeout=1.0
            )
        },
        metrics=[BoundMetric(spec=CATALOG_BY_NAME["boxoffice_payments_total"], database="default")],
        interval=30,
        timeout=10,
        guard=CardinalityGuard(10),
        incremental=IncrementalOptions(
            overlap=120, track_for=86400, reconcile_interval=3600, full_timeout=600
        ),
        pool_factory=_NoPool,  # type: ignore[arg-type]
    )

    def threads() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name == "reconcile-default"]

    assert threads() == []
    source.start()
    assert threads() == ["reconcile-default"]
    source.close()
    assert threads() == []
