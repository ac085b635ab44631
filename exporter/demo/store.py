"""The simulator's writes to the reference schema, each one a legal step of the write contract.

docs/incremental.md: orders are inserted pending and become completed (setting paid_at) or
failed; a refund sets refunded_at each time; sessions are inserted open and become complete
or expired; a webhook row is final when inserted. Timestamps are the transaction's now().
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import class_row


@dataclass(frozen=True, kw_only=True)
class TierRow:
    """An on-sale ticket tier with what is left of it right now."""

    id: int
    event: str
    city: str
    tier: str
    price_cents: int
    currency: str
    capacity: int
    taken: int  # sold - refunded + reserved by open sessions


_TIERS = """
SELECT t.id, e.slug AS event, e.city, t.tier, t.price_cents,
       COALESCE((SELECT o.currency FROM orders o WHERE o.tier_id = t.id LIMIT 1),
                'usd') AS currency,
       t.capacity,
       (COALESCE((SELECT sum(o.quantity) FROM orders o
                   WHERE o.tier_id = t.id AND o.paid_at IS NOT NULL
                     AND o.payment_status <> 'refunded'), 0)
        + COALESCE((SELECT sum(s.quantity) FROM checkout_sessions s
                     WHERE s.tier_id = t.id AND s.status = 'open' AND s.expires_at > now()), 0)
       )::int AS taken
FROM ticket_tiers t JOIN events e ON e.id = t.event_id
WHERE e.status = 'on_sale' AND e.starts_at > now()
ORDER BY t.id
"""


class ShopWriter:
    """Writes on one connection; the caller groups them in transactions."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def on_sale_tiers(self) -> list[TierRow]:
        with self.conn.cursor(row_factory=class_row(TierRow)) as cur:
            return cur.execute(_TIERS).fetchall()

    def open_session(self, session_id: str, tier_id: int, quantity: int, ttl: float) -> None:
        self.conn.execute(
            "INSERT INTO checkout_sessions (id, tier_id, quantity, status, created_at, expires_at) "
            "VALUES (%s, %s, %s, 'open', now(), now() + make_interval(secs => %s))",
            [session_id, tier_id, quantity, ttl],
        )

    def place_order(
        self,
        session_id: str,
        tier_id: int,
        quantity: int,
        amount_cents: int,
        currency: str,
        method: str,
        is_member: bool,
        email: str,
    ) -> int:
        row = self.conn.execute(
            "INSERT INTO orders (checkout_session_id, tier_id, quantity, amount_total_cents, "
            "currency, payment_status, payment_method, is_member, customer_email, created_at) "
            "VALUES (%s, %s, %s, %s, %s, 'pending', %s, %s, %s, now()) RETURNING id",
            [session_id, tier_id, quantity, amount_cents, currency, method, is_member, email],
        ).fetchone()
        assert row is not None
        return int(row[0])

    def pay(self, order_id: int, session_id: str) -> None:
        self.conn.execute(
            "UPDATE orders SET payment_status = 'completed', paid_at = now() "
            "WHERE id = %s AND payment_status = 'pending'",
            [order_id],
        )
        self.conn.execute(
            "UPDATE checkout_sessions SET status = 'complete', completed_at = now() "
            "WHERE id = %s AND status = 'open'",
            [session_id],
        )

    def fail(self, order_id: int, failure_code: str) -> None:
        self.conn.execute(
            "UPDATE orders SET payment_status = 'failed', failure_code = %s "
            "WHERE id = %s AND payment_status = 'pending'",
            [failure_code, order_id],
        )

    def expire(self, session_id: str, *, now: bool = False) -> None:
        """Expire an open session; ``now`` expires it early, as Stripe's expire call does."""
        self.conn.execute(
            "UPDATE checkout_sessions SET status = 'expired'"
            + (", expires_at = least(expires_at, now())" if now else "")
            + " WHERE id = %s AND status = 'open'",
            [session_id],
        )

    def refund(self, order_id: int, amount_cents: int, full: bool) -> None:
        self.conn.execute(
            "UPDATE orders SET refunded_at = now(), "
            "refunded_amount_cents = refunded_amount_cents + %s, "
            "payment_status = CASE WHEN %s THEN 'refunded' ELSE payment_status END "
            "WHERE id = %s AND payment_status = 'completed'",
            [amount_cents, full, order_id],
        )

    def webhook(self, provider: str, event_type: str, error: str | None) -> None:
        self.conn.execute(
            "INSERT INTO webhook_logs (provider, event_type, status, last_error, created_at, "
            "updated_at) VALUES (%s, %s, %s, %s, now(), now())",
            [provider, event_type, "error" if error else "processed", error],
        )

    def settle_abandoned(self) -> tuple[int, int]:
        """What a simulator cut off by a lost connection left in flight: its pending payments
        fail (the processor timed out) and its open sessions expire now. Returns the counts."""
        failed = self.conn.execute(
            "UPDATE orders SET payment_status = 'failed', failure_code = 'processing_error' "
            "WHERE payment_status = 'pending' AND checkout_session_id LIKE 'cs_demo_%'"
        ).rowcount
        expired = self.conn.execute(
            "UPDATE checkout_sessions SET status = 'expired', "
            "expires_at = least(expires_at, now()) WHERE status = 'open' AND id LIKE 'cs_demo_%'"
        ).rowcount
        return failed, expired

    def add_seats(self, tier_id: int, seats: int) -> None:
        """The seller's fix for an oversold tier: a bigger room."""
        self.conn.execute(
            "UPDATE ticket_tiers SET capacity = capacity + %s WHERE id = %s", [seats, tier_id]
        )
