"""The default query pack: every PostgreSQL metric of the catalog, on the reference schema.

Each entry says what the metric means (its HELP line), its labels, and the SQL that computes
it on the reference schema. A query returns one column per label, named like the label, and
a numeric column named ``value``. Users with another schema override the SQL per metric in
their config; the names and labels stay, because the generated rules depend on them.

Per-event series cover events whose sales are not closed (``status <> 'closed'``), so the
number of series follows the events on sale rather than every event ever held.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricKind = Literal["counter", "gauge"]
ValueUnit = Literal["plain", "minor_currency"]
Fold = Literal["sum", "drop"]


@dataclass(frozen=True)
class MetricSpec:
    """One metric of the catalog: its contract with users and its default SQL."""

    name: str
    kind: MetricKind
    help: str
    labels: tuple[str, ...]
    sql: str
    # minor_currency: the query returns minor units (cents) and a `currency` label;
    # the exporter publishes major units, so zero-decimal currencies stay right.
    unit: ValueUnit = "plain"
    # How series past the cardinality limit are folded into `other`: summed, or
    # dropped when a sum means nothing (timestamps).
    fold: Fold = "sum"


_LIVE_TIERS = """
FROM ticket_tiers t
JOIN events e ON e.id = t.event_id
WHERE e.status <> 'closed'
"""

_SOLD = "o.tier_id = t.id AND o.paid_at IS NOT NULL"
_REFUNDED = "o.tier_id = t.id AND o.paid_at IS NOT NULL AND o.payment_status = 'refunded'"
_RESERVED = "s.tier_id = t.id AND s.status = 'open' AND s.expires_at > now()"


def _tier_sum(table: str, alias: str, condition: str) -> str:
    return f"COALESCE((SELECT sum({alias}.quantity) FROM {table} {alias} WHERE {condition}), 0)"


DEFAULT_PACK: tuple[MetricSpec, ...] = (
    MetricSpec(
        name="boxoffice_tickets_sold_total",
        kind="counter",
        help="Tickets in orders that were ever paid, per event, city and tier.",
        labels=("event", "city", "tier"),
        sql=f"""
SELECT e.slug AS event, e.city, t.tier, {_tier_sum("orders", "o", _SOLD)} AS value
{_LIVE_TIERS}""",
    ),
    MetricSpec(
        name="boxoffice_tickets_refunded_total",
        kind="counter",
        help="Tickets in paid orders that were refunded, per event, city and tier.",
        labels=("event", "city", "tier"),
        sql=f"""
SELECT e.slug AS event, e.city, t.tier, {_tier_sum("orders", "o", _REFUNDED)} AS value
{_LIVE_TIERS}""",
    ),
    MetricSpec(
        name="boxoffice_inventory_capacity_tickets",
        kind="gauge",
        help="Public ticket limit of a tier (ticket_tiers.capacity).",
        labels=("event", "city", "tier"),
        sql=f"""
SELECT e.slug AS event, e.city, t.tier, t.capacity AS value
{_LIVE_TIERS}""",
    ),
    MetricSpec(
        name="boxoffice_inventory_reserved_tickets",
        kind="gauge",
        help="Tickets held by open, unexpired checkout sessions.",
        labels=("event", "city", "tier"),
        sql=f"""
SELECT e.slug AS event, e.city, t.tier, {_tier_sum("checkout_sessions", "s", _RESERVED)} AS value
{_LIVE_TIERS}""",
    ),
    MetricSpec(
        name="boxoffice_inventory_available_tickets",
        kind="gauge",
        help=(
            "Tickets still for sale: capacity - sold + refunded - reserved. "
            "Negative means the tier is oversold."
        ),
        labels=("event", "city", "tier"),
        sql=f"""
SELECT e.slug AS event, e.city, t.tier,
       t.capacity
       - {_tier_sum("orders", "o", _SOLD)}
       + {_tier_sum("orders", "o", _REFUNDED)}
       - {_tier_sum("checkout_sessions", "s", _RESERVED)} AS value
{_LIVE_TIERS}""",
    ),
    MetricSpec(
        name="boxoffice_event_start_timestamp_seconds",
        kind="gauge",
        help="When the event starts, as a Unix timestamp.",
        labels=("event", "city"),
        sql="""
