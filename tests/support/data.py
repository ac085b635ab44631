"""Tiny writers for the reference schema, for tests that script sales step by step."""

from __future__ import annotations

import itertools
from typing import Any

import psycopg

_ids = itertools.count(1)


def add_event(
    conn: psycopg.Connection[Any],
    slug: str,
    city: str,
    *,
    status: str = "on_sale",
    days_ahead: int = 30,
) -> int:
    """Insert an event starting ``days_ahead`` days from now; return its id."""
    row = conn.execute(
        "INSERT INTO events (slug, name, city, starts_at, status) "
        "VALUES (%s, %s, %s, now() + make_interval(days => %s), %s) RETURNING id",
        [slug, f"Workshop {city}", city, days_ahead, status],
    ).fetchone()
    assert row is not None
    return int(row[0])


def add_tier(
    conn: psycopg.Connection[Any], event_id: int, tier: str, *, price_cents: int, capacity: int
) -> int:
    """Insert a ticket tier; return its id."""
    row = conn.execute(
        "INSERT INTO ticket_tiers (event_id, tier, price_cents, capacity) VALUES (%s, %s, %s, %s) RETURNING id",
        [event_id, tier, price_cents, capacity],
    ).fetchone()
    assert row is not None
    return int(row[0])


def add_order(
    conn: psycopg.Connection[Any],
    tier_id: int,
    *,
    quantity: int,
    amount_cents: int,
    currency: str = "usd",
    status: str = "pending",
    failure_code: str | None = None,
) -> int:
    """Insert an order (paid_at set when status is completed); return its id."""
    row = conn.execute(
        "INSERT INTO orders (tier_id, quantity, amount_total_cents, currency, payment_status, "
        "failure_code, customer_email, paid_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, CASE WHEN %s = 'completed' THEN now() END) RETURNING id",
        [
            tier_id,
            quantity,
            amount_cents,
            currency,
            status,
            failure_code,
            f"buyer{next(_ids)}@example.com",
            status,
        ],
    ).fetchone()
    assert row is not None
    return int(row[0])


def add_session(
    conn: psycopg.Connection[Any], tier_id: int, *, quantity: int, status: str = "open"
) -> str:
    """Insert a checkout session that expires in 30 minutes; return its id."""
    session_id = f"cs_test_{next(_ids):08d}"
    conn.execute(
        "INSERT INTO checkout_sessions (id, tier_id, quantity, status) VALUES (%s, %s, %s, %s)",
        [session_id, tier_id, quantity, status],
    )
    return session_id
