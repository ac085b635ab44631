"""The alerts of SPEC 5: names, categories, severity levels and the seeds' default thresholds.

thresholds.yaml may change every number here; the names, categories and what each
threshold measures are the contract Alertmanager routing and the runbooks rely on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

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


@dataclass(frozen=True, kw_only=True)
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
    # Describes a standing state (inventory, a prediction, a balance), not an incident: it
    # never escalates whatever its severity.
    standing: bool = False
    # Notifies once on the business channel (label notify="once"): never pages nor repeats.
    notify_once: bool = False
    # The always-firing heartbeat (label notify="heartbeat"): routed to the heartbeat
    # receiver only, never to people.
    heartbeat: bool = False
    # Hysteresis: how long a firing alert keeps firing after its condition stops holding.
    keep_firing_for: float = 0.0
    # Settings that make the threshold relative to the shop (thresholds.yaml ``relative``):
    # name -> (default, measure). Each builder documents what its names mean.
    relative: tuple[tuple[str, float, Measure], ...] = ()
    min_ratio: float | None = None  # a ratio floor beside the thresholds (min_ratio key)
    baseline_seconds: float | None = None  # the window of the shop's own normal (baseline key)


def _ladder(
    *,
    name: str,
    category: Category,
    thresholds: dict[str, float],
    measure: Measure | dict[str, Measure],
    summary: str,
    for_seconds: float = 0.0,
    window: float | None = None,
    min_traffic: float | None = None,
    upward: bool = True,
    min_ratio: float | None = None,
    baseline: float | None = None,
    **extra: Any,
) -> AlertDef:
    measures = measure if isinstance(measure, dict) else dict.fromkeys(thresholds, measure)
    return AlertDef(
        name=name,
        category=category,
        keys="ladder",
        thresholds=tuple(thresholds.items()),
        measure=measures,
        for_seconds=for_seconds,
        window_seconds=window,
        min_traffic=min_traffic,
        summary=summary,
        upward=upward,
        min_ratio=min_ratio,
        baseline_seconds=baseline,
        **extra,
    )


def _single(
    *,
    name: str,
    category: Category,
    keys: ThresholdKeys,
    severity: Severity,
    summary: str,
    tiers: dict[str, float] | None = None,
    for_seconds: float = 0.0,
    window: float | None = None,
    **extra: Any,
) -> AlertDef:
    measure: dict[str, Measure] = {"*": "count"} if tiers is not None else {}
    return AlertDef(
        name=name,
        category=category,
        keys=keys,
        thresholds=tuple((tiers or {}).items()),
        measure=measure,
        severity=severity,
        for_seconds=for_seconds,
        window_seconds=window,
        summary=summary,
        **extra,
    )


M, H, D = 60.0, 3600.0, 86400.0

ALERT_DEFS: tuple[AlertDef, ...] = (
    _ladder(
        name="PaymentSuccessRateLow",
        category="payments",
        thresholds={"critical": 0.95},
        measure="ratio",
        summary="Payment success rate below target",
        for_seconds=2 * M,
        window=5 * M,
        min_traffic=20,
        upward=False,
    ),
    _ladder(
        name="PaymentFailuresBurst",
        category="payments",
        thresholds={"critical": 10, "high": 3},
        measure="count",
        summary="Burst of failed payments",
        window=10 * M,
        min_ratio=0.03,
    ),
    _ladder(
        name="DeclineRateAnomalous",
        category="payments",
        thresholds={"high": 4.0},
        measure="factor",
        summary="Card declines far above the shop's normal (card testing?)",
        for_seconds=2 * M,
        window=10 * M,
        min_traffic=20,
        min_ratio=0.5,
        baseline=D,
    ),
    _ladder(
        name="RefundRateHigh",
        category="payments",
        thresholds={"high": 0.10, "medium": 0.05},
        measure="ratio",
        summary="Refunds are a high share of revenue",
        for_seconds=15 * M,
        window=D,
        min_traffic=100,
        keep_firing_for=15 * M,
        relative=(("min_refunds", 5.0, "count"),),
    ),
    _ladder(
        name="DisputeRateHigh",
        category="payments",
        thresholds={"high": 0.01},
        measure="ratio",
        summary="Disputes are a high share of charges",
        for_seconds=15 * M,
        window=D,
        min_traffic=50,
        keep_firing_for=15 * M,
    ),
    _single(
        name="InventoryLow",
        category="inventory",
        keys="tiers",
        severity="medium",
        summary="Tickets running low",
        tiers={"ga": 10, "vip": 5},
        standing=True,
        notify_once=True,  # a state of the business, told once: never a page
        keep_firing_for=30 * M,
        relative=(("capacity_share", 0.10, "ratio"),),
    ),
    _single(
        name="InventoryCritical",
        category="inventory",
        keys="tiers",
        severity="high",
        summary="Tickets almost gone",
        tiers={"ga": 5, "vip": 2},
        standing=True,
        notify_once=True,  # a state of the business, told once: never a page
        keep_firing_for=30 * M,
        relative=(("capacity_share", 0.05, "ratio"),),
    ),
    _single(
        name="InventorySoldOut",
        category="inventory",
        keys="fixed",
        severity="critical",  # SPEC 5: a critical label, informational routing (never pages)
        summary="Ticket tier sold out",
        standing=True,
        keep_firing_for=H,
        notify_once=True,
    ),
    _single(
        name="InventoryOversold",
        category="inventory",
        keys="fixed",
        severity="critical",
        summary="Ticket tier oversold",
        keep_firing_for=5 * M,
    ),
    _ladder(
        name="SelloutPredicted",
        category="inventory",
        thresholds={"medium": D},
        measure="duration",
        summary="Ticket tier predicted to sell out",
        for_seconds=15 * M,
        window=D,
        upward=False,
        standing=True,
        notify_once=True,  # a state of the business, told once: never a page
        keep_firing_for=H,
    ),
    _ladder(
        name="SalesVelocitySpike",
        category="sales",
        thresholds={"low": 2.0},
        measure="factor",
        summary="Ticket sales far above the shop's normal for this hour of the week",
        for_seconds=5 * M,
        window=H,
        min_traffic=10,
    ),
    _ladder(
        name="NoRecentSales",
        category="sales",
        # Paid orders the shop's own baseline expected since the last one (seed 003's band:
        # a big shop pages in minutes, a small one in hours, a quiet night never).
        thresholds={"critical": 20, "high": 10},
        measure="count",
        summary="No paid order although the shop normally sells by now",
    ),
    _ladder(
        name="RevenueBelowForecast",
        category="sales",
        thresholds={"critical": 0.40, "high": 0.20},
        measure="ratio",
        summary="Today's revenue below forecast",
        for_seconds=15 * M,
        min_traffic=100,
    ),
    _ladder(
        name="CheckoutConversionLow",
        category="sales",
        # Completion as a share of the shop's own normal for this hour of the week.
        thresholds={"critical": 0.5, "high": 0.9},
        measure="ratio",
        summary="Checkout completion far below the shop's normal",
        for_seconds=10 * M,
        window=H,
        min_traffic=20,
        upward=False,
    ),
    _ladder(
        name="AverageOrderValueAnomalous",
        category="sales",
        # How far the average order value moved from the shop's normal for this time of the
        # week, either way (seed 001: 15% warning, 30% critical; issue 18).
        thresholds={"high": 0.30, "medium": 0.15},
        measure="ratio",
        summary="Average order value far from the shop's normal",
        for_seconds=30 * M,
        window=3 * H,
        min_traffic=50,
        # order_value_cv: the spread of single order values (standard deviation / mean) that
        # chance is judged with; 1 is wider than ticket shops see (1-4 tickets, 1-3x prices).
        relative=(("order_value_cv", 1.0, "factor"),),
    ),
    _ladder(
        name="StripeWebhookBacklog",
        category="webhooks",
        thresholds={"critical": 10},
        measure="count",
        summary="Stripe has a backlog of undelivered webhooks",
        for_seconds=10 * M,
        keep_firing_for=10 * M,
        relative=(("backlog_of", 5 * M, "duration"),),
    ),
    _single(
        name="StripeWebhookEndpointDisabled",
        category="webhooks",
        keys="fixed",
        severity="critical",
        summary="Stripe disabled a webhook endpoint",
        for_seconds=2 * M,
    ),
    _ladder(
        name="WebhookProcessingErrors",
        category="webhooks",
        thresholds={"critical": 0.10, "high": 5},
        measure={"critical": "ratio", "high": "count"},
        summary="Webhook processing errors",
        window=H,
        min_traffic=20,
    ),
    _ladder(
        name="SmsDeliveryFailureRateHigh",
        category="messaging",
        thresholds={"high": 0.10},
        measure="ratio",
        summary="SMS failing to deliver",
        for_seconds=5 * M,
        window=30 * M,
        min_traffic=20,
        # A sender under min_traffic: at least this many failures in an hour, beyond what its
        # own normal rate predicts (a Poisson bound), judge it on evidence instead.
        relative=(("min_failures", 3.0, "count"),),
    ),
    _ladder(
        name="SmsCostHigh",
        category="messaging",
        thresholds={"medium": 5.0},
        measure="money",
        summary="SMS spend per hour above budget",
        for_seconds=5 * M,
        window=H,
        keep_firing_for=15 * M,
        relative=(("spend_factor", 3.0, "factor"),),
    ),
    _ladder(
        name="TwilioBalanceLow",
        category="messaging",
        thresholds={"high": 5.0},
        measure="money",
        summary="Twilio balance low",
        for_seconds=5 * M,
        upward=False,
        standing=True,
        relative=(("runway", 2 * H, "duration"),),
    ),
    _single(
        name="AppHealthDegraded",
        category="availability",
        keys="fixed",
        severity="high",
        summary="A component of the ticket app is unhealthy",
        for_seconds=2 * M,
    ),
    _single(
        name="ProbeFailing",
        category="availability",
        keys="fixed",
        severity="critical",
        summary="HTTP probe failing",
        for_seconds=2 * M,
    ),
    _single(
        name="EndpointLatencyHigh",
        category="availability",
        keys="table",
        severity="high",
        summary="Endpoint p95 latency above target",
        for_seconds=5 * M,
        window=5 * M,
        keep_firing_for=5 * M,
    ),
    _single(
        name="SLOErrorBudgetBurn",
        category="availability",
        keys="table",
        severity="critical",
        summary="Error budget burning fast",
        for_seconds=2 * M,
    ),
    _single(
        name="ExporterSourceDown",
        category="monitoring",
        keys="fixed",
        severity="high",
        summary="A boxoffice source cannot collect",
        for_seconds=2 * M,
    ),
    _single(
        name="ExporterDown",
        category="monitoring",
        keys="fixed",
        severity="critical",
        summary="No replica of the boxoffice exporter is up",
        for_seconds=M,
    ),
    # Issue 17 item 3: some replicas down, at least one still serves (a warning, no page).
    _single(
        name="ExporterReplicaDown",
        category="monitoring",
        keys="fixed",
        severity="medium",
        summary="A replica of the boxoffice exporter is down; another still serves",
        for_seconds=5 * M,
    ),
    _ladder(
        name="ExporterDataStale",
        category="monitoring",
        thresholds={"high": 10 * M},
        measure="duration",
        summary="boxoffice data is stale",
    ),
    # The alerting path itself (issue 19): rules/alerts/pipeline.py.
    _single(
        name="Watchdog",
        category="monitoring",
        keys="fixed",
        severity="low",
        summary="Heartbeat of the alerting pipeline (always firing)",
        heartbeat=True,
    ),
    _ladder(
        name="AlertmanagerNotificationsFailing",
        category="monitoring",
        thresholds={"high": 0.01},
        measure="ratio",
        summary="Alertmanager cannot deliver notifications to an integration",
        for_seconds=5 * M,
        window=5 * M,
    ),
    _ladder(
        name="PrometheusRuleEvaluationFailing",
        category="monitoring",
        thresholds={"high": 0},
        measure="count",
        summary="Prometheus fails to evaluate rules",
        for_seconds=5 * M,
        window=5 * M,
    ),
    _ladder(
        name="PrometheusNotificationsFailing",
        category="monitoring",
        thresholds={"high": 0},
        measure="count",
        summary="Prometheus cannot send alerts to Alertmanager",
        for_seconds=5 * M,
        window=5 * M,
    ),
    _single(
        name="PrometheusAlertmanagerMissing",
        category="monitoring",
        keys="fixed",
        severity="high",
        summary="Prometheus has no Alertmanager to send alerts to",
        for_seconds=5 * M,
    ),
    _ladder(
        name="SmsBridgeSendsFailing",
        category="monitoring",
        thresholds={"high": 0},
        measure="count",
        summary="The SMS bridge cannot send SMS",
        for_seconds=5 * M,
        window=10 * M,
    ),
    _ladder(
        name="SmsBridgeSendsDeferred",
        category="monitoring",
        thresholds={"medium": 0},
        measure="count",
        summary="The SMS bridge holds SMS past recipients' rate limits",
        window=10 * M,
    ),
    _ladder(
        name="SmsBridgeTwilioBalanceLow",
        category="monitoring",
        thresholds={"high": 5.0},
        measure="money",
        summary="The SMS bridge's Twilio balance is low",
        upward=False,
        standing=True,
    ),
    _ladder(
        name="PostgresReplicationLagHigh",
        category="monitoring",
        thresholds={"high": 5 * M},
        measure="duration",
        summary="The database boxoffice reads is far behind its primary",
        for_seconds=2 * M,
    ),
)

ALERT_DEFS_BY_NAME: dict[str, AlertDef] = {d.name: d for d in ALERT_DEFS}