SELECT e.slug AS event, e.city, extract(epoch FROM e.starts_at) AS value
FROM events e
WHERE e.status <> 'closed'""",
        fold="drop",
    ),
    MetricSpec(
        name="boxoffice_payments_total",
        kind="counter",
        help="Orders whose payment reached a terminal state (paid at some point, or failed).",
        labels=(),
        sql="""
SELECT count(*) AS value
FROM orders
WHERE paid_at IS NOT NULL OR payment_status = 'failed'""",
    ),
    MetricSpec(
        name="boxoffice_payments_failed_total",
        kind="counter",
        help="Orders whose payment failed, by Stripe failure code ('unknown' when none).",
        labels=("failure_code",),
        sql="""
SELECT COALESCE(NULLIF(failure_code, ''), 'unknown') AS failure_code, count(*) AS value
FROM orders
WHERE payment_status = 'failed'
GROUP BY 1""",
    ),
    MetricSpec(
        name="boxoffice_revenue_total",
        kind="counter",
        help="Gross revenue of paid orders, in major currency units.",
        labels=("currency",),
        sql="""
SELECT lower(currency) AS currency, sum(amount_total_cents) AS value
FROM orders
WHERE paid_at IS NOT NULL
GROUP BY 1""",
        unit="minor_currency",
    ),
    MetricSpec(
        name="boxoffice_refunds_total",
        kind="counter",
        help="Amount refunded to buyers (full and partial refunds), in major currency units.",
        labels=("currency",),
        sql="""
SELECT lower(currency) AS currency, sum(refunded_amount_cents) AS value
FROM orders
WHERE refunded_amount_cents > 0
GROUP BY 1""",
        unit="minor_currency",
    ),
    MetricSpec(
        name="boxoffice_last_paid_order_timestamp_seconds",
        kind="gauge",
        help="When the most recent order was paid, as a Unix timestamp.",
        labels=(),
        sql="""
SELECT extract(epoch FROM max(paid_at)) AS value
FROM orders
WHERE paid_at IS NOT NULL""",
    ),
    MetricSpec(
        name="boxoffice_checkout_sessions_created_total",
        kind="counter",
        help="Stripe Checkout sessions created.",
        labels=(),
        sql="SELECT count(*) AS value FROM checkout_sessions",
    ),
    MetricSpec(
        name="boxoffice_checkout_sessions_completed_total",
        kind="counter",
        help="Checkout sessions that completed (status 'complete').",
        labels=(),
        sql="SELECT count(*) AS value FROM checkout_sessions WHERE status = 'complete'",
    ),
    MetricSpec(
        name="boxoffice_checkout_sessions_expired_total",
        kind="counter",
        help="Checkout sessions that expired without completing.",
        labels=(),
        sql="SELECT count(*) AS value FROM checkout_sessions WHERE status = 'expired'",
    ),
    MetricSpec(
        name="boxoffice_checkout_sessions_open",
        kind="gauge",
        help="Checkout sessions open right now (status 'open' and not past expires_at).",
        labels=(),
        sql="""
SELECT count(*) AS value
FROM checkout_sessions
WHERE status = 'open' AND expires_at > now()""",
    ),
    MetricSpec(
        name="boxoffice_webhook_events_total",
        kind="counter",
        help="Webhook deliveries logged by the ticket app, per provider.",
        labels=("provider",),
        sql="""
SELECT provider, count(*) AS value
FROM webhook_logs
GROUP BY provider""",
    ),
    MetricSpec(
        name="boxoffice_webhook_events_failed_total",
        kind="counter",
        help="Webhook deliveries whose processing ended in an error, per provider.",
        labels=("provider",),
        sql="""
SELECT provider, count(*) FILTER (WHERE status = 'error') AS value
FROM webhook_logs
GROUP BY provider""",
    ),
)

DEFAULT_PACK_BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in DEFAULT_PACK}
