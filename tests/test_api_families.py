"""Pure functions of the API sources: metric families, health bodies, Retry-After, budgets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from exporter.sources.http import HealthBodyError, Probe, component_up, http_families
from exporter.sources.http import parse_components as components
from exporter.sources.pacing import BudgetedSession, RateGate, parse_retry_after
from exporter.sources.stripe import StripeView, stripe_families
from exporter.sources.stripe_api import Balance
from exporter.sources.twilio import TwilioView, twilio_families


def _registry(families: Sequence[Metric]) -> CollectorRegistry:
    class Fixed:
        def collect(self) -> Sequence[Metric]:
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())  # type: ignore[arg-type]
    return registry


def _samples(families: Sequence[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families
        for s in family.samples
    }


STRIPE = StripeView(
    charges=120,
    charges_failed={("card_declined", "customer_decline"): 3, ("unknown", "system"): 1},
    refunds=2,
    disputes=1,
    disputes_open=1,
    balance=(
        Balance("usd", "available", 125050),
        Balance("USD", "available", 50),
        Balance("jpy", "pending", 5000),
        Balance("kwd", "pending", 1500),
    ),
    events_pending_webhooks=4,
    webhook_endpoints={"enabled": 2},
)


@pytest.mark.parametrize(
    ("name", "labels", "expected"),
    [
        ("boxoffice_stripe_charges_total", {}, 120),
        (
            "boxoffice_stripe_charges_failed_total",
            {"failure_code": "card_declined", "failure_class": "customer_decline"},
            3,
        ),
        (
            "boxoffice_stripe_charges_failed_total",
            {"failure_code": "unknown", "failure_class": "system"},
            1,
        ),
        ("boxoffice_stripe_refunds_total", {}, 2),
        ("boxoffice_stripe_disputes_total", {}, 1),
        ("boxoffice_stripe_disputes_open", {}, 1),
        # Amounts in major units; the same currency in two entries is summed.
        ("boxoffice_stripe_balance", {"currency": "usd", "state": "available"}, 1251.0),
        ("boxoffice_stripe_balance", {"currency": "jpy", "state": "pending"}, 5000),  # zero-decimal
        ("boxoffice_stripe_balance", {"currency": "kwd", "state": "pending"}, 1.5),  # three-decimal
        ("boxoffice_stripe_events_pending_webhooks", {}, 4),
        ("boxoffice_stripe_webhook_endpoints", {"status": "enabled"}, 2),
        ("boxoffice_stripe_webhook_endpoints", {"status": "disabled"}, 0),  # always present
    ],
)
def test_stripe_families(name: str, labels: dict[str, str], expected: float) -> None:
    registry = _registry(stripe_families(STRIPE))
    assert registry.get_sample_value(name, labels) == expected


TWILIO = TwilioView(
    messages=50,
    failed={"30003": 4, "unknown": 1},
    cost={"usd": 0.395},
    balance=47.25,
    balance_currency="usd",
)


@pytest.mark.parametrize(
    ("view", "name", "labels", "expected"),
    [
        (TWILIO, "boxoffice_sms_messages_total", {}, 50),
        (TWILIO, "boxoffice_sms_messages_failed_total", {"error_code": "30003"}, 4),
        (TWILIO, "boxoffice_sms_messages_failed_total", {"error_code": "unknown"}, 1),
        (TWILIO, "boxoffice_sms_cost_total", {"currency": "usd"}, 0.395),
        (TWILIO, "boxoffice_twilio_balance", {"currency": "usd"}, 47.25),
        (
            TwilioView(messages=0, failed={}, cost={}, balance=None, balance_currency=None),
            "boxoffice_twilio_balance",
            {"currency": "usd"},
            None,  # a child account has no balance: no series rather than a fake 0
        ),
    ],
)
def test_twilio_families(
    view: TwilioView, name: str, labels: dict[str, str], expected: float | None
) -> None:
    assert _registry(twilio_families(view)).get_sample_value(name, labels) == expected


def test_http_families_one_series_per_target_and_component() -> None:
    probes = [
        Probe(
            target="app",
            success=True,
            duration=0.25,
            status=200,
            components={"database": True, "stripe": False},
        ),
        Probe(target="api", success=False, duration=5.0, status=0),
    ]
    assert _samples(http_families(probes)) == {
        ("boxoffice_probe_success", (("target", "api"),)): 0.0,
        ("boxoffice_probe_success", (("target", "app"),)): 1.0,
        ("boxoffice_probe_duration_seconds", (("target", "api"),)): 5.0,
        ("boxoffice_probe_duration_seconds", (("target", "app"),)): 0.25,
        ("boxoffice_probe_status_code", (("target", "api"),)): 0.0,
        ("boxoffice_probe_status_code", (("target", "app"),)): 200.0,
        ("boxoffice_app_component_up", (("component", "database"), ("target", "app"))): 1.0,
        ("boxoffice_app_component_up", (("component", "stripe"), ("target", "app"))): 0.0,
    }


@pytest.mark.parametrize(
    ("value", "up"),
    [
        ({"status": "healthy"}, True),
        ({"status": "UP"}, True),
        ({"status": "unhealthy"}, False),
        ({"status": "degraded"}, False),
        ({"state": "ok"}, True),
        ("pass", True),
        ("fail", False),
        (True, True),
        (False, False),
        ({}, False),
        (None, False),
    ],
)
def test_component_up(value: Any, up: bool) -> None:
    assert component_up(value) is up


@pytest.mark.parametrize(
    ("document", "path", "expected"),
    [
        ({"services": {"database": {"status": "healthy"}}}, None, {"database": True}),
        ({"status": "UP", "components": {"db": {"status": "DOWN"}}}, None, {"db": False}),
        ({"checks": {"redis": "pass"}}, None, {"redis": True}),
        ({"status": "ok"}, None, {}),  # no components: only the probe series
        ([1, 2], None, {}),
        ({"health": {"deps": {"queue": {"status": "healthy"}}}}, "health.deps", {"queue": True}),
    ],
)
def test_parse_components(document: Any, path: str | None, expected: dict[str, bool]) -> None:
    assert components(document, path) == expected


@pytest.mark.parametrize(
    ("document", "path", "message"),
    [
        ({"services": {}}, "health.deps", "no 'health.deps' in the health document"),
        ({"services": ["db"]}, None, "'services' in the health document is not a mapping"),
        ({"a": {"b": 1}}, "a.b", "'a.b' in the health document is not a mapping"),
    ],
)
def test_parse_components_refuses_what_it_cannot_read(
    document: Any, path: str | None, message: str
) -> None:
    with pytest.raises(HealthBodyError, match=message):
        components(document, path)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2", 2.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("Thu, 01 Jan 2026 00:00:30 GMT", 30.0),  # an HTTP date, 30 s after `now`
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    now = 1767225600.0  # 2026-01-01T00:00:00Z
    assert parse_retry_after(header, now) == expected


def test_rate_gate_waits_as_asked_but_bounded() -> None:
    clock = [100.0]
    gate = RateGate(max_wait=60, monotonic=lambda: clock[0])
    assert gate.wait_left() == 0
    assert gate.close_for(5) == 5
    clock[0] = 103.0
    assert gate.wait_left() == 2
    clock[0] = 105.0
    assert gate.wait_left() == 0
    assert gate.close_for(86400) == 60  # a broken header cannot silence a source for a day


def test_budgeted_session_refuses_requests_after_the_deadline() -> None:
    clock = [10.0]
    session = BudgetedSession(monotonic=lambda: clock[0])
    session.deadline = 12.0
    assert session.remaining() == 2.0
    clock[0] = 12.5
    with pytest.raises(requests.Timeout):
        session.get("http://127.0.0.1:9/never-sent", timeout=5)
    session.close()
