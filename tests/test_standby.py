"""Incremental collection on a hot standby: exact whatever the replay lag.

A real primary and a streaming standby (pg_basebackup) run from the server binaries.
Replay is paused while the shop keeps selling; the standby's wall clock runs past the new
rows' timestamps plus the overlap; replay resumes. The exporter, pointed at the standby,
must then equal a full recomputation on the primary without any reconciliation, while an
engine settling by the standby's wall clock (the old way) loses those rows.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from exporter.app import build_sources
from exporter.catalog import REPLICATION_LAG_METRIC
from exporter.db.schema import create_schema
from exporter.db.seed import seed_database
from exporter.sources.engine_series import ENGINE_METRICS
from exporter.sources.incremental import EngineSettings, IncrementalEngine
from exporter.sources.postgres import PostgresSource
from exporter.sources.replay import Position, position_of
from tests.support.exporter import config_for
from tests.support.pack import pack_series, pack_series_of, published_engine_series
from tests.support.sources import engine_specs, reconcile_once
from tests.support.standby import ReplicationPair, server_bindir
from tests.support.writes import write_sales

OVERLAP = 2.0
T = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        # A primary: its own clock, never behind.
        ((False, T, None, None, False), Position(T, 0.0)),
        # A standby that replayed all it received while streaming: idle but current.
        ((True, T, T - timedelta(hours=3), True, True), Position(T, 0.0, standby=True)),
        # Replay behind what was received: the last replayed commit is the clock.
        (
            (True, T, T - timedelta(minutes=10), False, True),
            Position(T - timedelta(minutes=10), 600.0, standby=True),
        ),
        # Caught up with what it received, but not streaming (primary unreachable).
        (
            (True, T, T - timedelta(seconds=30), True, False),
            Position(T - timedelta(seconds=30), 30.0, standby=True),
        ),
        # Nothing replayed since the standby started and not caught up: cannot tell.
        ((True, T, None, False, True), Position(None, None, standby=True)),
        # A standby clock slightly behind the primary's: never a negative lag.
        ((True, T, T + timedelta(seconds=1), False, True), Position(T, 0.0, standby=True)),
    ],
)
def test_position_of_a_primary_and_of_a_standby(
    row: tuple[bool, datetime, datetime | None, bool | None, bool], expected: Position
) -> None:
    assert position_of(*row) == expected


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicationPair]:
    bindir = server_bindir()
    if bindir is None:
        pytest.fail("PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) not found")
    started = ReplicationPair(bindir)
    try:
        started.start()
        yield started
    finally:
        started.stop()


@pytest.fixture
def shop(pair: ReplicationPair) -> Iterator[tuple[str, str]]:
    """A seeded shop database on the primary, replayed on the standby: (primary, standby)."""
    name = f"shop_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pair.dsn(pair.primary_port), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}".encode())
    primary, standby = pair.dsn(pair.primary_port, name), pair.dsn(pair.standby_port, name)
    try:
        with psycopg.connect(primary, autocommit=True) as conn:
            create_schema(conn)
        seed_database(primary, orders=1_500, seed=3, workers=1)
        pair.wait_replayed()
        yield primary, standby
    finally:
        with psycopg.connect(pair.dsn(pair.primary_port), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())


def _lag(source: PostgresSource) -> float | None:
    collection = source.collect()
    assert collection.ok, collection.failures
    for family in collection.families:
        if family.name == REPLICATION_LAG_METRIC:
            return float(family.samples[0].value)
    return None


def test_counts_are_exact_on_a_standby_whose_replay_pauses_longer_than_the_overlap(
    pair: ReplicationPair, shop: tuple[str, str]
) -> None:
    primary, standby = shop
    config = config_for(standby, BOXOFFICE_SOURCES_POSTGRES_INCREMENTAL_OVERLAP=f"{OVERLAP}s")
    [source] = build_sources(config)  # not started: no reconciliation runs in this test
    assert isinstance(source, PostgresSource)
    # The old way, for comparison: settle by the standby's wall clock.
    wall = IncrementalEngine(
        engine_specs(sorted(ENGINE_METRICS)), EngineSettings(overlap=timedelta(seconds=OVERLAP))
    )
    reader = psycopg.connect(standby)
    reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ

    def wall_series() -> dict[tuple[str, tuple[str, ...]], float]:
        with reader.transaction():
            series, _families = wall.collect(reader, imported=None)
        return {(spec.name, s.labels): s.value for spec, samples in series for s in samples}

    control = psycopg.connect(standby, autocommit=True)
    try:
        assert published_engine_series(source) == pack_series_of(primary)
        wall_series()
        assert _lag(source) == 0.0
        control.execute("SELECT pg_wal_replay_pause()")
        lags: list[float | None] = []
        with psycopg.connect(primary, autocommit=True) as writer:
            for k in range(6):
                write_sales(writer, k)
                # Both keep collecting while replay stands still and the clock runs on.
                for _ in range(2):
                    lags.append(_lag(source))
                    wall_series()
                    time.sleep(OVERLAP / 4)
            row = writer.execute("SELECT max(paid_at) FROM orders").fetchone()
        assert row is not None
        newest_paid = row[0]
        time.sleep(1.5 * OVERLAP)
        now_on_standby = control.execute("SELECT now()").fetchone()
        assert now_on_standby is not None
        # Every row written during the pause is older than the overlap: the wall clock
        # has settled past all of them before the standby could see one.
        assert newest_paid < now_on_standby[0] - timedelta(seconds=OVERLAP)
        assert max(lag for lag in lags if lag is not None) > OVERLAP
        wall_series()
        _lag(source)

        control.execute("SELECT pg_wal_replay_resume()")
        pair.wait_replayed()
        expected = pack_series_of(primary)
        assert published_engine_series(source) == expected
        assert _lag(source) == 0.0
        assert published_engine_series(source) == expected
        lost = wall_series()
        assert lost != expected
        sold = "boxoffice_tickets_sold_total"
        assert sum(v for (n, _), v in lost.items() if n == sold) < sum(
            v for (n, _), v in expected.items() if n == sold
        )
    finally:
        control.execute("SELECT pg_wal_replay_resume()")
        control.close()
        reader.close()
        source.close()


def test_reconciliation_runs_on_the_standby(pair: ReplicationPair, shop: tuple[str, str]) -> None:
    primary, standby = shop
    [source] = build_sources(config_for(standby))
    assert isinstance(source, PostgresSource)
    try:
        published_engine_series(source)
        assert set(reconcile_once(source).by_metric.values()) == {0.0}
        # Out of band on the primary: an order paid a week ago appears now.
        with psycopg.connect(primary, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO orders (tier_id, quantity, amount_total_cents, currency, "
                "payment_status, created_at, paid_at) SELECT min(t.id), 3, 30000, 'usd', "
                "'completed', now() - interval '7 days', now() - interval '7 days' "
                "FROM ticket_tiers t JOIN events e ON e.id = t.event_id WHERE e.status <> 'closed'"
            )
        pair.wait_replayed()
        drift = reconcile_once(source)
        assert drift.by_metric["boxoffice_tickets_sold_total"] == 3
        with psycopg.connect(primary) as conn, conn.transaction():
            expected = pack_series(conn)
        assert published_engine_series(source) == expected
    finally:
        source.close()
