"""Incidents injected into a healthy shop, and which alerts are meant to catch each.

The mapping from incident kind to expected alerts is the benchmark's definition of recall: an
incident counts as caught when one of its expected alerts fires between its start and its end
plus the kind's detection budget. Names of alerts that do not exist yet may be listed; they
simply never fire until a later change adds them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """Every kind of incident the simulator can inject."""

    PROCESSOR_OUTAGE = "processor_outage"
    WEBHOOK_STALL = "webhook_stall"
    SMS_PROVIDER_FAILURE = "sms_provider_failure"
    OVERSELL = "oversell"
    CHECKOUT_BROKEN = "checkout_broken"
    CARD_TESTING = "card_testing"
    ENDPOINT_DISABLED = "endpoint_disabled"
    SOURCE_DOWN = "source_down"
    CONVERSION_DRIFT = "conversion_drift"
    TWILIO_DRAIN = "twilio_drain"
    COMPONENT_UNHEALTHY = "component_unhealthy"
    PROBE_FAILING = "probe_failing"
    EXPORTER_DOWN = "exporter_down"


@dataclass(frozen=True, kw_only=True)
class Expectation:
    """What catching one kind means: the alerts that may, and the time they have."""

    alerts: frozenset[str]
    # After the incident starts: how long an expected alert may take and still count as a
    # detection (it must also start before the incident ends plus this budget).
    budget_s: int
    # Duration range of the injected incident, in seconds.
    duration_s: tuple[int, int]


def _e(alerts: str, budget_s: int, lo: int, hi: int) -> Expectation:
    return Expectation(alerts=frozenset(alerts.split()), budget_s=budget_s, duration_s=(lo, hi))


_MIN = 60
_HOUR = 3600
EXPECTED: dict[Kind, Expectation] = {
    Kind.PROCESSOR_OUTAGE: _e(
        "PaymentSuccessRateLow PaymentFailuresBurst SLOErrorBudgetBurn", 3 * _MIN, 20 * _MIN, _HOUR
    ),
    Kind.WEBHOOK_STALL: _e(
        "StripeWebhookBacklog WebhookProcessingErrors", 20 * _MIN, 40 * _MIN, 2 * _HOUR
    ),
    Kind.SMS_PROVIDER_FAILURE: _e(
        "SmsDeliveryFailureRateHigh SLOErrorBudgetBurn", 15 * _MIN, 30 * _MIN, 2 * _HOUR
    ),
    Kind.OVERSELL: _e("InventoryOversold", _MIN, 30 * _MIN, 2 * _HOUR),
    Kind.CHECKOUT_BROKEN: _e(
        "NoRecentSales CheckoutConversionLow RevenueBelowForecast",
        10 * _MIN,
        90 * _MIN,
        4 * _HOUR,
    ),
    Kind.CARD_TESTING: _e(
        "DeclineRateAnomalous",
        10 * _MIN,
        20 * _MIN,
        90 * _MIN,
    ),
    Kind.ENDPOINT_DISABLED: _e(
        "StripeWebhookBacklog StripeWebhookEndpointDisabled WebhookProcessingErrors",
        15 * _MIN,
        _HOUR,
        3 * _HOUR,
    ),
    Kind.SOURCE_DOWN: _e("ExporterSourceDown ExporterDataStale", 5 * _MIN, 20 * _MIN, 2 * _HOUR),
    Kind.CONVERSION_DRIFT: _e(
        "CheckoutConversionLow RevenueBelowForecast", 6 * _HOUR, 24 * _HOUR, 30 * _HOUR
    ),
    Kind.TWILIO_DRAIN: _e("TwilioBalanceLow SmsCostHigh", 30 * _MIN, 3 * _HOUR, 6 * _HOUR),
    Kind.COMPONENT_UNHEALTHY: _e("AppHealthDegraded", 5 * _MIN, 15 * _MIN, _HOUR),
    Kind.PROBE_FAILING: _e("ProbeFailing", 5 * _MIN, 15 * _MIN, _HOUR),
    Kind.EXPORTER_DOWN: _e("ExporterDown", 3 * _MIN, 10 * _MIN, _HOUR),
}

# What an incident did to the shop, for the kinds whose harm is counted in events (the
# simulator tallies it): a miss with almost no harm done is a different story from a miss
# that cost the seller dozens of orders.
EFFECT_UNITS: dict[Kind, str] = {
    Kind.PROCESSOR_OUTAGE: "charges failed by the outage",
    Kind.SMS_PROVIDER_FAILURE: "texts failed by the provider",
    Kind.CHECKOUT_BROKEN: "orders the shop normally sells in that time",
    Kind.CONVERSION_DRIFT: "orders lost to the drift",
}

# Which exporter source a source-down incident takes out, in turn.
SOURCES: tuple[str, ...] = ("postgres", "stripe", "twilio", "http")


@dataclass(frozen=True, kw_only=True)
class Incident:
    """One injected incident: when it runs and how hard it hits."""

    kind: Kind
    start: float
    end: float
    # Kind-specific strength: share of attempts failing, source index, attack multiplier, ...
    severity: float = 1.0
    target: str = ""

    @property
    def expectation(self) -> Expectation:
        return EXPECTED[self.kind]


def _severity(kind: Kind, rng: random.Random) -> float:
    if kind is Kind.PROCESSOR_OUTAGE:
        return rng.uniform(0.2, 0.6)
    if kind is Kind.SMS_PROVIDER_FAILURE:
        return rng.uniform(0.5, 1.0)
    if kind is Kind.CARD_TESTING:
        return rng.uniform(5.0, 20.0)
    if kind is Kind.OVERSELL:
        return float(rng.randint(1, 3))
    return 1.0


def schedule(
    rng: random.Random,
    *,
    start: float,
    end: float,
    kinds: tuple[Kind, ...] = tuple(Kind),
    gap_s: float = 4 * _HOUR,
) -> tuple[Incident, ...]:
    """One incident of each kind at random, non-overlapping times in ``[start, end)``.

    Incidents are spread over equal slots, in a shuffled order of kinds, with at least
    ``gap_s`` between one's end and the next's start so that each is scored on its own.
    """
    order = list(kinds)
    rng.shuffle(order)
    slot = (end - start) / max(len(order), 1)
    incidents: list[Incident] = []
    for i, kind in enumerate(order):
        lo, hi = EXPECTED[kind].duration_s
        duration = rng.uniform(lo, hi)
        room = slot - duration - gap_s
        if room <= 0:
            raise ValueError(f"{kind}: a slot of {slot:.0f}s cannot hold {duration:.0f}s + gap")
        begin = start + i * slot + rng.uniform(0, room)
        target = rng.choice(SOURCES) if kind is Kind.SOURCE_DOWN else ""
        incidents.append(
            Incident(
                kind=kind,
                start=begin,
                end=begin + duration,
                severity=_severity(kind, rng),
                target=target,
            )
        )
    return tuple(sorted(incidents, key=lambda inc: inc.start))
