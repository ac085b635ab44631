"""Incremental collection against a real PostgreSQL: always equal to a full recomputation.

A scripted ticket shop (orders, payments, failures, full and partial refunds, session
expiry, webhooks, transactions that commit late, exporter restarts) runs on a clock the
test controls; after every step the engine's series must equal what the default query
pack's full-aggregate SQL gives in the same snapshot, and counters never go backwards.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.app import build_sources
from exporter.catalog import DRIFT_METRIC
from exporter.db.seed import seed_database
from exporter.sources import streams
from exporter.sources.engine_series import ENGINE_METRICS, drift_by_metric
from exporter.sources.incremental import (
    EngineSettings,
    Handoff,
    IncrementalEngine,
)
from exporter.sources.postgres import PostgresSource
from exporter.sources.querypack import DEFAULT_PACK_BY_NAME
from exporter.sources.samples import Sample, to_samples
from tests.support.exporter import config_for, running_exporter, scrape
from tests.support.sources import engine_specs, engines, reconcile_once, reconcilers

OVERLAP = timedelta(seconds=120)
START = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
Series = dict[tuple[str, tuple[str, ...]], float]
# Payment methods as apps write them: missing, empty, and in two spellings of one method.
_METHODS = ("card", "link", None, "", "Card", "apple_pay")


@dataclass(kw_only=True)
class Shop:
    """The reference schema driven on a test clock, one committed change per step."""

    conn: psycopg.Connection[Any]
    dsn: str
    now: datetime = START
    tiers: list[int] = field(default_factory=list)
    late: list[tuple[psycopg.Connection[Any], datetime]] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def reset(self) -> None:
        self.conn.execute(
            "TRUNCATE orders, checkout_sessions, webhook_logs, ticket_tiers, events CASCADE"
        )
        self.now = START
        event = self._one(
            "INSERT INTO events (slug, name, city, starts_at) "
            "VALUES ('berlin-2026', 'Workshop', 'Berlin', %s) RETURNING id",
            [START + timedelta(days=30)],
        )
        closed = self._one(
            "INSERT INTO events (slug, name, city, starts_at, status) "
            "VALUES ('paris-2025', 'Workshop', 'Paris', %s, 'closed') RETURNING id",
            [START - timedelta(days=30)],
        )
        self.tiers = [
            self._one(
                "INSERT INTO ticket_tiers (event_id, tier, price_cents, capacity) "
                "VALUES (%s, %s, 9900, %s) RETURNING id",
                [event_id, tier, capacity],
            )
            for event_id, tier, capacity in (
                (event, "ga", 40),
                (event, "vip", 8),
                (closed, "ga", 5),
            )
        ]

    def _one(self, sql: str, params: list[Any]) -> Any:
        row = self.conn.execute(sql.encode(), params).fetchone()
        assert row is not None
        return row[0]

    def _pick(self, sql: str, k: int) -> Any:
        rows = self.conn.execute(sql.encode()).fetchall()
        return rows[k % len(rows)][0] if rows else None

    def order(self, k: int, quantity: int, currency: str, conn: Any = None) -> int:
        """A checkout session and its pending order, stamped now."""
        conn = conn or self.conn
        tier = self.tiers[k % len(self.tiers)]
        session = f"cs_test_{next(self.ids):06d}"
        conn.execute(
            "INSERT INTO checkout_sessions (id, tier_id, quantity, created_at, expires_at) "
            "VALUES (%s, %s, %s, %s, %s)",
            [session, tier, quantity, self.now, self.now + timedelta(minutes=30)],
        )
        row = conn.execute(
            "INSERT INTO orders (checkout_session_id, tier_id, quantity, amount_total_cents, "
            "currency, payment_method, is_member, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            [
                session,
                tier,
                quantity,
                quantity * 9900 + k,
                currency,
                _METHODS[k % len(_METHODS)],
                k % 4 == 0,
                self.now,
            ],
        ).fetchone()
        return int(row[0])

    def pay(self, k: int, conn: Any = None, order_id: int | None = None) -> None:
        conn = conn or self.conn
        order_id = order_id or self._pick(
            "SELECT id FROM orders WHERE payment_status = 'pending' ORDER BY id", k
        )
        if order_id is None:
            return
        conn.execute(
            "UPDATE orders SET payment_status = 'completed', paid_at = %s WHERE id = %s",
            [self.now, order_id],
        )
        conn.execute(
            # `expired` is final (the contract): only an open session completes.
            "UPDATE checkout_sessions SET status = 'complete', completed_at = %s "
            "WHERE id = (SELECT checkout_session_id FROM orders WHERE id = %s) AND status = 'open'",
            [self.now, order_id],
        )

    def fail(self, k: int, code: str | None) -> None:
        order_id = self._pick(
            "SELECT id FROM orders WHERE payment_status = 'pending' ORDER BY id", k
        )
        if order_id is not None:
            self.conn.execute(
                "UPDATE orders SET payment_status = 'failed', failure_code = %s WHERE id = %s",
                [code, order_id],
            )

    def refund(self, k: int, part: float) -> None:
        """Refund part of what is left of a paid order (all of it when part >= 1)."""
        order_id = self._pick(
            "SELECT id FROM orders WHERE payment_status = 'completed' ORDER BY id", k
        )
        if order_id is None:
            return
        self.conn.execute(
            "UPDATE orders SET refunded_at = %s, "
            "  refunded_amount_cents = CASE WHEN %s >= 1 THEN amount_total_cents ELSE "
            "    refunded_amount_cents + greatest(1, floor((amount_total_cents - refunded_amount_cents) * %s))::bigint END, "
            "  payment_status = CASE WHEN %s >= 1 THEN 'refunded' ELSE payment_status END "
            "WHERE id = %s AND refunded_amount_cents < amount_total_cents",
            [self.now, part, part, part, order_id],
        )
        self.conn.execute(
            "UPDATE orders SET payment_status = 'refunded' "
            "WHERE id = %s AND refunded_amount_cents >= amount_total_cents",
            [order_id],
        )

    def expire(self, k: int) -> None:
        session = self._pick(
            "SELECT id FROM checkout_sessions WHERE status = 'open' ORDER BY id", k
        )
        if session is not None:
            self.conn.execute(
                "UPDATE checkout_sessions SET status = 'expired' WHERE id = %s", [session]
            )

    def webhook(self, provider: str, error: bool) -> None:
        self.conn.execute(
            "INSERT INTO webhook_logs (provider, event_type, status, last_error, created_at, "
            "updated_at) VALUES (%s, 'x', %s, %s, %s, %s)",
            [
                provider,
                "error" if error else "processed",
                "boom" if error else None,
                self.now,
                self.now,
            ],
        )

    def begin_late(self, k: int) -> None:
        """A paid order stamped now whose transaction commits only later."""
        conn = psycopg.connect(self.dsn)
        order_id = self.order(k, 1, "usd", conn)
        self.pay(k, conn, order_id)
        self.late.append((conn, self.now))

    def commit_late(self) -> None:
        for conn, _started in self.late:
            conn.commit()
            conn.close()
        self.late.clear()

    def advance(self, seconds: int) -> None:
        """Move the clock; late transactions commit before they get older than the overlap."""
        if any(self.now + timedelta(seconds=seconds) - at >= OVERLAP for _c, at in self.late):
            self.commit_late()
        self.now += timedelta(seconds=seconds)


def _pack_series(conn: psycopg.Connection[Any]) -> Series:
    out: Series = {}
    for name in sorted(ENGINE_METRICS):
        spec = DEFAULT_PACK_BY_NAME[name]
        with conn.cursor() as cur:
            cur.execute(spec.sql.encode())
            columns = [(d.name, _type_name(conn, d.type_code)) for d in cur.description or []]
            for sample in to_samples(spec, columns, cur.fetchall()):
                out[(name, sample.labels)] = sample.value
    return out


def _type_name(conn: psycopg.Connection[Any], oid: int) -> str:
    info = conn.adapters.types.get(oid)
    assert info is not None
    return info.name


def _engine_series(series: list[tuple[Any, list[Sample]]]) -> Series:
    return {(spec.name, s.labels): s.value for spec, samples in series for s in samples}


class Harness:
    """An engine on the shop's clock, compared with the pack after every step."""

    def __init__(self, shop: Shop) -> None:
        self.shop = shop
        self.reader = psycopg.connect(shop.dsn)
        self.reader.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        self.engine = self._new_engine()
        self.exposed: Series = {}

    def _new_engine(self) -> IncrementalEngine:
        return IncrementalEngine(
            engine_specs(sorted(ENGINE_METRICS)),
            EngineSettings(overlap=OVERLAP, track_for=timedelta(days=30)),
            clock=lambda _conn: self.shop.now,
        )

    def restart(self) -> None:
        self.engine = self._new_engine()
        self.exposed = {}

    def check(self) -> None:
        with self.reader.transaction():
            series, _extra = self.engine.collect(self.reader, imported=None)
            ours = _engine_series(series)
            expected = _pack_series(self.reader)
        assert ours == expected
        for key, value in ours.items():
            if DEFAULT_PACK_BY_NAME[key[0]].kind == "counter":
                assert value >= self.exposed.get(key, 0.0), key
        self.exposed = ours

    def close(self) -> None:
        self.shop.commit_late()
        self.reader.close()


