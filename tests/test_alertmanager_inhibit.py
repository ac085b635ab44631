"""Inhibition with a real Alertmanager running the generated configuration.

amtool cannot evaluate inhibit rules, so Alertmanager itself is started with the config
`boxoffice generate` writes (templates from the repository; group_wait raised so nothing
is sent during the test), alerts are posted to /api/v2/alerts and their status read back.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from exporter.generate.alertmanager.config import alertmanager_config
from exporter.generate.alertmanager.routing import Duration, Routing, Timings
from exporter.generate.output import load_inputs
from tests.support.alertmanager import alert_states, post_alerts, running_alertmanager
from tests.support.exporter import wait_for

ROOT = Path(__file__).parent.parent


def _quiet(routing: Routing) -> Routing:
    """The committed routing, templates from the repository, no notification within 1h."""
    timing = routing.file.timing
    held = {
        severity: dataclasses.replace(getattr(timing, severity), group_wait=Duration(3600))
        for severity in ("critical", "high", "medium", "low")
    }
    file = dataclasses.replace(
        routing.file,
        templates_dir=str(ROOT / "alertmanager" / "templates"),
        timing=Timings(**held),
    )
    return dataclasses.replace(routing, file=file)


def _alert(name: str, severity: str, category: str, **labels: str) -> dict[str, Any]:
    return {
        "labels": {
            "alertname": name,
            "severity": severity,
            "category": category,
            "escalation": "1",
            **labels,
        },
        "annotations": {"summary": f"{name} test", "description": "value 1"},
    }


def _key(alert: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(alert["labels"].items()))


def test_source_down_and_critical_inhibit_in_a_real_alertmanager(tmp_path: Path) -> None:
    inputs = load_inputs(ROOT)
    assert inputs.routing is not None
    config = tmp_path / "alertmanager.yml"
    config.write_text(alertmanager_config(_quiet(inputs.routing), inputs.ruleset, "test"))

    postgres_down = _alert("ExporterSourceDown", "high", "monitoring", source="postgres")
    postgres_alert = _alert("NoRecentSales", "high", "sales", source="postgres")
    stripe_alert = _alert("PaymentSuccessRateLow", "critical", "payments", source="stripe")
    stripe_tier2 = {**stripe_alert, "labels": {**stripe_alert["labels"], "escalation": "2"}}
    critical = _alert("EndpointLatencyHigh", "critical", "availability", endpoint="checkout")
    high_same = _alert("EndpointLatencyHigh", "high", "availability", endpoint="checkout")
    high_other = _alert("EndpointLatencyHigh", "high", "availability", endpoint="register")
    high_tier2 = {**high_same, "labels": {**high_same["labels"], "escalation": "2"}}
    alerts = [
        postgres_down,
        postgres_alert,
        stripe_alert,
        stripe_tier2,
        critical,
        high_same,
        high_other,
        high_tier2,
    ]

    with running_alertmanager(config, tmp_path) as url:
        post_alerts(url, alerts)

        def all_listed() -> dict[tuple[tuple[str, str], ...], dict[str, Any]] | None:
            states = alert_states(url)
            return states if all(_key(a) in states for a in alerts) else None

        status = wait_for(all_listed, timeout=15)

        def inhibited(alert: dict[str, Any]) -> bool:
            return bool(status[_key(alert)]["inhibitedBy"])

        assert inhibited(postgres_alert)  # its source is down
        assert not inhibited(stripe_alert)  # another source
        assert not inhibited(stripe_tier2)  # tiers never silence each other
        assert not inhibited(postgres_down)  # a monitoring alert is no business alert
        assert inhibited(high_same)  # the critical of the same alert and labels
        assert not inhibited(high_other)  # other labels
        assert not inhibited(high_tier2)  # another tier's audience keeps hearing
        assert not inhibited(critical)
        assert status[_key(postgres_alert)]["state"] == "suppressed"
        assert status[_key(stripe_alert)]["state"] == "active"

        # One of two exporter replicas down: a warning, the other still serves, so the
        # business alerts stay live.
        replica_down = _alert(
            "ExporterReplicaDown",
            "medium",
            "monitoring",
            instance="exporter-1:9798",
            job="boxoffice",
        )
        post_alerts(url, [replica_down])

        def replica_listed() -> dict[tuple[tuple[str, str], ...], dict[str, Any]] | None:
            states = alert_states(url)
            return states if _key(replica_down) in states else None

        states = wait_for(replica_listed, timeout=15)
        assert not states[_key(stripe_alert)]["inhibitedBy"]
        assert not states[_key(stripe_tier2)]["inhibitedBy"]
        assert states[_key(stripe_alert)]["state"] == "active"

        # No replica left (ExporterDown is by job): every business alert (one with a
        # source) is silenced.
        exporter_down = _alert("ExporterDown", "critical", "monitoring", job="boxoffice")
        post_alerts(url, [exporter_down])

        def stripe_inhibited() -> dict[tuple[tuple[str, str], ...], dict[str, Any]] | None:
            states = alert_states(url)
            found = states.get(_key(stripe_alert))
            return states if found and found["inhibitedBy"] else None

        states = wait_for(stripe_inhibited, timeout=15)
        assert states[_key(stripe_tier2)]["inhibitedBy"]
        assert not states[_key(postgres_down)]["inhibitedBy"]
        assert not states[_key(high_other)]["inhibitedBy"]  # no source: not from the exporter
        assert not states[_key(exporter_down)]["inhibitedBy"]
