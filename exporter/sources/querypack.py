"""The default query pack: the SQL behind every PostgreSQL metric of the catalog.

The metric itself (name, type, HELP, labels) is declared once in :mod:`exporter.catalog`;
this module adds, keyed by that name, the SQL that computes it on the reference schema and
the two knobs that depend on what the SQL returns. A query returns one column per label,
named like the label, and a numeric column named ``value``. Users with another schema
override the SQL per metric in their config; the names and labels stay, because the
generated rules depend on them.

Per-event series cover events whose sales are not closed (``status <> 'closed'``), so the
number of series follows the events on sale rather than every event ever held.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from exporter.catalog import POSTGRES_PACK, CatalogMetric

MetricKind = Literal["counter", "gauge"]
ValueUnit = Literal["plain", "minor_currency"]
Fold = Literal["sum", "drop"]


@dataclass(frozen=True, kw_only=True)
class PackSql:
    """What the pack adds to a catalog metric: its default SQL and how to read the result."""

    sql: str
    # minor_currency: the query returns minor units (cents) and a `currency` label;
    # the exporter publishes major units, so zero-decimal currencies stay right.
    unit: ValueUnit = "plain"
    # How series past the cardinality limit are folded into `other`: summed, or
    # dropped when a sum means nothing (timestamps).
    fold: Fold = "sum"


@dataclass(frozen=True, kw_only=True)
class MetricSpec:
    """A catalog metric with the SQL the pack computes it with."""

    metric: CatalogMetric
    sql: str
    unit: ValueUnit = "plain"
    fold: Fold = "sum"

    @property
    def name(self) -> str:
        """The metric's name, as exposed."""
        return self.metric.name

    @property
    def kind(self) -> MetricKind:
        """Counter or gauge (the pack has no info metrics)."""
        return "counter" if self.metric.type == "counter" else "gauge"

    @property
    def help(self) -> str:
        """The metric's HELP text."""
        return self.metric.help

    @property
    def labels(self) -> tuple[str, ...]:
        """The label names, in the order samples carry their values."""
        return self.metric.labels


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


def _breakdown(value: str, *extra: str) -> str:
    """Paid orders by city, tier, payment method and membership (catalog.BREAKDOWN)."""
    columns = "".join(f", {column}" for column in extra)
    groups = ", ".join(str(i) for i in range(1, 5 + len(extra)))
    return f"""
SELECT e.city, t.tier, lower(COALESCE(NULLIF(o.payment_method, ''), 'unknown')) AS payment_method,
       o.is_member::text AS member{columns}, {value} AS value
FROM orders o
JOIN ticket_tiers t ON t.id = o.tier_id
JOIN events e ON e.id = t.event_id
WHERE o.paid_at IS NOT NULL
GROUP BY {groups}"""