@pytest.fixture
def shop(pg_schema: str) -> Iterator[Shop]:
    with psycopg.connect(pg_schema, autocommit=True) as conn:
        yield Shop(conn=conn, dsn=pg_schema)


Step = tuple[str, int, Any]
_steps: st.SearchStrategy[Step] = st.one_of(
    st.tuples(st.just("order"), st.integers(0, 50), st.sampled_from(["usd", "jpy", "EUR"])),
    st.tuples(st.just("pay"), st.integers(0, 50), st.none()),
    st.tuples(st.just("fail"), st.integers(0, 50), st.sampled_from([None, "", "card_declined"])),
    st.tuples(st.just("refund"), st.integers(0, 50), st.sampled_from([0.3, 0.5, 1.0])),
    st.tuples(st.just("expire"), st.integers(0, 50), st.none()),
    st.tuples(st.just("webhook"), st.integers(0, 1), st.sampled_from(["stripe", "twilio"])),
    st.tuples(st.just("late"), st.integers(0, 50), st.none()),
    st.tuples(st.just("advance"), st.sampled_from([1, 45, 100, 130, 3600]), st.none()),
    st.tuples(st.just("restart"), st.just(0), st.none()),
)


def _apply(shop: Shop, harness: Harness, step: Step) -> None:
    kind, k, arg = step
    if kind == "order":
        shop.order(k, 1 + k % 3, arg)
    elif kind == "pay":
        shop.pay(k)
    elif kind == "fail":
        shop.fail(k, arg)
    elif kind == "refund":
        shop.refund(k, arg)
    elif kind == "expire":
        shop.expire(k)
    elif kind == "webhook":
        shop.webhook(arg, error=k == 1)
    elif kind == "late":
        shop.begin_late(k)
    elif kind == "advance":
        shop.advance(k)
    elif kind == "restart":
        harness.restart()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(_steps, min_size=1, max_size=45))
