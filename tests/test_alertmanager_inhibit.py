"""Inhibition with a real Alertmanager running the generated configuration.

amtool cannot evaluate inhibit rules, so Alertmanager itself is started with the config
`boxoffice generate` writes (templates from the repository; group_wait raised so nothing
is sent during the test), alerts are posted to /api/v2/alerts and their status read back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from exporter.generate.alertmanager.config import alertmanager_config
from exporter.generate.output import load_inputs
from tests.support.alertmanager import (
    alert_key,
    alert_payload,
    alert_states,
    post_alerts,
    quiet_routing,
    running_alertmanager,
)
from tests.support.exporter import wait_for

ROOT = Path(__file__).parent.parent


def test_source_down_and_critical_inhibit_in_a_real_alertmanager(tmp_path: Path) -> None:
    inputs = load_inputs(ROOT)
    assert inputs.routing is not None
    config = tmp_path / "alertmanager.yml"
    config.write_text(alertmanager_config(quiet_routing(inputs.routing), inputs.ruleset, "test"))

    postgres_down = alert_payload("ExporterSourceDown", "high", "monitoring", source="postgres")
    postgres_alert = alert_payload("NoRecentSales", "high", "sales", source="postgres")
    stripe_alert = alert_payload("PaymentSuccessRateLow", "critical", "payments", source="stripe")
    stripe_tier2 = {**stripe_alert, "labels": {**stripe_alert["labels"], "escalation": "2"}}
    critical = alert_payload("EndpointLatencyHigh", "critical", "availability", endpoint="checkout")
    high_same = alert_payload("EndpointLatencyHigh", "high", "availability", endpoint="checkout")
    high_other = alert_payload("EndpointLatencyHigh", "high", "availability", endpoint="register")
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
            return states if all(alert_key(a) in states for a in alerts) else None

        status = wait_for(all_listed, timeout=15)

        def inhibited(alert: dict[str, Any]) -> bool:
            return bool(status[alert_key(alert)]["inhibitedBy"])

        assert inhibited(postgres_alert)  # its source is down
        assert not inhibited(stripe_alert)  # another source
        assert not inhibited(stripe_tier2)  # tiers never silence each other
        assert not inhibited(postgres_down)  # a monitoring alert is no business alert
        assert inhibited(high_same)  # the critical of the same alert and labels
        assert not inhibited(high_other)  # other labels
        assert not inhibited(high_tier2)  # another tier's audience keeps hearing
        assert not inhibited(critical)
        assert status[alert_key(postgres_alert)]["state"] == "suppressed"
        assert status[alert_key(stripe_alert)]["state"] == "active"

        # One of two exporter replicas down: a warning, the other still serves, so the
        # business alerts stay live.
        replica_down = alert_payload(
            "ExporterReplicaDown",
            "medium",
            "monitoring",
            instance="exporter-1:9798",
            job="boxoffice",
        )
        post_alerts(url, [replica_down])

        def replica_listed() -> dict[tuple[tuple[str, str], ...], dict[str, Any]] | None:
            states = alert_states(url)
            return states if alert_key(replica_down) in states else None

        states = wait_for(replica_listed, timeout=15)
        assert not states[alert_key(stripe_alert)]["inhibitedBy"]
        assert not states[alert_key(stripe_tier2)]["inhibitedBy"]
        assert states[alert_key(stripe_alert)]["state"] == "active"

        # No replica left (ExporterDown is by job): every business alert (one with a
        # source) is silenced.
        exporter_down = alert_payload("ExporterDown", "critical", "monitoring", job="boxoffice")
        post_alerts(url, [exporter_down])

        def stripe_inhibited() -> dict[tuple[tuple[str, str], ...], dict[str, Any]] | None:
            states = alert_states(url)
            found = states.get(alert_key(stripe_alert))
            return states if found and found["inhibitedBy"] else None

        states = wait_for(stripe_inhibited, timeout=15)
        assert states[alert_key(stripe_tier2)]["inhibitedBy"]
        assert not states[alert_key(postgres_down)]["inhibitedBy"]
        assert not states[alert_key(high_other)]["inhibitedBy"]  # no source: not from the exporter
        assert not states[alert_key(exporter_down)]["inhibitedBy"]
