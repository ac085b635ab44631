"""The change streams incremental collection reads, and the pure folding of their rows.

Each stream is one indexed timestamp of the reference schema. A cycle reads only the rows
whose timestamp is at or after the boundary ``since`` and splits them at ``settle``: rows
before ``settle`` are added to the settled totals for good, later ones are recounted next
cycle. ``since=None`` is the full computation (at start, and for reconciliation with
``settle=infinity``). Totals are exact integers (counts and minor currency units) keyed by
a tuple naming the quantity and its key, e.g. ``("sold", "42")`` for tier 42.

docs/incremental.md explains the method and the contract the data must honour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

BEGINNING = datetime.min.replace(tzinfo=UTC)
END_OF_TIME = datetime.max.replace(tzinfo=UTC)

Key = tuple[str, ...]
Totals = dict[Key, int]

# Quantities, by the metric(s) they feed.
PAID = "paid"  # orders ever paid (count)
SOLD = "sold"  # tickets in paid orders, per tier_id
REVENUE = "revenue"  # amount_total_cents of paid orders, per currency
FAILED = "failed"  # failed orders, per failure code
REFUNDED_TICKETS = "refunded_tickets"  # tickets in refunded paid orders, per tier_id
REFUNDED_AMOUNT = "refunded_amount"  # refunded_amount_cents, per currency
SESSIONS_CREATED = "sessions_created"
SESSIONS_COMPLETED = "sessions_completed"
SESSIONS_EXPIRED = "sessions_expired"
WEBHOOKS = "webhooks"  # per provider
WEBHOOKS_FAILED = "webhooks_failed"  # per provider
# The breakdowns of paid orders, keyed by (city, tier, payment_method, member), orders and
# revenue also by currency (their ratio is the average order value): the same rows as
# PAID/SOLD/REVENUE, split the way owners ask.
ORDERS_BY = "orders_by"
TICKETS_BY = "tickets_by"
REVENUE_BY = "revenue_by"


@dataclass(frozen=True)
class Bounds:
    """Where one cycle reads: from ``since`` (None: everything), settling before ``settle``."""

    since: datetime | None
    settle: datetime
    keep: datetime  # transitions of rows older than this are left to reconciliation

    def params(self) -> dict[str, Any]:
        """Query parameters; a missing lower bound reads from the beginning of time."""
        return {
            "full": self.since is None,
            "since": self.since if self.since is not None else BEGINNING,
            "settle": self.settle,
            "keep": self.keep,
            # Row-level refunds: every row of the window once a boundary exists, so
            # that an order refunded again can be told apart from a new refund.
            "rowlevel": self.since if self.since is not None else self.settle,
        }


@dataclass(frozen=True)
class Query:
    """One statement of a stream, with the index that keeps it off a sequential scan."""

    name: str
    sql: str
    index: str  # CREATE INDEX statement `boxoffice check` suggests when it is missing


# A full read passes the beginning of time as the lower bound; the partial indexes still
# apply because their predicates are repeated in each statement.
# Aggregated before the join, so that the orders are read through the paid_at index only;
# a tier's city and name come from the small tier and event tables.
PAID_SQL = Query(
    "paid orders",
    """
SELECT p.settling, p.tier_id::text, p.currency, e.city, t.tier, p.method, p.member,
       p.orders, p.tickets, p.amount
FROM (
  SELECT paid_at < %(settle)s AS settling, tier_id, lower(currency) AS currency,
         lower(COALESCE(NULLIF(payment_method, ''), 'unknown')) AS method,
         is_member::text AS member,
         count(*) AS orders, sum(quantity) AS tickets, sum(amount_total_cents) AS amount
  FROM orders
  WHERE paid_at IS NOT NULL AND paid_at >= %(since)s
  GROUP BY 1, 2, 3, 4, 5
) p
JOIN ticket_tiers t ON t.id = p.tier_id
JOIN events e ON e.id = t.event_id""",
    "CREATE INDEX orders_paid_at_idx ON orders (paid_at) WHERE paid_at IS NOT NULL",
)

FAILED_SQL = Query(
    "failed orders",
    """
SELECT created_at < %(settle)s AS settling, COALESCE(NULLIF(failure_code, ''), 'unknown'),
       count(*)
FROM orders
WHERE payment_status = 'failed' AND created_at >= %(since)s
GROUP BY 1, 2""",
    "CREATE INDEX orders_failed_idx ON orders (created_at) WHERE payment_status = 'failed'",
)

# Pending orders whose creation settles: they may still fail, so they are watched by id.
PENDING_SETTLING_SQL = Query(
    "pending orders settling",
    """