def test_incremental_totals_equal_full_recomputation_after_every_step(
    shop: Shop, steps: list[Step]
) -> None:
    shop.reset()
    harness = Harness(shop)
    try:
        harness.check()
        for step in steps:
            _apply(shop, harness, step)
            harness.check()
        shop.commit_late()
        harness.check()
    finally:
        harness.close()


def test_a_late_commit_behind_the_newest_row_is_counted_once(shop: Shop) -> None:
    """The case a max-timestamp watermark gets wrong: an older row shows up after newer ones."""
    shop.reset()
    harness = Harness(shop)
    try:
        shop.begin_late(0)  # stamped at t0, not yet committed
        shop.advance(30)
        order = shop.order(0, 2, "usd")
        shop.pay(0, order_id=order)  # stamped t0+30s, committed: the newest row
        harness.check()
        shop.advance(60)
        harness.check()
        shop.commit_late()  # visible now, 90s behind the newest row
        harness.check()
        shop.advance(130)  # both settle
        harness.check()
        sold = harness.exposed[("boxoffice_tickets_sold_total", ("berlin-2026", "Berlin", "ga"))]
        assert sold == 3
    finally:
        harness.close()


def test_transitions_of_settled_rows_are_counted(shop: Shop) -> None:
    """A pending order failing, a session expiring and a second partial refund, hours later."""
    shop.reset()
    harness = Harness(shop)
    try:
        shop.order(0, 1, "usd")  # stays pending, then fails
        paid = shop.order(0, 2, "usd")
        shop.pay(0, order_id=paid)
        shop.refund(0, 0.5)
        harness.check()
        shop.advance(3600)
        harness.check()  # everything settled; pending order and open session watched
        assert harness.engine._state.pending_orders
        shop.fail(0, "card_declined")
        shop.expire(0)
        shop.refund(0, 0.5)
        harness.check()
        shop.advance(3600)
        harness.check()
        assert harness.exposed[("boxoffice_payments_failed_total", ("card_declined",))] == 1
        assert harness.exposed[("boxoffice_checkout_sessions_expired_total", ())] == 1
    finally:
        harness.close()


