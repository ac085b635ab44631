"""Every metric the exporter publishes (SPEC 4.2): name, type and labels.

Generated rules may only reference these, recording rules generated beside them, or app
metrics declared in thresholds.yaml. The PostgreSQL entries come from the default query pack
so the two cannot drift; the self-metrics match :mod:`exporter.collect.exposition`. The
Stripe, Twilio and HTTP entries follow SPEC 4.2 ahead of their sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from exporter.sources.querypack import DEFAULT_PACK

MetricType = Literal["counter", "gauge", "info"]


@dataclass(frozen=True)
class CatalogMetric:
    """One published metric: what rules may select and by which labels they aggregate."""

    name: str
    type: MetricType
    labels: tuple[str, ...]
    source: str


def _m(name: str, type_: MetricType, labels: tuple[str, ...], source: str) -> CatalogMetric:
    return CatalogMetric(name, type_, labels, source)


_POSTGRES = tuple(_m(s.name, s.kind, s.labels, "postgres") for s in DEFAULT_PACK)

_STRIPE = (
    _m("boxoffice_stripe_charges_total", "counter", (), "stripe"),
    _m("boxoffice_stripe_charges_failed_total", "counter", ("failure_code",), "stripe"),
    _m("boxoffice_stripe_refunds_total", "counter", (), "stripe"),
    _m("boxoffice_stripe_disputes_total", "counter", (), "stripe"),
    _m("boxoffice_stripe_disputes_open", "gauge", (), "stripe"),
    _m("boxoffice_stripe_balance", "gauge", ("currency", "state"), "stripe"),
    _m("boxoffice_stripe_events_pending_webhooks", "gauge", (), "stripe"),
    _m("boxoffice_stripe_webhook_endpoints", "gauge", ("status",), "stripe"),
)

_TWILIO = (
    _m("boxoffice_sms_messages_total", "counter", (), "twilio"),
    _m("boxoffice_sms_messages_failed_total", "counter", ("error_code",), "twilio"),
    _m("boxoffice_sms_cost_total", "counter", ("currency",), "twilio"),
    _m("boxoffice_twilio_balance", "gauge", ("currency",), "twilio"),
)

_HTTP = (
    _m("boxoffice_probe_success", "gauge", ("target",), "http"),
    _m("boxoffice_probe_duration_seconds", "gauge", ("target",), "http"),
    _m("boxoffice_probe_status_code", "gauge", ("target",), "http"),
    _m("boxoffice_app_component_up", "gauge", ("target", "component"), "http"),
)

_SELF = (
    _m("boxoffice_source_up", "gauge", ("source",), "exporter"),
    _m("boxoffice_source_last_success_timestamp_seconds", "gauge", ("source",), "exporter"),
    _m("boxoffice_source_duration_seconds", "gauge", ("source",), "exporter"),
    _m("boxoffice_source_errors_total", "counter", ("source", "reason"), "exporter"),
    _m("boxoffice_series_dropped_total", "counter", ("metric",), "exporter"),
    _m("boxoffice_build_info", "info", ("version",), "exporter"),
)

CATALOG: tuple[CatalogMetric, ...] = _POSTGRES + _STRIPE + _TWILIO + _HTTP + _SELF
CATALOG_BY_NAME: dict[str, CatalogMetric] = {m.name: m for m in CATALOG}

# Series Prometheus itself writes, which rules may read like any other.
PROMETHEUS_SERIES = frozenset({"up", "ALERTS", "ALERTS_FOR_STATE"})
