"""The alerts of SPEC 5: names, categories, severity levels and the seeds' default thresholds.

thresholds.yaml may change every number here; the names, categories and what each
threshold measures are the contract Alertmanager routing and the runbooks rely on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["critical", "high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")
Category = Literal[
    "payments", "inventory", "sales", "messaging", "webhooks", "availability", "monitoring"
]
# ladder: thresholds keyed by severity; tiers: keyed by ticket tier, one severity;
# fixed: no thresholds (the condition is the threshold); table: thresholds live elsewhere
# in thresholds.yaml (latency endpoints, SLO objectives).
ThresholdKeys = Literal["ladder", "tiers", "fixed", "table"]
# What a threshold value is, which decides how it is checked and printed.
Measure = Literal["ratio", "count", "duration", "money", "factor"]


@dataclass(frozen=True)
class AlertDef:
    """One alert of the product: what it watches and its defaults."""

    name: str
    category: Category
    keys: ThresholdKeys
    thresholds: tuple[tuple[str, float], ...]  # default thresholds, most severe first
    measure: dict[str, Measure]  # per threshold key; "*" for tiers
    severity: Severity | None = None  # for tiers, fixed and table alerts
    for_seconds: float = 0.0
    window_seconds: float | None = None
    min_traffic: float | None = None
    summary: str = ""
    upward: bool = True  # a larger value is worse (failures); False: smaller is (success)


def _ladder(
    name: str,
    category: Category,
    thresholds: dict[str, float],
    measure: Measure | dict[str, Measure],
    summary: str,
    *,
    for_seconds: float = 0.0,
    window: float | None = None,
    min_traffic: float | None = None,
    upward: bool = True,
) -> AlertDef:
    measures = measure if isinstance(measure, dict) else dict.fromkeys(thresholds, measure)
    return AlertDef(
        name, category, "ladder", tuple(thresholds.items()), measures, None,
        for_seconds, window, min_traffic, summary, upward,
    )  # fmt: skip


def _single(
    name: str,
    category: Category,
    keys: ThresholdKeys,
    severity: Severity,
    summary: str,
    *,
    tiers: dict[str, float] | None = None,
    for_seconds: float = 0.0,
    window: float | None = None,
) -> AlertDef:
    measure: dict[str, Measure] = {"*": "count"} if tiers is not None else {}
    return AlertDef(
        name, category, keys, tuple((tiers or {}).items()), measure, severity,
        for_seconds, window, None, summary,
    )  # fmt: skip


M, H, D = 60.0, 3600.0, 86400.0

ALERT_DEFS: tuple[AlertDef, ...] = (
    _ladder("PaymentSuccessRateLow", "payments", {"critical": 0.95}, "ratio",
            "Payment success rate below target", for_seconds=2 * M, window=5 * M,
            min_traffic=20, upward=False),
    _ladder("PaymentFailuresBurst", "payments", {"critical": 10, "high": 3}, "count",
            "Burst of failed payments", window=10 * M),
    _ladder("RefundRateHigh", "payments", {"high": 0.10, "medium": 0.05}, "ratio",
            "Refunds are a high share of revenue", for_seconds=15 * M, window=D,
            min_traffic=100),
    _ladder("DisputeRateHigh", "payments", {"high": 0.01}, "ratio",
            "Disputes are a high share of charges", for_seconds=15 * M, window=D,
            min_traffic=50),
    _single("InventoryLow", "inventory", "tiers", "medium", "Tickets running low",
            tiers={"ga": 10, "vip": 5}),
    _single("InventoryCritical", "inventory", "tiers", "high", "Tickets almost gone",
            tiers={"ga": 5, "vip": 2}),
    _single("InventorySoldOut", "inventory", "fixed", "critical", "Ticket tier sold out"),
    _single("InventoryOversold", "inventory", "fixed", "critical", "Ticket tier oversold"),
    _ladder("SelloutPredicted", "inventory", {"medium": D}, "duration",
            "Ticket tier predicted to sell out", for_seconds=15 * M, window=D, upward=False),
    _ladder("SalesVelocitySpike", "sales", {"low": 2.0}, "factor",
            "Ticket sales far above the same hour last week", for_seconds=5 * M, window=H,
            min_traffic=10),
    _ladder("NoRecentSales", "sales", {"critical": 4 * H, "high": 2 * H}, "duration",
            "No paid order for a long time in business hours"),
    _ladder("RevenueBelowForecast", "sales", {"critical": 0.40, "high": 0.20}, "ratio",
            "Today's revenue below forecast", for_seconds=15 * M, min_traffic=100),
    _ladder("CheckoutConversionLow", "sales", {"critical": 0.85, "high": 0.90}, "ratio",
            "Checkout conversion below target", for_seconds=10 * M, window=H,
            min_traffic=20, upward=False),
    _ladder("StripeWebhookBacklog", "webhooks", {"critical": 10}, "count",
            "Stripe has a backlog of undelivered webhooks", for_seconds=10 * M),
    _ladder("WebhookProcessingErrors", "webhooks", {"critical": 0.10, "high": 5},
            {"critical": "ratio", "high": "count"}, "Webhook processing errors",
            window=H, min_traffic=20),
    _ladder("SmsDeliveryFailureRateHigh", "messaging", {"high": 0.10}, "ratio",
            "SMS failing to deliver", for_seconds=5 * M, window=H, min_traffic=20),
    _ladder("SmsCostHigh", "messaging", {"medium": 5.0}, "money",
            "SMS spend per hour above budget", for_seconds=15 * M, window=H),
    _ladder("TwilioBalanceLow", "messaging", {"high": 20.0}, "money",
            "Twilio balance low", for_seconds=5 * M, upward=False),
    _single("AppHealthDegraded", "availability", "fixed", "high",
            "A component of the ticket app is unhealthy", for_seconds=2 * M),
    _single("ProbeFailing", "availability", "fixed", "critical", "HTTP probe failing",
            for_seconds=2 * M),
    _single("EndpointLatencyHigh", "availability", "table", "high",
            "Endpoint p95 latency above target", for_seconds=5 * M, window=5 * M),
    _single("SLOErrorBudgetBurn", "availability", "table", "critical",
            "Error budget burning fast", for_seconds=2 * M),
    _single("ExporterSourceDown", "monitoring", "fixed", "high",
            "A boxoffice source cannot collect", for_seconds=2 * M),
    _single("ExporterDown", "monitoring", "fixed", "critical",
            "Prometheus cannot scrape the boxoffice exporter", for_seconds=M),
    _ladder("ExporterDataStale", "monitoring", {"high": 10 * M}, "duration",
            "boxoffice data is stale"),
)  # fmt: skip

ALERT_DEFS_BY_NAME: dict[str, AlertDef] = {d.name: d for d in ALERT_DEFS}