@pytest.mark.parametrize(
    ("full", "incremental", "expected"),
    [
        ({}, {}, {}),
        ({(streams.SOLD, "1"): 5}, {(streams.SOLD, "1"): 5}, {}),
        (
            {(streams.SOLD, "1"): 7},
            {(streams.SOLD, "1"): 5},
            {
                "boxoffice_tickets_sold_total": 2.0,
                "boxoffice_inventory_available_tickets": 2.0,
            },
        ),
        ({(streams.REVENUE, "usd"): 150}, {}, {"boxoffice_revenue_total": 1.5}),
        ({(streams.REVENUE, "jpy"): 150}, {}, {"boxoffice_revenue_total": 150.0}),
        (
            {},
            {(streams.FAILED, "unknown"): 1},
            {"boxoffice_payments_failed_total": 1.0, "boxoffice_payments_total": 1.0},
        ),
    ],
)
def test_drift_is_reported_per_metric_in_its_units(
    full: streams.Totals, incremental: streams.Totals, expected: dict[str, float]
) -> None:
    found = {name: value for name, value in drift_by_metric(full, incremental).items() if value}
    assert found == expected


def test_refund_folding_counts_only_what_a_known_order_adds() -> None:
    memos: dict[int, streams.RefundMemo] = {}
    at = START
    split = streams.Split(settled={}, window={})
    # First part settles: remembered, since the order can be refunded again.
    streams.fold_refunds([(7, True, "1", "usd", None, 300, True, at)], split, memos)
    # Second part in the window: only the 200 it adds counts.
    streams.fold_refunds([(7, False, "1", "usd", None, 500, True, at)], split, memos)
    # The rest refunds the order fully and settles: tickets count now, memo forgotten.
    streams.fold_refunds([(7, True, "1", "usd", 2, 1000, False, at)], split, memos)
    assert split.settled == {
        (streams.REFUNDED_TICKETS, "1"): 2,
        (streams.REFUNDED_AMOUNT, "usd"): 1000,
    }
    assert split.window == {
        (streams.REFUNDED_TICKETS, "1"): 0,
        (streams.REFUNDED_AMOUNT, "usd"): 200,
    }
    assert memos == {}


def _families_by_name(source: PostgresSource) -> dict[str, dict[tuple[str, ...], float]]:
    collection = source.collect()
    assert collection.ok, collection.failures
    return {
        # Counter families are named without `_total`; their samples carry it.
        family.samples[0].name: {tuple(s.labels.values()): s.value for s in family.samples}
        for family in collection.families
        if family.samples
    }


