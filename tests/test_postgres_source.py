"""The PostgreSQL source against a real server: exact values, step by step and after seeding."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from exporter.app import build_sources
from exporter.collect.exposition import ExporterCollector
from exporter.collect.scheduler import SourceRunner
from exporter.db.schema import create_schema
from exporter.db.seed import seed_database
from exporter.sources.querypack import DEFAULT_PACK
from tests.support.data import add_event, add_order, add_session, add_tier
from tests.support.exporter import (
    Series,
    config_for,
    running_exporter,
    scrape,
    upstream_of,
    via_proxy,
)
from tests.support.tcpproxy import TcpProxy

Expected = dict[tuple[str, frozenset[tuple[str, str]]], float]
_ZERO_DECIMAL = {"jpy", "krw"}


def _key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (name, frozenset(labels.items()))


def _independent_expectation(conn: psycopg.Connection[Any]) -> Expected:
    """Every metric recomputed in Python from raw rows, not with the exporter's SQL."""
    events = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT id, slug, city, extract(epoch FROM starts_at), status FROM events"
        )
    }
    tiers = {
        r[0]: r[1:] for r in conn.execute("SELECT id, event_id, tier, capacity FROM ticket_tiers")
    }
    orders = conn.execute(
        "SELECT tier_id, quantity, amount_total_cents, currency, payment_status, failure_code, "
        "paid_at IS NOT NULL, extract(epoch FROM paid_at), refunded_amount_cents, "
        "payment_method, is_member FROM orders"
    ).fetchall()
    sessions = conn.execute(
        "SELECT tier_id, quantity, status, expires_at > now() FROM checkout_sessions"
    ).fetchall()
    webhooks = conn.execute("SELECT provider, status FROM webhook_logs").fetchall()

    exp: Expected = {}
    sold: dict[int, int] = defaultdict(int)
    refunded: dict[int, int] = defaultdict(int)
    reserved: dict[int, int] = defaultdict(int)
    revenue: dict[str, int] = defaultdict(int)
    refunds: dict[str, int] = defaultdict(int)
    failed: dict[str, int] = defaultdict(int)
    # (city, tier, method, member): [orders, tickets]; with the currency: [orders, amount]
    breakdown: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
    payments, last_paid = 0, None
    for (
        tier_id,
        qty,
        amount,
        currency,
        status,
        code,
        paid,
        paid_epoch,
        refunded_cents,
        method,
        member,
    ) in orders:
        if paid:
            city = events[tiers[tier_id][0]][1]
            labels = (city, tiers[tier_id][1], (method or "unknown").lower(), str(member).lower())
            breakdown[labels][0] += 1
            breakdown[labels][1] += qty
            breakdown[(*labels, currency.lower())][0] += 1
            breakdown[(*labels, currency.lower())][1] += amount
            sold[tier_id] += qty
            revenue[currency.lower()] += amount
            last_paid = max(last_paid or 0, float(paid_epoch))
            if status == "refunded":
                refunded[tier_id] += qty
        if paid or status == "failed":
            payments += 1
        if status == "failed":
            failed[code or "unknown"] += 1
        if refunded_cents > 0:
            refunds[currency.lower()] += refunded_cents
    for tier_id, qty, status, live in sessions:
        if status == "open" and live:
            reserved[tier_id] += qty
    for tier_id, (event_id, tier, capacity) in tiers.items():
        slug, city, _starts, ev_status = events[event_id]
        if ev_status == "closed":
            continue
        labels = {"event": slug, "city": city, "tier": tier}
        exp[_key("boxoffice_tickets_sold_total", **labels)] = sold[tier_id]
        exp[_key("boxoffice_tickets_refunded_total", **labels)] = refunded[tier_id]
        exp[_key("boxoffice_inventory_capacity_tickets", **labels)] = capacity
        exp[_key("boxoffice_inventory_reserved_tickets", **labels)] = reserved[tier_id]
        available = capacity - sold[tier_id] + refunded[tier_id] - reserved[tier_id]
        exp[_key("boxoffice_inventory_available_tickets", **labels)] = available
    for slug, city, starts, ev_status in events.values():
        if ev_status != "closed":
            exp[_key("boxoffice_event_start_timestamp_seconds", event=slug, city=city)] = float(
                starts
            )
    exp[_key("boxoffice_payments_total")] = payments
    for code, n in failed.items():
        exp[_key("boxoffice_payments_failed_total", failure_code=code)] = n
    for currency, cents in revenue.items():
        exp[_key("boxoffice_revenue_total", currency=currency)] = (
            cents if currency in _ZERO_DECIMAL else cents / 100
        )
    for currency, cents in refunds.items():
        exp[_key("boxoffice_refunds_total", currency=currency)] = (
            cents if currency in _ZERO_DECIMAL else cents / 100
        )
    if last_paid is not None:
        exp[_key("boxoffice_last_paid_order_timestamp_seconds")] = last_paid
    names = ("city", "tier", "payment_method", "member", "currency")
    for labels, (count, value) in breakdown.items():
        named = dict(zip(names, labels, strict=False))
        if len(labels) == 4:
            exp[_key("boxoffice_orders_paid_tickets_total", **named)] = value
        else:
            exp[_key("boxoffice_orders_paid_total", **named)] = count
            exp[_key("boxoffice_orders_paid_revenue_total", **named)] = (
                value if labels[-1] in _ZERO_DECIMAL else value / 100
            )
    exp[_key("boxoffice_checkout_sessions_created_total")] = len(sessions)
    exp[_key("boxoffice_checkout_sessions_completed_total")] = sum(
        1 for s in sessions if s[2] == "complete"
    )
    exp[_key("boxoffice_checkout_sessions_expired_total")] = sum(
        1 for s in sessions if s[2] == "expired"
    )
    exp[_key("boxoffice_checkout_sessions_open")] = sum(
        1 for s in sessions if s[2] == "open" and s[3]
    )
    providers = {p for p, _ in webhooks}
    for provider in providers:
        exp[_key("boxoffice_webhook_events_total", provider=provider)] = sum(
            1 for p, _ in webhooks if p == provider
        )
        exp[_key("boxoffice_webhook_events_failed_total", provider=provider)] = sum(
            1 for p, s in webhooks if p == provider and s == "error"
        )
    return exp