_SQL: dict[str, PackSql] = {
    "boxoffice_tickets_sold_total": PackSql(
        sql=f"""
SELECT e.slug AS event, e.city, t.tier, {_tier_sum("orders", "o", _SOLD)} AS value
{_LIVE_TIERS}"""
    ),
    "boxoffice_tickets_refunded_total": PackSql(
        sql=f"""
SELECT e.slug AS event, e.city, t.tier, {_tier_sum("orders", "o", _REFUNDED)} AS value
{_LIVE_TIERS}"""
    ),
    "boxoffice_inventory_capacity_tickets": PackSql(
        sql=f"""
SELECT e.slug AS event, e.city, t.tier, t.capacity AS value
{_LIVE_TIERS}"""
    ),
    "boxoffice_inventory_reserved_tickets": PackSql(
        sql=f"""
SELECT e.slug AS event, e.city, t.tier, {_tier_sum("checkout_sessions", "s", _RESERVED)} AS value
{_LIVE_TIERS}"""
    ),
    "boxoffice_inventory_available_tickets": PackSql(
        sql=f"""
SELECT e.slug AS event, e.city, t.tier,
       t.capacity
       - {_tier_sum("orders", "o", _SOLD)}
       + {_tier_sum("orders", "o", _REFUNDED)}
       - {_tier_sum("checkout_sessions", "s", _RESERVED)} AS value
{_LIVE_TIERS}"""
    ),
    "boxoffice_event_start_timestamp_seconds": PackSql(
        sql="""
SELECT e.slug AS event, e.city, extract(epoch FROM e.starts_at) AS value
FROM events e
WHERE e.status <> 'closed'""",
        fold="drop",
    ),
    "boxoffice_payments_total": PackSql(
        sql="""
SELECT count(*) AS value
FROM orders
WHERE paid_at IS NOT NULL OR payment_status = 'failed'"""
    ),
    "boxoffice_payments_failed_total": PackSql(
        sql="""
SELECT COALESCE(NULLIF(failure_code, ''), 'unknown') AS failure_code, count(*) AS value
FROM orders
WHERE payment_status = 'failed'
GROUP BY 1"""
    ),
    "boxoffice_revenue_total": PackSql(
        sql="""
SELECT lower(currency) AS currency, sum(amount_total_cents) AS value
FROM orders
WHERE paid_at IS NOT NULL
GROUP BY 1""",
        unit="minor_currency",
    ),
    "boxoffice_orders_paid_total": PackSql(
        sql=_breakdown("count(*)", "lower(o.currency) AS currency")
    ),
    "boxoffice_orders_paid_tickets_total": PackSql(sql=_breakdown("sum(o.quantity)")),
    "boxoffice_orders_paid_revenue_total": PackSql(
        sql=_breakdown("sum(o.amount_total_cents)", "lower(o.currency) AS currency"),
        unit="minor_currency",
    ),
    "boxoffice_refunds_total": PackSql(
        sql="""
SELECT lower(currency) AS currency, sum(refunded_amount_cents) AS value
FROM orders
WHERE refunded_amount_cents > 0
GROUP BY 1""",
        unit="minor_currency",
    ),
    "boxoffice_last_paid_order_timestamp_seconds": PackSql(
        sql="""
SELECT extract(epoch FROM max(paid_at)) AS value
FROM orders
WHERE paid_at IS NOT NULL"""
    ),
    "boxoffice_checkout_sessions_created_total": PackSql(
        sql="SELECT count(*) AS value FROM checkout_sessions"
    ),
    "boxoffice_checkout_sessions_completed_total": PackSql(
        sql="SELECT count(*) AS value FROM checkout_sessions WHERE status = 'complete'"
    ),
    "boxoffice_checkout_sessions_expired_total": PackSql(
        sql="SELECT count(*) AS value FROM checkout_sessions WHERE status = 'expired'"
    ),
    "boxoffice_checkout_sessions_open": PackSql(
        sql="""
SELECT count(*) AS value
FROM checkout_sessions
WHERE status = 'open' AND expires_at > now()"""
    ),
    "boxoffice_webhook_events_total": PackSql(
        sql="""
SELECT provider, count(*) AS value
FROM webhook_logs
GROUP BY provider"""
    ),
    "boxoffice_webhook_events_failed_total": PackSql(
        sql="""
SELECT provider, count(*) FILTER (WHERE status = 'error') AS value
FROM webhook_logs
GROUP BY provider"""
    ),
}

DEFAULT_PACK: tuple[MetricSpec, ...] = tuple(
    MetricSpec(metric=metric, sql=q.sql, unit=q.unit, fold=q.fold)
    for metric in POSTGRES_PACK
    for q in (_SQL[metric.name],)
)
DEFAULT_PACK_BY_NAME: dict[str, MetricSpec] = {spec.name: spec for spec in DEFAULT_PACK}


@dataclass(frozen=True, kw_only=True)
class BoundQuery:
    """A pack metric on the database it reads, with the SQL that runs there."""

    spec: MetricSpec
    database: str
    sql: str  # the pack's or the user's, without a trailing semicolon
    overridden: bool  # the user replaced the pack's SQL


def bind(name: str, *, database: str, sql: str | None) -> BoundQuery:
    """The pack metric ``name`` on ``database``, running the user's ``sql`` if given."""
    spec = DEFAULT_PACK_BY_NAME[name]
    return BoundQuery(
        spec=spec,
        database=database,
        sql=sql if sql is not None else spec.sql.strip().rstrip(";"),
        overridden=sql is not None,
    )
