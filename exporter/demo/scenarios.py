"""Scripted incidents: what changes in the shop while one plays, and which alerts it should raise.

A scenario runs on a timeline: normal sales for ``start_after`` seconds, the incident for
``duration`` seconds, then recovery (normal sales again, plus the fix the incident needs,
such as seats added to an oversold tier) so every alert it raised can resolve.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from enum import Enum

from exporter.db.shop import FAILURE_CODES

# Twilio error codes of messages that end failed or undelivered, by how often they occur.
SMS_ERRORS: tuple[tuple[str, float], ...] = (
    ("30003", 0.35),  # unreachable destination handset
    ("30005", 0.20),  # unknown destination handset
    ("30006", 0.15),  # landline or unreachable carrier
    ("30007", 0.20),  # message filtered by the carrier
    ("30008", 0.10),  # unknown error
)
# Provider and account failures (ours, issue 15's "system" class): what an SMS outage looks like.
PROVIDER_SMS_ERRORS: tuple[tuple[str, float], ...] = (
    ("30008", 0.6),  # unknown error
    ("30001", 0.4),  # queue overflow
)
OUTAGE_CODES: tuple[tuple[str, float], ...] = (
    ("processing_error", 0.85),
    ("card_declined", 0.10),
    ("authentication_required", 0.05),
)
STALL_ERRORS = (
    "upstream request timed out",
    "canceling statement due to statement timeout",
)


class Phase(Enum):
    BASELINE = "baseline"
    INCIDENT = "incident"
    RECOVERY = "recovery"


@dataclass(frozen=True, kw_only=True)
class Effects:
    """How the shop behaves; the defaults are a normal day."""

    demand: float = 1.0  # multiplier of arriving buyers
    failure_share: float = 0.02  # payments that fail: a card decline rate of a healthy shop
    failure_codes: tuple[tuple[str, float], ...] = FAILURE_CODES
    # Webhook deliveries a healthy handler fails on: at the demo's 2,400 deliveries an hour,
    # under WebhookProcessingErrors' 5 errors an hour.
    webhook_error_share: float = 0.001
    webhook_errors: tuple[str, ...] = ()  # empty: the seeder's everyday errors
    # Confirmation texts that end failed/undelivered: inside the SMS SLO (99% delivered).
    sms_failure_share: float = 0.005
    sms_errors: tuple[tuple[str, float], ...] = SMS_ERRORS
    focus_share: float = 0.0  # share of new buyers sent to the scenario's focus tier
    oversell: bool = False  # the inventory check is broken for the focus tier


NORMAL = Effects()


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    summary: str  # what the terminal says when the incident starts
    incident: Effects
    expected_alerts: tuple[str, ...]  # SPEC 5 names the incident should raise
    focus: str | None = None  # "fewest_left_ga" | "fewest_left_event" | None
    fix: str = ""  # what recovery does besides restoring normal sales
    notes: tuple[str, ...] = field(default_factory=tuple)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="payment-outage",
            summary="the payment processor is failing: most payments end in processing_error",
            incident=Effects(failure_share=0.85, failure_codes=OUTAGE_CODES),
            expected_alerts=(
                "PaymentSuccessRateLow",
                "PaymentFailuresBurst",
                "CheckoutConversionLow",
            ),
            fix="the processor recovers; payments succeed again",
        ),
        Scenario(
            name="oversell",
            summary=(
                "the inventory check is broken: the GA tier with the fewest tickets left oversells"
            ),
            incident=Effects(focus_share=0.5, oversell=True),
            expected_alerts=(
                "InventoryOversold",
                "InventorySoldOut",
                "InventoryCritical",
                "InventoryLow",
            ),
            focus="fewest_left_ga",
            fix="the check is fixed and the venue adds seats for the oversold buyers",
        ),
        Scenario(
            name="webhook-stall",
            summary="the webhook handler times out: most deliveries fail and Stripe retries them",
            incident=Effects(webhook_error_share=0.8, webhook_errors=STALL_ERRORS),
            expected_alerts=("WebhookProcessingErrors",),
            fix="the handler is fixed; retried deliveries succeed",
        ),
        Scenario(
            name="sms-failure",
            summary="Twilio fails to deliver: most confirmation SMS fail with provider errors",
            incident=Effects(sms_failure_share=0.6, sms_errors=PROVIDER_SMS_ERRORS),
            expected_alerts=("SmsDeliveryFailureRateHigh",),
            fix="the carrier recovers",
            notes=("texts land in the demo's local Twilio API, read by the twilio source",),
        ),
        Scenario(
            name="quiet-day",
            summary="sales stop: nobody reaches the checkout",
            incident=Effects(demand=0.0),
            expected_alerts=("NoRecentSales", "RevenueBelowForecast"),
            fix="buyers come back",
        ),
        Scenario(
            name="flash-sale",
            summary="a flash sale: ten times the buyers, half of them for the scarcest event",
            incident=Effects(demand=10.0, focus_share=0.5),
            expected_alerts=(
                "SalesVelocitySpike",
                "SelloutPredicted",
                "InventoryLow",
                "InventorySoldOut",
            ),
            focus="fewest_left_event",
            fix="the sale ends; demand returns to normal",
        ),
    )
}


@dataclass(frozen=True)
class Timeline:
    """Normal sales, then the incident, then recovery; in real seconds."""

    start_after: float
    duration: float

    def __post_init__(self) -> None:
        if self.start_after < 0 or self.duration <= 0:
            raise ValueError("start_after must be >= 0 and duration > 0")

    def phase(self, elapsed: float) -> Phase:
        if elapsed < self.start_after:
            return Phase.BASELINE
        if elapsed < self.start_after + self.duration:
            return Phase.INCIDENT
        return Phase.RECOVERY


def effects(scenario: Scenario | None, phase: Phase, baseline: Effects = NORMAL) -> Effects:
    """What the shop does in ``phase`` of ``scenario``; outside an incident, ``baseline``.

    An incident changes only what it is about: a payment outage keeps the baseline's
    webhook error rate, a webhook stall its payment failures.
    """
    if scenario is None or phase is not Phase.INCIDENT:
        return baseline
    changed = {
        f.name: getattr(scenario.incident, f.name)
        for f in fields(Effects)
        if getattr(scenario.incident, f.name) != getattr(NORMAL, f.name)
    }
    return replace(baseline, **changed)