def _business(series: Series) -> Expected:
    pack = {spec.name for spec in DEFAULT_PACK}
    return {key: v for key, v in series.items() if key[0] in pack}


def _registry_series(registry: CollectorRegistry) -> Series:
    series: Series = {}
    for family in registry.collect():
        for sample in family.samples:
            series[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return series


def _assert_same(actual: Expected, expected: Expected) -> None:
    assert set(actual) == set(expected), (
        f"missing: {sorted(set(expected) - set(actual))[:5]}, unexpected: {sorted(set(actual) - set(expected))[:5]}"
    )
    for key, want in expected.items():
        assert actual[key] == pytest.approx(want, rel=1e-12, abs=1e-6), key


def test_every_metric_matches_an_independent_computation_after_seeding(pg_schema: str) -> None:
    summary = seed_database(pg_schema, orders=30_000, seed=7)
    assert summary.orders == 30_000
    with psycopg.connect(pg_schema, autocommit=True) as conn:
        expected = _independent_expectation(conn)
    config = config_for(
        pg_schema,
        BOXOFFICE_SOURCES_POSTGRES_INTERVAL="1h",
        BOXOFFICE_SOURCES_POSTGRES_TIMEOUT="30s",
    )
    (source,) = build_sources(config)
    runner = SourceRunner(source)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExporterCollector(lambda: [runner.snapshot()], "test"))
    try:
        snapshot = runner.run_once()
    finally:
        source.close()
    assert snapshot.up, snapshot.last_error
    assert registry.get_sample_value("boxoffice_source_up", {"source": "postgres"}) == 1
    actual = _business(_registry_series(registry))
    _assert_same(actual, expected)
    # The demo data has what the alerts need to show: one oversold tier, some low ones.
    available = [
        v for (name, _), v in actual.items() if name == "boxoffice_inventory_available_tickets"
    ]
    assert sum(1 for v in available if v < 0) == 1
    assert any(0 < v <= 5 for v in available)
    assert (
        len(
            {
                dict(labels)["city"]
                for (name, labels) in actual
                if name == "boxoffice_event_start_timestamp_seconds"
            }
        )
        >= 10
    )


