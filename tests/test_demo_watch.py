"""The terminal's alert lines: one per alert firing, one per escalation tier it reaches, one
when it resolves (pure; the Prometheus side is in test_demo_prometheus.py)."""

from __future__ import annotations

from typing import Any

from exporter.demo.watch import Firing, transitions


def _alert(name: str, escalation: str, state: str = "firing", **labels: str) -> dict[str, Any]:
    return {
        "labels": {
            "alertname": name,
            "severity": "critical",
            "escalation": escalation,
            "category": "payments",
            "job": "boxoffice",
            **labels,
        },
        "state": state,
    }


def test_an_alert_fires_escalates_and_resolves_once_each() -> None:
    firing: Firing = {}
    steps = [
        [_alert("PaymentSuccessRateLow", "1", "pending", source="postgres")],
        [_alert("PaymentSuccessRateLow", "1", source="postgres")],
        [
            _alert("PaymentSuccessRateLow", "1", source="postgres"),
            _alert("PaymentSuccessRateLow", "2", source="postgres"),
        ],
        [
            _alert("PaymentSuccessRateLow", "2", source="postgres"),
            _alert("PaymentSuccessRateLow", "1", source="postgres"),
        ],
        [],
    ]
    shown = []
    for alerts in steps:
        firing, lines = transitions(firing, alerts)
        shown.append(lines)
    assert shown == [
        [],
        ["ALERT FIRING    PaymentSuccessRateLow severity=critical {source=postgres} tier=1"],
        ["ALERT ESCALATED PaymentSuccessRateLow severity=critical {source=postgres} tier=2"],
        [],
        ["ALERT RESOLVED  PaymentSuccessRateLow severity=critical {source=postgres}"],
    ]


def test_alerts_on_different_labels_are_told_apart() -> None:
    _firing, lines = transitions(
        {},
        [
            _alert("InventoryOversold", "1", event="austin", tier="ga"),
            _alert("InventoryOversold", "1", event="denver", tier="ga"),
        ],
    )
    assert len(lines) == 2
    assert "{event=austin,tier=ga}" in lines[0]