SELECT id, created_at
FROM orders
WHERE payment_status = 'pending' AND created_at >= %(since)s AND created_at < %(settle)s
  AND created_at >= %(keep)s""",
    "CREATE INDEX orders_pending_idx ON orders (created_at) WHERE payment_status = 'pending'",
)

PENDING_RESOLVED_SQL = Query(
    "watched pending orders",
    """
SELECT id, payment_status, COALESCE(NULLIF(failure_code, ''), 'unknown')
FROM orders
WHERE id = ANY(%(ids)s) AND payment_status <> 'pending'""",
    "",  # primary key
)

REFUNDS_SQL = Query(
    "refunds",
    """
SELECT CASE WHEN refunded_at >= %(rowlevel)s
              OR (payment_status <> 'refunded' AND refunded_at >= %(keep)s) THEN id END,
       refunded_at < %(settle)s AS settling, tier_id::text, lower(currency),
       sum(quantity) FILTER (WHERE payment_status = 'refunded' AND paid_at IS NOT NULL),
       sum(refunded_amount_cents) FILTER (WHERE refunded_amount_cents > 0),
       bool_and(payment_status <> 'refunded'), max(refunded_at)
FROM orders
WHERE refunded_at IS NOT NULL AND refunded_at >= %(since)s
GROUP BY 1, 2, 3, 4""",
    "CREATE INDEX orders_refunded_at_idx ON orders (refunded_at) WHERE refunded_at IS NOT NULL",
)

SESSIONS_CREATED_SQL = Query(
    "checkout sessions created",
    """
SELECT created_at < %(settle)s AS settling, count(*)
FROM checkout_sessions
WHERE created_at >= %(since)s
GROUP BY 1""",
    "CREATE INDEX checkout_sessions_created_at_idx ON checkout_sessions (created_at)",
)

# A completed session without completed_at still counts, as in the default query pack;
# it is settled at once (its NULL comparison is treated as settling).
SESSIONS_COMPLETED_SQL = Query(
    "checkout sessions completed",
    """
SELECT COALESCE(completed_at < %(settle)s, true) AS settling, count(*)
FROM checkout_sessions
WHERE status = 'complete'
  AND (completed_at >= %(since)s OR (completed_at IS NULL AND %(full)s))
GROUP BY 1""",
    "CREATE INDEX checkout_sessions_completed_idx ON checkout_sessions (completed_at) "
    "WHERE status = 'complete'",
)

SESSIONS_EXPIRED_SQL = Query(
    "checkout sessions expired",
    """
SELECT expires_at < %(settle)s AS settling, count(*)
FROM checkout_sessions
WHERE status = 'expired' AND expires_at >= %(since)s
GROUP BY 1""",
    "CREATE INDEX checkout_sessions_expired_idx ON checkout_sessions (expires_at) "
    "WHERE status = 'expired'",
)

# Open sessions whose expiry settles: they may still be marked expired, so they are watched.
OPEN_SETTLING_SQL = Query(
    "open checkout sessions settling",
    """
SELECT id, expires_at
FROM checkout_sessions
WHERE status = 'open' AND expires_at >= %(since)s AND expires_at < %(settle)s
  AND expires_at >= %(keep)s""",
    "CREATE INDEX checkout_sessions_open_expires_idx ON checkout_sessions (expires_at) "
    "WHERE status = 'open'",
)

OPEN_RESOLVED_SQL = Query(
    "watched open checkout sessions",
    """
SELECT id, status
FROM checkout_sessions
WHERE id = ANY(%(ids)s) AND status <> 'open'""",
    "",  # primary key
)

WEBHOOKS_SQL = Query(
    "webhook logs",
    """
SELECT created_at < %(settle)s AS settling, provider,
       count(*), count(*) FILTER (WHERE status = 'error')
FROM webhook_logs
WHERE created_at >= %(since)s
GROUP BY 1, 2""",
    "CREATE INDEX webhook_logs_created_at_idx ON webhook_logs (created_at)",
)

# Per-tier labels, capacity and reservations of events on sale: a small table and the
# open-sessions index, read whole every cycle like the default pack does. Columns are
# named like the fields of engine_series.Tier, which reads them with class_row.
TIERS_SQL = Query(
    "live tiers",
    """