def test_scripted_sales_through_the_http_endpoint(pg_schema: str) -> None:
    conn = psycopg.connect(pg_schema, autocommit=True)
    austin = add_event(conn, "austin-2027-03-01", "Austin")
    ga = add_tier(conn, austin, "ga", price_cents=9900, capacity=10)
    vip = add_tier(conn, austin, "vip", price_cents=29900, capacity=3)
    past = add_event(conn, "boston-2026-01-01", "Boston", status="closed", days_ahead=-300)
    add_order(
        conn,
        add_tier(conn, past, "ga", price_cents=5000, capacity=5),
        quantity=5,
        amount_cents=25000,
        status="completed",
    )

    config = config_for(pg_schema, BOXOFFICE_SOURCES_POSTGRES_INTERVAL="1h")
    with running_exporter(config) as (exporter, url):
        (runner,) = exporter.runners

        last_paid_key = _key("boxoffice_last_paid_order_timestamp_seconds")

        def check_step() -> None:
            """One collection, then /metrics must equal ``expected`` exactly."""
            snapshot = runner.run_once()
            assert snapshot.up, snapshot.last_error
            actual = _business(scrape(url))
            paid = conn.execute("SELECT extract(epoch FROM max(paid_at)) FROM orders").fetchone()
            assert paid is not None
            assert actual.pop(last_paid_key) == pytest.approx(float(paid[0]))
            _assert_same(actual, expected)

        tiers = {
            "ga": {"event": "austin-2027-03-01", "city": "Austin", "tier": "ga"},
            "vip": {"event": "austin-2027-03-01", "city": "Austin", "tier": "vip"},
        }
        expected: Expected = {}
        for tier, capacity in (("ga", 10), ("vip", 3)):
            for name in (
                "boxoffice_tickets_sold_total",
                "boxoffice_tickets_refunded_total",
                "boxoffice_inventory_reserved_tickets",
            ):
                expected[_key(name, **tiers[tier])] = 0
            expected[_key("boxoffice_inventory_capacity_tickets", **tiers[tier])] = capacity
            expected[_key("boxoffice_inventory_available_tickets", **tiers[tier])] = capacity
        starts = conn.execute(
            "SELECT extract(epoch FROM starts_at) FROM events WHERE id = %s", [austin]
        ).fetchone()
        assert starts is not None
        expected[
            _key(
                "boxoffice_event_start_timestamp_seconds", event="austin-2027-03-01", city="Austin"
            )
        ] = float(starts[0])
        expected[_key("boxoffice_payments_total")] = 1  # the closed event's order still counts
        expected[_key("boxoffice_revenue_total", currency="usd")] = 250.0
        boston = {"city": "Boston", "tier": "ga", "payment_method": "unknown", "member": "false"}
        expected[_key("boxoffice_orders_paid_total", currency="usd", **boston)] = 1
        expected[_key("boxoffice_orders_paid_tickets_total", **boston)] = 5
        expected[_key("boxoffice_orders_paid_revenue_total", currency="usd", **boston)] = 250.0
        for name in ("created", "completed", "expired"):
            expected[_key(f"boxoffice_checkout_sessions_{name}_total")] = 0
        expected[_key("boxoffice_checkout_sessions_open")] = 0
        check_step()

        # 1. Two orders are placed: nothing is paid yet, so nothing changes.
        first = add_order(conn, ga, quantity=2, amount_cents=19800)
        second = add_order(conn, ga, quantity=1, amount_cents=9900)
        check_step()

        # 2. Both are paid.
        conn.execute(
            "UPDATE orders SET payment_status = 'completed', paid_at = now(), "
            "payment_method = 'card', is_member = (id = %s) WHERE id IN (%s, %s)",
            [first, first, second],
        )
        for member, count, tickets, amount in (("true", 1, 2, 198.0), ("false", 1, 1, 99.0)):
            card = {"city": "Austin", "tier": "ga", "payment_method": "card", "member": member}
            expected[_key("boxoffice_orders_paid_total", currency="usd", **card)] = count
            expected[_key("boxoffice_orders_paid_tickets_total", **card)] = tickets
            expected[_key("boxoffice_orders_paid_revenue_total", currency="usd", **card)] = amount
        expected[_key("boxoffice_tickets_sold_total", **tiers["ga"])] = 3
        expected[_key("boxoffice_inventory_available_tickets", **tiers["ga"])] = 7
        expected[_key("boxoffice_payments_total")] = 3
        expected[_key("boxoffice_revenue_total", currency="usd")] = 250.0 + 297.0
        check_step()

        # 3. A payment fails with a real Stripe code.
        add_order(
            conn, vip, quantity=1, amount_cents=29900, status="failed", failure_code="card_declined"
        )
        expected[_key("boxoffice_payments_total")] = 4
        expected[_key("boxoffice_payments_failed_total", failure_code="card_declined")] = 1
        check_step()

        # 4. The one-ticket order is refunded: the ticket returns to inventory.
        conn.execute(
            "UPDATE orders SET payment_status = 'refunded', refunded_at = now(), refunded_amount_cents = 9900 WHERE id = %s",
            [second],
        )
        expected[_key("boxoffice_tickets_refunded_total", **tiers["ga"])] = 1
        expected[_key("boxoffice_inventory_available_tickets", **tiers["ga"])] = 8
        expected[_key("boxoffice_refunds_total", currency="usd")] = 99.0
        check_step()

        # 5. Checkout sessions: one open holds two GA tickets, one expired holds nothing.
        add_session(conn, ga, quantity=2, status="open")
        add_session(conn, ga, quantity=4, status="expired")
        expected[_key("boxoffice_inventory_reserved_tickets", **tiers["ga"])] = 2
        expected[_key("boxoffice_inventory_available_tickets", **tiers["ga"])] = 6
        expected[_key("boxoffice_checkout_sessions_created_total")] = 2
        expected[_key("boxoffice_checkout_sessions_expired_total")] = 1
        expected[_key("boxoffice_checkout_sessions_open")] = 1
        check_step()

        # 6. VIP is oversold: four tickets paid against a capacity of three.
        add_order(conn, vip, quantity=4, amount_cents=4 * 29900, status="completed")
        expected[_key("boxoffice_tickets_sold_total", **tiers["vip"])] = 4
        expected[_key("boxoffice_inventory_available_tickets", **tiers["vip"])] = -1
        expected[_key("boxoffice_payments_total")] = 5
        expected[_key("boxoffice_revenue_total", currency="usd")] = 250.0 + 297.0 + 1196.0
        vip_unknown = {"city": "Austin", "tier": "vip", "payment_method": "unknown"}
        vip_unknown["member"] = "false"
        expected[_key("boxoffice_orders_paid_total", currency="usd", **vip_unknown)] = 1
        expected[_key("boxoffice_orders_paid_tickets_total", **vip_unknown)] = 4
        expected[_key("boxoffice_orders_paid_revenue_total", currency="usd", **vip_unknown)] = (
            1196.0
        )
        check_step()

        # 7. Webhooks: three processed, one error.
        for status in ("processed", "processed", "error", "processed"):
            conn.execute(
                "INSERT INTO webhook_logs (provider, event_type, status) VALUES ('stripe', 'checkout.session.completed', %s)",
                [status],
            )
        expected[_key("boxoffice_webhook_events_total", provider="stripe")] = 4
        expected[_key("boxoffice_webhook_events_failed_total", provider="stripe")] = 1
        check_step()
    conn.close()


