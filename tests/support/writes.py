"""A live shop's writes on the reference schema, stamped with the database's ``now()``.

Each call of :func:`write_sales` commits a handful of transactions that follow the data
contract of docs/incremental.md: a paid order with its completed session, a pending order
that fails, a partial refund, an expired session and webhook deliveries.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg


def write_sales(conn: psycopg.Connection[Any], k: int) -> None:
    """One round of sales on an autocommit connection to the primary."""
    row = conn.execute(
        "SELECT t.id FROM ticket_tiers t JOIN events e ON e.id = t.event_id "
        "WHERE e.status <> 'closed' ORDER BY t.id OFFSET %s LIMIT 1",
        [k % 3],
    ).fetchone()
    assert row is not None
    tier = row[0]
    paid, pending, gone = (f"cs_test_{uuid.uuid4().hex[:16]}" for _ in range(3))
    quantity = 1 + k % 3
    conn.execute(
        "INSERT INTO checkout_sessions (id, tier_id, quantity, status, completed_at) "
        "VALUES (%s, %s, %s, 'complete', now())",
        [paid, tier, quantity],
    )
    conn.execute(
        "INSERT INTO orders (checkout_session_id, tier_id, quantity, amount_total_cents, "
        "currency, payment_status, paid_at) VALUES (%s, %s, %s, %s, %s, 'completed', now())",
        [paid, tier, quantity, quantity * 4900 + k, ("usd", "eur", "jpy")[k % 3]],
    )
    conn.execute(
        "INSERT INTO checkout_sessions (id, tier_id, quantity) VALUES (%s, %s, 1)", [pending, tier]
    )
    conn.execute(
        "INSERT INTO orders (checkout_session_id, tier_id, quantity, amount_total_cents) "
        "VALUES (%s, %s, 1, 4900)",
        [pending, tier],
    )
    # The oldest pending order of the last day fails: one the exporter may be watching.
    # (Changes to rows older than track_for are reconciliation's, not tested here.)
    conn.execute(
        "UPDATE orders SET payment_status = 'failed', failure_code = %s "
        "WHERE id = (SELECT min(id) FROM orders WHERE payment_status = 'pending' "
        "AND created_at > now() - interval '1 day')",
        [("card_declined", "processing_error")[k % 2]],
    )
    # A partial refund of the oldest paid order not refunded yet.
    conn.execute(
        "UPDATE orders SET refunded_at = now(), "
        "refunded_amount_cents = refunded_amount_cents + greatest(1, amount_total_cents / 4) "
        "WHERE id = (SELECT min(id) FROM orders WHERE payment_status = 'completed' "
        "AND (refunded_at IS NULL OR refunded_at > now() - interval '1 day') "
        "AND refunded_amount_cents + greatest(1, amount_total_cents / 4) < amount_total_cents)"
    )
    conn.execute(
        "INSERT INTO checkout_sessions (id, tier_id, quantity, status, expires_at) "
        "VALUES (%s, %s, 1, 'expired', now())",
        [gone, tier],
    )
    conn.execute(
        "INSERT INTO webhook_logs (provider, event_type, status) VALUES "
        "('stripe', 'charge.succeeded', 'processed'), ('twilio', 'sms.status', %s)",
        [("processed", "error")[k % 2]],
    )
