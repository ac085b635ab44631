"""Alertmanager webhook bodies (version 4) for the SMS bridge tests."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def alert(
    name: str,
    *,
    category: str = "payments",
    severity: str = "critical",
    status: str = "firing",
    fingerprint: str | None = None,
    starts_at: str = "2026-11-26T09:00:00.123456789Z",
    summary: str | None = None,
    **labels: str,
) -> dict[str, Any]:
    """One alert as Alertmanager posts it."""
    annotations = {"runbook_url": f"https://runbooks.example/{name}"}
    if summary is not None:
        annotations["summary"] = summary
    return {
        "status": status,
        "labels": {"alertname": name, "category": category, "severity": severity, **labels},
        "annotations": annotations,
        "startsAt": starts_at,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fingerprint or _fingerprint(name, labels),
    }


def _fingerprint(name: str, labels: dict[str, str]) -> str:
    identity = json.dumps([name, sorted(labels.items())]).encode()
    return hashlib.sha256(identity).hexdigest()[:16]


def webhook(
    *alerts: dict[str, Any],
    status: str | None = None,
    group_key: str = '{}/{severity=~"critical|high"}:{alertname="PaymentSuccessRateLow"}',
    truncated: int = 0,
) -> dict[str, Any]:
    """A version 4 webhook document around ``alerts``."""
    if status is None:
        status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": truncated,
        "status": status,
        "receiver": "sms-oncall",
        "groupLabels": {"alertname": alerts[0]["labels"]["alertname"]} if alerts else {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def body(document: Any) -> bytes:
    """JSON bytes as Alertmanager sends them."""
    return json.dumps(document).encode()


def payment_alert(**overrides: Any) -> dict[str, Any]:
    """The critical payment alert most tests send."""
    fields: dict[str, Any] = {
        "fingerprint": "a1b2c3d4e5f60718",
        "summary": "Payment success 91% over 5m",
        "escalation": "2",
    }
    fields.update(overrides)
    return alert("PaymentSuccessRateLow", **fields)