def test_two_databases_and_one_is_lost(new_database: Callable[[], str]) -> None:
    """The payment DB may be another server: its loss costs only its own metrics."""
    tickets, payments = new_database(), new_database()
    for dsn in (tickets, payments):
        with psycopg.connect(dsn, autocommit=True) as conn:
            create_schema(conn)
    with psycopg.connect(tickets, autocommit=True) as conn:
        add_tier(
            conn, add_event(conn, "miami-2027-04-04", "Miami"), "ga", price_cents=9900, capacity=50
        )
    with psycopg.connect(payments, autocommit=True) as conn:
        tier = add_tier(conn, add_event(conn, "x", "X"), "ga", price_cents=100, capacity=1)
        add_order(conn, tier, quantity=1, amount_cents=4200, currency="eur", status="completed")
    miami_capacity = _key(
        "boxoffice_inventory_capacity_tickets", event="miami-2027-04-04", city="Miami", tier="ga"
    )
    proxy = TcpProxy(upstream_of(payments))
    proxy.start()
    config = config_for(
        tickets,
        BOXOFFICE_DATABASES_PAYMENTS_DSN=via_proxy(payments, proxy.port),
        BOXOFFICE_DATABASES_PAYMENTS_CONNECT_TIMEOUT="1s",
        BOXOFFICE_METRICS_BOXOFFICE_REVENUE_TOTAL_DATABASE="payments",
        BOXOFFICE_SOURCES_POSTGRES_INTERVAL="1h",
    )
    try:
        with running_exporter(config) as (exporter, url):
            (runner,) = exporter.runners
            assert runner.run_once().up
            series = scrape(url)
            assert series[_key("boxoffice_revenue_total", currency="eur")] == 42.0
            assert series[miami_capacity] == 50
            proxy.stop()
            snapshot = runner.run_once()
            assert not snapshot.up
            assert snapshot.last_error is not None and "database 'payments'" in snapshot.last_error
            series = scrape(url)
            assert _key("boxoffice_revenue_total", currency="eur") not in series
            assert series[miami_capacity] == 50
            assert series[_key("boxoffice_source_up", source="postgres")] == 0
    finally:
        proxy.stop()