@pytest.mark.parametrize("pool", ["1", "2"])
def test_reconciliation_reads_zero_drift_then_finds_and_corrects_an_out_of_band_change(
    pg_schema: str, pool: str
) -> None:
    seed_database(pg_schema, orders=3_000, seed=5)
    config = config_for(
        pg_schema,
        BOXOFFICE_SOURCES_POSTGRES_INCREMENTAL_OVERLAP="1s",
        BOXOFFICE_DATABASES_DEFAULT_POOL_MAX_SIZE=pool,
    )
    [source] = build_sources(config)
    assert isinstance(source, PostgresSource)
    try:
        _families_by_name(source)  # the full computation at start
        drift = reconcile_once(source)
        assert drift.by_metric and set(drift.by_metric.values()) == {0.0}
        published = _families_by_name(source)
        assert set(published[DRIFT_METRIC].values()) == {0.0}
        assert published["boxoffice_postgres_reconciliations_total"][()] == 1

        # Out of band: an order paid a week ago appears now, far behind the boundary.
        with psycopg.connect(pg_schema, autocommit=True) as conn:
            tier = conn.execute(
                "SELECT t.id, e.slug, e.city, t.tier FROM ticket_tiers t "
                "JOIN events e ON e.id = t.event_id WHERE e.status <> 'closed' LIMIT 1"
            ).fetchone()
            assert tier is not None
            conn.execute(
                "INSERT INTO orders (tier_id, quantity, amount_total_cents, currency, "
                "payment_status, created_at, paid_at) VALUES (%s, 3, 30000, 'usd', 'completed', "
                "now() - interval '7 days', now() - interval '7 days')",
                [tier[0]],
            )
        labels = (tier[1], tier[2], tier[3])
        before = _families_by_name(source)["boxoffice_tickets_sold_total"][labels]
        drift = reconcile_once(source)
        assert drift.by_metric["boxoffice_tickets_sold_total"] == 3
        assert drift.by_metric["boxoffice_payments_total"] == 1
        after = _families_by_name(source)
        assert after["boxoffice_tickets_sold_total"][labels] == before + 3
        assert after[DRIFT_METRIC][("boxoffice_tickets_sold_total",)] == 3
        # Corrected: the next reconciliation finds nothing.
        assert set(reconcile_once(source).by_metric.values()) == {0.0}
    finally:
        source.close()


def test_exporter_serves_incremental_values_equal_to_the_pack(pg_schema: str) -> None:
    """Through /metrics: incremental on and off give the same business series."""
    seed_database(pg_schema, orders=2_000, seed=9)
    incremental = config_for(pg_schema)
    full = config_for(pg_schema, BOXOFFICE_SOURCES_POSTGRES_INCREMENTAL_ENABLED="false")
    scraped = []
    for config in (incremental, full):
        with running_exporter(config) as (_exporter, url):
            for _ in range(100):
                series = scrape(url)
                if series.get(("boxoffice_source_up", frozenset({("source", "postgres")}))) == 1:
                    break
                time.sleep(0.1)
        scraped.append(
            {
                key: value
                for key, value in series.items()
                if key[0].removesuffix("_total")
                in {n.removesuffix("_total") for n in ENGINE_METRICS}
            }
        )
    assert scraped[0] and scraped[0] == scraped[1]


def test_closing_the_source_interrupts_a_waiting_reconciliation(pg_schema: str) -> None:
    # A 60s interval: the reconciliation would wait two minutes for a cycle on its own.
    [source] = build_sources(config_for(pg_schema, BOXOFFICE_SOURCES_POSTGRES_INTERVAL="60s"))
    assert isinstance(source, PostgresSource)
    source.collect()
    worker = threading.Thread(target=reconcilers(source)["default"].run_once)
    worker.start()  # waits for a collection cycle that never comes
    time.sleep(0.5)
    started = time.monotonic()
    source.close()
    worker.join(10)
    assert not worker.is_alive()
    assert time.monotonic() - started < 8


def test_a_snapshot_that_is_gone_does_not_fail_the_cycle(pg_schema: str) -> None:
    """A reconciliation that gave up closes its transaction; the cycle collects as usual."""
    [source] = build_sources(config_for(pg_schema))
    assert isinstance(source, PostgresSource)
    try:
        assert source.collect().ok
        handoff = Handoff(snapshot_id="00000003-0000001B-1")  # a snapshot id no transaction exports
        engines(source)["default"].offer_snapshot(handoff)
        collection = source.collect()
        assert collection.ok, collection.failures
        assert not handoff.done.is_set()
        assert source.collect().ok
    finally:
        source.close()
