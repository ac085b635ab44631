"""The demo data: deterministic, realistic, and shaped so every alert has something to show."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from exporter.db.seed import TABLES as SEED_TABLES
from exporter.db.seed import SeedError, seed_database
from exporter.db.shop import FAILURE_CODES

NOW = datetime(2026, 11, 24, 18, 30, tzinfo=UTC)
ORDERS = 40_000

AVAILABLE = """
SELECT t.id, e.status, t.tier, t.capacity
       - (SELECT COALESCE(sum(quantity), 0) FROM orders WHERE tier_id = t.id AND paid_at IS NOT NULL)
       + (SELECT COALESCE(sum(quantity), 0) FROM orders WHERE tier_id = t.id AND paid_at IS NOT NULL AND payment_status = 'refunded')
       - (SELECT COALESCE(sum(quantity), 0) FROM checkout_sessions WHERE tier_id = t.id AND status = 'open' AND expires_at > %s)
FROM ticket_tiers t JOIN events e ON e.id = t.event_id
"""


def _digest(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        return {
            table: str(
                conn.execute(
                    f"SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM {table} t"
                ).fetchone()
            )
            for table in SEED_TABLES
        }


@pytest.fixture
def seeded(pg_schema: str) -> Iterator[psycopg.Connection[Any]]:
    seed_database(pg_schema, orders=ORDERS, seed=3, now=NOW, batch_size=7_000)
    with psycopg.connect(pg_schema, autocommit=True) as conn:
        yield conn


def test_same_seed_same_data_whatever_the_batching(new_database: Callable[[], str]) -> None:
    first, second = new_database(), new_database()  # seed_database creates the schema itself
    seed_database(first, orders=5_000, seed=11, now=NOW, batch_size=5_000, workers=1)
    seed_database(second, orders=5_000, seed=11, now=NOW, batch_size=1_234, workers=2)
    assert _digest(first) == _digest(second)
    seed_database(second, orders=5_000, seed=12, now=NOW, replace=True)
    assert _digest(first)["orders"] != _digest(second)["orders"]


def test_refuses_a_database_with_data_unless_replacing(pg_schema: str) -> None:
    seed_database(pg_schema, orders=500, now=NOW)
    with pytest.raises(
        SeedError,
        match=r"^table webhook_logs already has rows; --replace empties the tables first$",
    ):
        seed_database(pg_schema, orders=500, now=NOW)
    summary = seed_database(pg_schema, orders=700, now=NOW, replace=True)
    assert summary.orders == 700


def test_cities_events_and_order_times(seeded: psycopg.Connection[Any]) -> None:
    conn = seeded
    cities = conn.execute("SELECT count(DISTINCT city) FROM events").fetchone()
    assert cities is not None and cities[0] >= 10
    statuses = dict(conn.execute("SELECT status, count(*) FROM events GROUP BY 1").fetchall())
    assert statuses["closed"] >= 20 and statuses["on_sale"] >= 10
    assert statuses["cancelled"] == 1 and statuses["sold_out"] == 1
    late = conn.execute(
        "SELECT count(*) FROM orders o JOIN ticket_tiers t ON t.id = o.tier_id JOIN events e ON e.id = t.event_id "
        "WHERE o.created_at > e.starts_at OR o.created_at > %s OR o.paid_at > %s OR o.refunded_at > %s",
        [NOW, NOW, NOW],
    ).fetchone()
    assert late == (0,)
    span = conn.execute("SELECT max(created_at) - min(created_at) FROM orders").fetchone()
    assert span is not None and span[0].days >= 300


def test_daily_and_weekly_seasonality(seeded: psycopg.Connection[Any]) -> None:
    by_hour = dict(
        seeded.execute(
            "SELECT extract(hour FROM created_at AT TIME ZONE 'America/New_York')::int, count(*) FROM orders GROUP BY 1"
        ).fetchall()
    )
    busiest = max(by_hour, key=by_hour.__getitem__)
    assert 11 <= busiest <= 21, by_hour
    night = sum(by_hour.get(h, 0) for h in (2, 3, 4))
    assert night < 0.02 * ORDERS, by_hour
    by_day = dict(
        seeded.execute(
            "SELECT extract(isodow FROM created_at AT TIME ZONE 'America/New_York')::int, count(*) FROM orders GROUP BY 1"
        ).fetchall()
    )
    assert by_day[6] < by_day[4], by_day  # Saturday is quieter than Thursday


def test_payments_refunds_members_and_failure_codes(seeded: psycopg.Connection[Any]) -> None:
    shares = dict(
        seeded.execute(
            "SELECT payment_status, count(*)::float / %s FROM orders GROUP BY 1", [ORDERS]
        ).fetchall()
    )
    assert 0.03 <= shares["failed"] <= 0.05
    assert 0.015 <= shares["refunded"] <= 0.04  # 2 %, plus the cancelled event's orders
    codes = {
        row[0]
        for row in seeded.execute(
            "SELECT DISTINCT failure_code FROM orders WHERE payment_status = 'failed'"
        )
    }
    assert codes <= {code for code, _ in FAILURE_CODES}
    assert "card_declined" in codes
    inconsistent = seeded.execute(
        "SELECT count(*) FROM orders WHERE (payment_status IN ('completed', 'refunded')) <> (paid_at IS NOT NULL) "
        "OR (payment_status = 'failed' AND failure_code IS NULL) "
        "OR (payment_status = 'refunded' AND refunded_amount_cents <> amount_total_cents) "
        "OR refunded_amount_cents > amount_total_cents"
    ).fetchone()
    assert inconsistent == (0,)
    partial = seeded.execute(
        "SELECT count(*) FROM orders WHERE payment_status = 'completed' AND refunded_amount_cents > 0"
    ).fetchone()
    assert partial is not None and partial[0] > 0
    members = seeded.execute("SELECT avg(is_member::int) FROM orders").fetchone()
    assert members is not None and 0.2 < members[0] < 0.3
    cancelled = seeded.execute(
        "SELECT count(*) FROM orders o JOIN ticket_tiers t ON t.id = o.tier_id JOIN events e ON e.id = t.event_id "
        "WHERE e.status = 'cancelled' AND o.payment_status = 'completed'"
    ).fetchone()
    assert cancelled == (0,), "a cancelled event's paid orders are refunded"


def test_checkout_sessions_and_webhooks(seeded: psycopg.Connection[Any]) -> None:
    sessions = dict(
        seeded.execute("SELECT status, count(*) FROM checkout_sessions GROUP BY 1").fetchall()
    )
    assert sessions["open"] >= 5 and sessions["expired"] > 0 and sessions["complete"] > 0
    abandoned = seeded.execute(
        "SELECT count(*) FROM checkout_sessions s WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.checkout_session_id = s.id)"
    ).fetchone()
    assert abandoned is not None and 0.08 * ORDERS < abandoned[0] < 0.16 * ORDERS
    hooks = dict(
        seeded.execute("SELECT provider, count(*) FROM webhook_logs GROUP BY 1").fetchall()
    )
    assert set(hooks) == {"stripe", "twilio"}
    errors = seeded.execute(
        "SELECT avg((status = 'error')::int), bool_and((status = 'error') = (last_error IS NOT NULL)) FROM webhook_logs"
    ).fetchone()
    assert errors is not None and 0.005 < errors[0] < 0.03 and errors[1]
    ordered = seeded.execute(
        "SELECT bool_and(updated_at >= created_at) FROM webhook_logs"
    ).fetchone()
    assert ordered == (True,)


def test_inventory_has_something_for_every_inventory_alert(seeded: psycopg.Connection[Any]) -> None:
    rows = seeded.execute(AVAILABLE, [NOW]).fetchall()
    on_sale = [
        (tier, available)
        for _id, status, tier, available in rows
        if status in ("on_sale", "sold_out")
    ]
    assert sum(1 for _t, a in on_sale if a < 0) == 1, "exactly one oversold tier"
    assert min(a for _t, a in on_sale) == -2
    assert sum(1 for _t, a in on_sale if a == 0) >= 2  # the sold-out event's tiers
    assert any(t == "ga" and 3 <= a <= 10 for t, a in on_sale)
    assert any(t == "vip" and 1 <= a <= 5 for t, a in on_sale)
    assert sum(1 for _t, a in on_sale if a > 20) >= len(on_sale) // 2
    capacity = seeded.execute("SELECT min(capacity) FROM ticket_tiers").fetchone()
    assert capacity is not None and capacity[0] >= 0


def test_ids_continue_after_seeding(seeded: psycopg.Connection[Any]) -> None:
    row = seeded.execute(
        "INSERT INTO events (slug, name, city, starts_at) VALUES ('x-1', 'x', 'X', now()) RETURNING id"
    ).fetchone()
    assert row is not None and row[0] > 40


def test_without_inventory_incidents_every_tier_on_sale_has_room(pg_schema: str) -> None:
    seed_database(pg_schema, orders=ORDERS, seed=3, now=NOW, inventory_incidents=False)
    with psycopg.connect(pg_schema) as conn:
        rows = conn.execute(AVAILABLE, [NOW]).fetchall()
        statuses = {r[0] for r in conn.execute("SELECT DISTINCT status FROM events").fetchall()}
    on_sale = [available for _id, status, _tier, available in rows if status == "on_sale"]
    assert on_sale
    assert min(on_sale) >= 150, "the scarcest tiers keep 150 to 250 tickets"
    assert sum(1 for a in on_sale if a <= 250) >= 2
    assert "sold_out" not in statuses