def test_cardinality_guard_folds_and_counts(pg_schema: str) -> None:
    with psycopg.connect(pg_schema, autocommit=True) as conn:
        for n in range(6):
            tier = add_tier(
                conn,
                add_event(conn, f"city{n}-2027", f"City {n}"),
                "ga",
                price_cents=1000,
                capacity=10,
            )
            add_order(conn, tier, quantity=n + 1, amount_cents=1000, status="completed")
    config = config_for(
        pg_schema,
        BOXOFFICE_SOURCES_POSTGRES_MAX_SERIES_PER_METRIC="3",
        BOXOFFICE_SOURCES_POSTGRES_INTERVAL="1h",
    )
    with running_exporter(config) as (exporter, url):
        (runner,) = exporter.runners
        runner.run_once()
        for _ in range(20):  # the background loop's first cycle counts too: a scrape between
            before = runner.snapshot().cycles
            series = scrape(url)
            cycles = runner.snapshot().cycles
            if cycles == before:
                break
    sold = {
        dict(labels)["event"]: v
        for (name, labels), v in series.items()
        if name == "boxoffice_tickets_sold_total"
    }
    assert sold == {"city5-2027": 6, "city4-2027": 5, "other": 1 + 2 + 3 + 4}
    starts = [
        labels for (name, labels) in series if name == "boxoffice_event_start_timestamp_seconds"
    ]
    assert len(starts) == 3 and all(dict(lbl)["event"] != "other" for lbl in starts)
    dropped = series[_key("boxoffice_series_dropped_total", metric="boxoffice_tickets_sold_total")]
    assert dropped == 4 * cycles  # counted per collection
    start_key = _key(
        "boxoffice_series_dropped_total", metric="boxoffice_event_start_timestamp_seconds"
    )
    assert series[start_key] == 3 * cycles
    # The breakdowns of paid orders pass the same guard: the two biggest cities stay and
    # the rest fold into one series whose labels are all `other`, so totals stay exact.
    by_city = {
        dict(labels)["city"]: (v, dict(labels))
        for (name, labels), v in series.items()
        if name == "boxoffice_orders_paid_tickets_total"
    }
    assert {city: v for city, (v, _labels) in by_city.items()} == {
        "City 5": 6,
        "City 4": 5,
        "other": 1 + 2 + 3 + 4,
    }
    assert set(by_city["other"][1].values()) == {"other"}
    breakdown_key = _key(
        "boxoffice_series_dropped_total", metric="boxoffice_orders_paid_tickets_total"
    )
    assert series[breakdown_key] == 4 * cycles
