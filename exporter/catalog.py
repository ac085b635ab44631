"""Every metric the exporter publishes (SPEC 4.2): name, type, HELP text and labels.

This is the one declaration of the metric contract. The sources and the exposition build
their families from these entries, the query pack adds only SQL keyed by their names, and
the rule generator checks every selector against them. It imports nothing else of the
package (nor psycopg or prometheus_client), so the offline ``boxoffice generate`` and the
configuration can read it without loading the collectors.

Generated rules may only reference these, recording rules generated beside them, or app
metrics declared in thresholds.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["counter", "gauge", "info"]


@dataclass(frozen=True, kw_only=True)
class CatalogMetric:
    """One published metric: what rules may select and by which labels they aggregate."""

    name: str  # as exposed: counters end in _total, info metrics in _info
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    source: str


# The `reason` label values of boxoffice_source_errors_total.
# rate_limited: the API answered 429; http: any other unexpected HTTP status (5xx, 404);
# decode: a body that is not the JSON expected; auth: the key or token was refused.
REASONS = (
    "connection",
    "timeout",
    "query",
    "columns",
    "internal",
    "rate_limited",
    "http",
    "decode",
    "auth",
)

_PER_TIER = ("event", "city", "tier")
# Paid orders broken down the way owners ask (city, ticket tier, payment method, member or
# not); `member` is "true" or "false" (orders.is_member).
BREAKDOWN = ("city", "tier", "payment_method", "member")


def _postgres(name: str, type_: MetricType, help_: str, *labels: str) -> CatalogMetric:
    return CatalogMetric(name=name, type=type_, help=help_, labels=labels, source="postgres")


# What the query pack computes, one SQL query each (exporter.sources.querypack); users may
# move a metric to another database or replace its SQL, never its name or labels.
POSTGRES_PACK: tuple[CatalogMetric, ...] = (
    _postgres(
        "boxoffice_tickets_sold_total",
        "counter",
        "Tickets in orders that were ever paid, per event, city and tier.",
        *_PER_TIER,
    ),
    _postgres(
        "boxoffice_tickets_refunded_total",
        "counter",
        "Tickets in paid orders that were refunded, per event, city and tier.",
        *_PER_TIER,
    ),
    _postgres(
        "boxoffice_inventory_capacity_tickets",
        "gauge",
        "Public ticket limit of a tier (ticket_tiers.capacity).",
        *_PER_TIER,
    ),
    _postgres(
        "boxoffice_inventory_reserved_tickets",
        "gauge",
        "Tickets held by open, unexpired checkout sessions.",
        *_PER_TIER,
    ),
    _postgres(
        "boxoffice_inventory_available_tickets",
        "gauge",
        "Tickets still for sale: capacity - sold + refunded - reserved. "
        "Negative means the tier is oversold.",
        *_PER_TIER,
    ),
    _postgres(
        "boxoffice_event_start_timestamp_seconds",
        "gauge",
        "When the event starts, as a Unix timestamp.",
        "event",
        "city",
    ),
    _postgres(
        "boxoffice_payments_total",
        "counter",
        "Orders whose payment reached a terminal state (paid at some point, or failed).",
    ),
    _postgres(
        "boxoffice_payments_failed_total",
        "counter",
        "Orders whose payment failed, by Stripe failure code ('unknown' when none).",
        "failure_code",
    ),
    _postgres(
        "boxoffice_revenue_total",
        "counter",
        "Gross revenue of paid orders, in major currency units.",
        "currency",
    ),
    _postgres(
        "boxoffice_orders_paid_total",
        "counter",
        "Orders that were ever paid, by city, tier, payment method ('unknown' when none), "
        "membership and currency.",
        *BREAKDOWN,
        "currency",
    ),
    _postgres(
        "boxoffice_orders_paid_tickets_total",
        "counter",
        "Tickets in orders that were ever paid, by city, tier, payment method and membership.",
        *BREAKDOWN,
    ),
    _postgres(
        "boxoffice_orders_paid_revenue_total",
        "counter",
        "Gross revenue of paid orders in major currency units, by city, tier, payment method "
        "and membership.",
        *BREAKDOWN,
        "currency",
    ),
    _postgres(
        "boxoffice_refunds_total",
        "counter",
        "Amount refunded to buyers (full and partial refunds), in major currency units.",
        "currency",
    ),
    _postgres(
        "boxoffice_last_paid_order_timestamp_seconds",
        "gauge",
        "When the most recent order was paid, as a Unix timestamp.",
    ),
    _postgres(
        "boxoffice_checkout_sessions_created_total",
        "counter",
        "Stripe Checkout sessions created.",
    ),
    _postgres(
        "boxoffice_checkout_sessions_completed_total",
        "counter",
        "Checkout sessions that completed (status 'complete').",
    ),
    _postgres(
        "boxoffice_checkout_sessions_expired_total",
        "counter",
        "Checkout sessions that expired without completing.",
    ),
    _postgres(
        "boxoffice_checkout_sessions_open",
        "gauge",
        "Checkout sessions open right now (status 'open' and not past expires_at).",
    ),
    _postgres(
        "boxoffice_webhook_events_total",
        "counter",
        "Webhook deliveries logged by the ticket app, per provider.",
        "provider",
    ),
    _postgres(
        "boxoffice_webhook_events_failed_total",
        "counter",
        "Webhook deliveries whose processing ended in an error, per provider.",
        "provider",
    ),
)

# Incremental collection's reconciliation (docs/incremental.md).
DRIFT_METRIC = "boxoffice_postgres_reconciliation_drift"
RECONCILIATIONS_METRIC = "boxoffice_postgres_reconciliations_total"
RECONCILED_AT_METRIC = "boxoffice_postgres_reconciliation_timestamp_seconds"
REPLICATION_LAG_METRIC = "boxoffice_postgres_replication_lag_seconds"
FULL_COMPUTATIONS_METRIC = "boxoffice_postgres_full_computations_total"

_RECONCILIATION = (
    _postgres(
        DRIFT_METRIC,
        "gauge",
        "Difference between the incremental totals and a full recomputation found by the "
        "last reconciliation (absolute, in the metric's units; 0 means exact). It is "
        "corrected from the next cycle on.",
        "metric",
    ),
    _postgres(
        RECONCILIATIONS_METRIC,
        "counter",
        "Full reconciliations of the incrementally collected counters.",
    ),
    _postgres(
        RECONCILED_AT_METRIC,
        "gauge",
        "When the last reconciliation finished, as a Unix timestamp.",
    ),
    _postgres(
        FULL_COMPUTATIONS_METRIC,
        "counter",
        "Full computations of the incrementally collected counters by this process: one at "
        "start, none when it resumed from a valid checkpoint (state_dir).",
    ),
    _postgres(
        REPLICATION_LAG_METRIC,
        "gauge",
        "How far a database read on a hot standby is behind its primary: the standby's "
        "clock minus the commit time of the last replayed transaction, 0 when it has "
        "replayed all it received (and always on a primary). Counts stay exact; they are "
        "this old.",
        "database",
    ),
)


# Each database the PostgreSQL source reads, reported on its own (one exporter, many shards).
DATABASE_UP = "boxoffice_database_up"
DATABASE_DURATION = "boxoffice_database_duration_seconds"

_DATABASES = (
    _postgres(
        DATABASE_UP,
        "gauge",
        "1 when every query on the database succeeded in the PostgreSQL source's last "
        "collection; 0 when it could not be reached or a query failed (its series are then "
        "missing or partial, the other databases' are not affected). Carries the database's "
        "constant labels.",
        "database",
    ),
    _postgres(
        DATABASE_DURATION,
        "gauge",
        "How long reading the database took in the last collection, waiting for its "
        "connection included; databases are read in parallel (sources.postgres.parallelism).",
        "database",
    ),
)


def _stripe(name: str, type_: MetricType, help_: str, *labels: str) -> CatalogMetric:
    return CatalogMetric(name=name, type=type_, help=help_, labels=labels, source="stripe")


_STRIPE = (
    _stripe(
        "boxoffice_stripe_charges_total",
        "counter",
        "Stripe charges that reached a final status (succeeded or failed), each counted once.",
    ),
    _stripe(
        "boxoffice_stripe_charges_failed_total",
        "counter",
        "Stripe charges that failed, by failure_code ('unknown' when Stripe gives none) and "
        "failure_class (customer_decline, fraud_block or system, from Stripe's outcome).",
        "failure_code",
        "failure_class",
    ),
    _stripe(
        "boxoffice_stripe_refunds_total",
        "counter",
        "Stripe refunds that succeeded, each counted once.",
    ),
    _stripe(
        "boxoffice_stripe_disputes_total",
        "counter",
        "Stripe disputes opened, each counted once.",
    ),
    _stripe(
        "boxoffice_stripe_disputes_open",
        "gauge",
        "Stripe disputes open now (needing a response or under review).",
    ),
    _stripe(
        "boxoffice_stripe_balance",
        "gauge",
        "Stripe account balance in major currency units, by currency and state "
        "(available, pending).",
        "currency",
        "state",
    ),
    _stripe(
        "boxoffice_stripe_events_pending_webhooks",
        "gauge",
        "Recent Stripe events that still have webhook deliveries pending (not yet delivered "
        "to every endpoint).",
    ),
    _stripe(
        "boxoffice_stripe_webhook_endpoints",
        "gauge",
        "Stripe webhook endpoints by status (enabled, disabled).",
        "status",
    ),
)


def _twilio(name: str, type_: MetricType, help_: str, *labels: str) -> CatalogMetric:
    return CatalogMetric(name=name, type=type_, help=help_, labels=labels, source="twilio")


_TWILIO = (
    _twilio(
        "boxoffice_sms_messages_total",
        "counter",
        "Outbound SMS that reached a final status (delivered, failed, undelivered), each "
        "counted once.",
    ),
    _twilio(
        "boxoffice_sms_messages_failed_total",
        "counter",
        "Outbound SMS that ended failed or undelivered, by Twilio error_code "
        "('unknown' when none).",
        "error_code",
    ),
    _twilio(
        "boxoffice_sms_cost_total",
        "counter",
        "What Twilio billed for the counted SMS, in major currency units.",
        "currency",
    ),
    _twilio(
        "boxoffice_twilio_balance",
        "gauge",
        "Twilio account balance in major currency units.",
        "currency",
    ),
)


def _http(name: str, help_: str, *labels: str) -> CatalogMetric:
    return CatalogMetric(name=name, type="gauge", help=help_, labels=labels, source="http")


_HTTP = (
    _http(
        "boxoffice_probe_success",
        "1 when the target answered with its expected status code in time, else 0.",
        "target",
    ),
    _http(
        "boxoffice_probe_duration_seconds",
        "How long the probe took, including reading the body (or until it failed).",
        "target",
    ),
    _http(
        "boxoffice_probe_status_code",
        "HTTP status code of the last probe; 0 when no response came back.",
        "target",
    ),
    _http(
        "boxoffice_app_component_up",
        "1 when the target's health document reports the component healthy, else 0.",
        "target",
        "component",
    ),
)


# Which replica polls a leased API source (sources/lease.py, docs/high-availability.md).
SOURCE_LEADER = "boxoffice_source_leader"


def _self(name: str, type_: MetricType, help_: str, *labels: str) -> CatalogMetric:
    return CatalogMetric(name=name, type=type_, help=help_, labels=labels, source="exporter")


_SELF = (
    _self(
        "boxoffice_source_up",
        "gauge",
        "1 when the source's last collection succeeded and is current; 0 means its business "
        "metrics are withdrawn (see boxoffice_source_errors_total and the exporter log), or "
        "another replica polls it (boxoffice_source_leader 0).",
        "source",
    ),
    _self(
        SOURCE_LEADER,
        "gauge",
        "With a lease (ha.lease_database): 1 when this replica polls the API source, 0 when "
        "another replica holds its lease and this one stands by (source_up is then 0 here). "
        "Absent for sources without a lease.",
        "source",
    ),
    _self(
        "boxoffice_source_last_success_timestamp_seconds",
        "gauge",
        "When the source last collected successfully, as a Unix timestamp.",
        "source",
    ),
    _self(
        "boxoffice_source_duration_seconds",
        "gauge",
        "How long the source's last collection took; compare with its interval and timeout.",
        "source",
    ),
    _self(
        "boxoffice_source_errors_total",
        "counter",
        f"Failed collections by reason: {', '.join(REASONS)}.",
        "source",
        "reason",
    ),
    _self(
        "boxoffice_series_dropped_total",
        "counter",
        "Series folded into 'other' (or dropped) by the cardinality guard, summed over "
        "collections; raise max_series_per_metric or narrow the query if this grows.",
        "metric",
    ),
    _self(
        "boxoffice_query_rows_truncated_total",
        "counter",
        "Rows a configured query returned past sources.postgres.max_rows_per_query, not "
        "fetched and not published, summed over collections; narrow the query.",
        "metric",
    ),
    _self(
        "boxoffice_label_values_truncated_total",
        "counter",
        "Label values longer than sources.postgres.max_label_length, published cut, summed "
        "over collections; fix the query or raise the limit.",
        "metric",
    ),
    _self("boxoffice_build_info", "info", "boxoffice version.", "version"),
)

CATALOG: tuple[CatalogMetric, ...] = (
    POSTGRES_PACK + _RECONCILIATION + _DATABASES + _STRIPE + _TWILIO + _HTTP + _SELF
)
CATALOG_BY_NAME: dict[str, CatalogMetric] = {m.name: m for m in CATALOG}

# Series Prometheus itself writes, which rules may read like any other.
PROMETHEUS_SERIES = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})

# The alerting path's own series (issue 19), which the rules on that path read: Prometheus'
# and Alertmanager's self-metrics (scraped as the jobs `prometheus` and `alertmanager`), and
# the SMS bridge's (`exporter.smsbridge.metrics`; a test checks the names match).
ALERTMANAGER_NOTIFICATIONS = "alertmanager_notifications_total"
ALERTMANAGER_NOTIFICATIONS_FAILED = "alertmanager_notifications_failed_total"
PROMETHEUS_RULE_FAILURES = "prometheus_rule_evaluation_failures_total"
PROMETHEUS_NOTIFICATION_ERRORS = "prometheus_notifications_errors_total"
PROMETHEUS_NOTIFICATIONS_DROPPED = "prometheus_notifications_dropped_total"
PROMETHEUS_ALERTMANAGERS = "prometheus_notifications_alertmanagers_discovered"
BRIDGE_MESSAGES_FAILED = "boxoffice_sms_bridge_messages_failed_total"
BRIDGE_MESSAGES_DEFERRED = "boxoffice_sms_bridge_messages_deferred_total"
BRIDGE_TWILIO_BALANCE = "boxoffice_sms_bridge_twilio_balance"
BRIDGE_PIPELINE_DOWN = "boxoffice_sms_bridge_pipeline_down"
ALERTING_PATH_SERIES = frozenset(
    {
        ALERTMANAGER_NOTIFICATIONS,
        ALERTMANAGER_NOTIFICATIONS_FAILED,
        PROMETHEUS_RULE_FAILURES,
        PROMETHEUS_NOTIFICATION_ERRORS,
        PROMETHEUS_NOTIFICATIONS_DROPPED,
        PROMETHEUS_ALERTMANAGERS,
        BRIDGE_MESSAGES_FAILED,
        BRIDGE_MESSAGES_DEFERRED,
        BRIDGE_TWILIO_BALANCE,
        BRIDGE_PIPELINE_DOWN,
    }
)