SELECT t.id::text AS tier_id, e.slug AS event, e.city, t.tier, t.capacity,
       COALESCE((SELECT sum(s.quantity) FROM checkout_sessions s
                 WHERE s.tier_id = t.id AND s.status = 'open' AND s.expires_at > now()), 0)
         AS reserved
FROM ticket_tiers t
JOIN events e ON e.id = t.event_id
WHERE e.status <> 'closed'
ORDER BY t.id""",
    "CREATE INDEX checkout_sessions_open_idx ON checkout_sessions (tier_id, expires_at) "
    "WHERE status = 'open'",
)

# The aggregate streams, in the order a cycle runs them.
AGGREGATES: tuple[Query, ...] = (
    PAID_SQL,
    FAILED_SQL,
    REFUNDS_SQL,
    SESSIONS_CREATED_SQL,
    SESSIONS_COMPLETED_SQL,
    SESSIONS_EXPIRED_SQL,
    WEBHOOKS_SQL,
)


def add(totals: Totals, key: Key, amount: int) -> None:
    """Add ``amount`` under ``key``; a zero amount still records that the series exists."""
    totals[key] = totals.get(key, 0) + amount


def merged(*parts: Mapping[Key, int]) -> Totals:
    """The key-wise sum of several totals (the first copied whole: it is the big one)."""
    if not parts:
        return {}
    out: Totals = dict(parts[0])
    for part in parts[1:]:
        for key, amount in part.items():
            out[key] = out.get(key, 0) + amount
    return out


@dataclass
class Split:
    """Rows of one cycle: what settles for good, and what is recounted next cycle."""

    settled: Totals
    window: Totals

    def target(self, settling: bool) -> Totals:
        """Where a row lands."""
        return self.settled if settling else self.window


def fold_paid(rows: Iterable[tuple[Any, ...]], split: Split) -> None:
    """(settling, tier_id, currency, city, tier, method, member, orders, tickets, amount)."""
    for settling, tier_id, currency, *breakdown, orders, tickets, amount in rows:
        into = split.target(settling)
        add(into, (PAID,), int(orders))
        add(into, (SOLD, tier_id), int(tickets))
        add(into, (REVENUE, currency), int(amount))
        add(into, (ORDERS_BY, *breakdown, currency), int(orders))
        add(into, (TICKETS_BY, *breakdown), int(tickets))
        add(into, (REVENUE_BY, *breakdown, currency), int(amount))


def fold_failed(rows: Iterable[tuple[Any, ...]], split: Split) -> None:
    """(settling, failure_code, orders) rows."""
    for settling, code, orders in rows:
        add(split.target(settling), (FAILED, code), int(orders))


def fold_counts(quantity: str, rows: Iterable[tuple[Any, ...]], split: Split) -> None:
    """(settling, count) rows of a label-less counter."""
    for settling, count in rows:
        add(split.target(settling), (quantity,), int(count))


def fold_webhooks(rows: Iterable[tuple[Any, ...]], split: Split) -> None:
    """(settling, provider, deliveries, failed) rows."""
    for settling, provider, deliveries, failed in rows:
        into = split.target(settling)
        add(into, (WEBHOOKS, provider), int(deliveries))
        add(into, (WEBHOOKS_FAILED, provider), int(failed))


@dataclass(frozen=True)
class RefundMemo:
    """What a partly refunded order already added to the settled totals."""

    refunded_at: datetime
    tickets: int
    amount: int


def fold_refunds(
    rows: Iterable[tuple[Any, ...]], split: Split, memos: dict[int, RefundMemo]
) -> None:
    """(id or NULL, settling, tier_id, currency, tickets, amount, can_grow, refunded_at) rows.

    An order refunded in parts updates ``refunded_at`` with each refund and so comes back
    into the window after its first part settled: only what it adds beyond the memo counts.
    ``memos`` is updated in place for the rows that settle.
    """
    for order_id, settling, tier, currency, raw_tickets, raw_amount, can_grow, at in rows:
        tickets, amount = int(raw_tickets or 0), int(raw_amount or 0)
        memo = memos.get(order_id) if order_id is not None else None
        into = split.target(settling)
        add(into, (REFUNDED_TICKETS, tier), tickets - (memo.tickets if memo else 0))
        if amount or memo:
            add(into, (REFUNDED_AMOUNT, currency), amount - (memo.amount if memo else 0))
        if order_id is None or not settling:
            continue
        if can_grow:
            memos[order_id] = RefundMemo(at, tickets, amount)
        else:
            memos.pop(order_id, None)
