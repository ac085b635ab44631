"""Notifications from a real Alertmanager on the generated configuration.

Alertmanager runs the config `boxoffice generate` writes from the committed routing.yaml,
with only the endpoints pointed at 127.0.0.1 (a Slack and PagerDuty sink, the real SMS
bridge in front of a fake Twilio, an SMTP port nobody listens on), short timings, and
business hours placed so that now is outside them. Alerts go in through /api/v2/alerts.
"""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from exporter.generate.alertmanager.config import alertmanager_config
from exporter.generate.alertmanager.routing import Duration, Routing, Timing
from exporter.generate.output import load_inputs
from exporter.generate.rules.ruleset import RuleSet
from exporter.generate.thresholds import BusinessHours
from exporter.smsbridge.service import RunningParts, build_bridge
from tests.support.alertmanager import post_alerts, running_alertmanager
from tests.support.alertpath import local_routing
from tests.support.bridge import config, running_bridge
from tests.support.exporter import free_port, wait_for
from tests.support.fake_twilio import FakeTwilio, error_reply
from tests.support.fakehttp import FakeServer, Reply, Request, serving

ROOT = Path(__file__).parent.parent
GROUPS = {
    "engineering-lead": ["+14155550111"],
    "oncall": ["+14155550112"],
    "cto": ["+14155550113"],
    "product": ["+14155550114"],
    "everyone": ["+14155550115", "+14155550116"],
}


class Sink(FakeServer):
    """Slack's incoming webhook and PagerDuty's Events API: accept and record."""

    def answer(self, request: Request) -> Reply:
        if request.path == "/pagerduty":
            return Reply.json(202, {"status": "success", "message": "Event processed"})
        return Reply(200, b"ok")

    def posted(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in list(self.requests) if r.path == path]


def _outside_now() -> BusinessHours:
    """One business hour starting two hours from now (UTC): now is outside it."""
    now = datetime.now(UTC)
    start, end = now + timedelta(hours=2), now + timedelta(hours=3)
    end_text = "24:00" if end.hour == 0 else f"{end.hour:02d}:00"
    return BusinessHours(f"{start.hour:02d}:00", end_text)


def _local(routing: Routing, tmp: Path, sink: str, bridge: str) -> Routing:
    fast = Timing(Duration(1), Duration(2), Duration(3600))
    return local_routing(routing, tmp, sink=sink, bridge=bridge, heartbeat=None, fast=fast)


def _outside_business_hours(ruleset: RuleSet) -> RuleSet:
    th = ruleset.thresholds
    file = dataclasses.replace(th.file, timezone="UTC", business_hours=_outside_now())
    return dataclasses.replace(ruleset, thresholds=dataclasses.replace(th, file=file))


def _alert(name: str, severity: str, category: str, level: str, **labels: str) -> dict[str, Any]:
    runbook = f"https://git.example.com/boxoffice/blob/main/docs/runbooks/{name}.md"
    return {
        "labels": {
            "alertname": name,
            "severity": severity,
            "category": category,
            "escalation": level,
            **labels,
        },
        "annotations": {
            "summary": f"{name} summary",
            "description": f"{name} value 0.91",
            "runbook_url": runbook,
            "dashboard_url": "http://localhost:3000/d/boxoffice-operations",
        },
    }


def _texted(twilio: FakeTwilio) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for message in list(twilio.created):
        out.setdefault(message["to"], []).append(message["body"])
    return out


def test_alerts_reach_the_matrix_channels_and_medium_is_muted_outside_business_hours(
    tmp_path: Path,
) -> None:
    inputs = load_inputs(ROOT)
    assert inputs.routing is not None
    with serving(Sink()) as sink, serving(FakeTwilio()) as twilio:
        bridge_cfg = config(tmp_path, twilio.url, groups=GROUPS)
        with running_bridge(bridge_cfg) as (_parts, bridge_url):
            routing = _local(inputs.routing, tmp_path, sink.url, bridge_url)
            ruleset = _outside_business_hours(inputs.ruleset)
            am_config = tmp_path / "alertmanager.yml"
            am_config.write_text(alertmanager_config(routing, ruleset, "test"))
            payment = _alert("PaymentSuccessRateLow", "critical", "payments", "1", source="stripe")
            payment_t2 = _alert(
                "PaymentSuccessRateLow", "critical", "payments", "2", source="stripe"
            )
            inventory_high = _alert(
                "InventoryCritical",
                "high",
                "inventory",
                "1",
                event="nyc",
                city="nyc",
                tier="vip",
                source="postgres",
            )
            inventory_medium = _alert(
                "InventoryLow",
                "medium",
                "inventory",
                "1",
                event="nyc",
                city="nyc",
                tier="ga",
                source="postgres",
            )
            with running_alertmanager(am_config, tmp_path) as am:
                post_alerts(am, [payment, payment_t2, inventory_high, inventory_medium])

                def delivered() -> bool:
                    channels = {m["channel"] for m in sink.posted("/slack")}
                    texted = _texted(twilio)
                    return (
                        {"#payment-alerts", "#critical-alerts", "#inventory-alerts"} <= channels
                        and bool(sink.posted("/pagerduty"))
                        and all(
                            n in texted for g in ("oncall", "engineering-lead") for n in GROUPS[g]
                        )
                    )

                wait_for(delivered, timeout=30, interval=0.2)
                # The medium alert had the same group_wait: give it two more group intervals.
                time.sleep(4.5)
                slack = sink.posted("/slack")
                pagerduty = sink.posted("/pagerduty")
                texted = _texted(twilio)

    titles = {m["channel"]: m["attachments"][0]["title"] for m in slack}
    assert not any("InventoryLow" in m["attachments"][0]["title"] for m in slack)  # muted
    assert (
        titles["#payment-alerts"] == "[FIRING:1] PaymentSuccessRateLow (payments) CRITICAL tier 1"
    )
    assert titles["#critical-alerts"] == titles["#payment-alerts"]
    assert titles["#inventory-alerts"] == "[FIRING:1] InventoryCritical (inventory) HIGH tier 1"
    # Slack hears tier 1 only, once per channel.
    assert sorted(m["channel"] for m in slack) == [
        "#critical-alerts",
        "#inventory-alerts",
        "#payment-alerts",
    ]
    critical = next(m for m in slack if m["channel"] == "#payment-alerts")["attachments"][0]
    assert critical["color"] == "#000000"
    assert critical["title_link"] == "http://localhost:3000/d/boxoffice-operations"
    assert "PaymentSuccessRateLow value 0.91" in critical["text"]
    assert (
        "<https://git.example.com/boxoffice/blob/main/docs/runbooks/PaymentSuccessRateLow.md|Runbook>"
        in critical["text"]
    )
    assert "source=stripe" in critical["text"]
    # PagerDuty: the critical tier 1 only, with its details.
    assert len(pagerduty) == 1
    event = pagerduty[0]
    assert event["routing_key"] == "0123456789abcdef0123456789abcdef"
    assert event["payload"]["severity"] == "critical"
    assert event["payload"]["summary"].startswith("[FIRING:1] PaymentSuccessRateLow")
    assert event["payload"]["custom_details"]["runbook_url"].endswith("PaymentSuccessRateLow.md")
    # SMS: tier 1 (critical and high) to on-call, tier 2 to the lead, once each per
    # notification; nothing to the executives (tier 3 did not fire), nothing for medium.
    lead, oncall = GROUPS["engineering-lead"][0], GROUPS["oncall"][0]
    assert sorted(texted) == sorted([lead, oncall])
    assert len(texted[oncall]) == 2  # the critical payment group and the high inventory group
    assert any(b.startswith("CRITICAL tier 1: ") for b in texted[oncall])
    assert any(b.startswith("HIGH tier 1: ") for b in texted[oncall])
    assert len(texted[lead]) == 1
    assert texted[lead][0].startswith("CRITICAL tier 2: ")
    assert not any("InventoryLow" in b for bodies in texted.values() for b in bodies)


def test_twilio_outage_and_bridge_restart_mid_retry_text_each_recipient_exactly_once(
    tmp_path: Path,
) -> None:
    inputs = load_inputs(ROOT)
    assert inputs.routing is not None
    # Two audiences of one tier (tier 3: CTO and product): one's number fails, one's works.
    lead, oncall = GROUPS["cto"][0], GROUPS["product"][0]
    port = free_port()
    with serving(Sink()) as sink, serving(FakeTwilio()) as twilio:
        bridge_cfg = config(tmp_path, twilio.url, groups=GROUPS)
        routing = _local(inputs.routing, tmp_path, sink.url, f"http://127.0.0.1:{port}")
        am_config = tmp_path / "alertmanager.yml"
        am_config.write_text(alertmanager_config(routing, inputs.ruleset, "test"))
        twilio.failing[lead] = error_reply(503, 20500, "Service Unavailable")
        running: RunningParts | None = build_bridge(bridge_cfg, listen_address=f"127.0.0.1:{port}")
        running.start()
        try:
            with running_alertmanager(am_config, tmp_path) as am:
                post_alerts(
                    am,
                    [_alert("PaymentSuccessRateLow", "critical", "payments", "3", source="stripe")],
                )

                def attempts_to_lead() -> int:
                    sent = [r for r in list(twilio.requests) if r.method == "POST"]
                    return sum(1 for r in sent if f"To=%2B{lead[1:]}" in r.body.decode())

                # Alertmanager retries the 503 the bridge answers while Twilio fails (the
                # bridge itself tries Twilio 4 times per webhook).
                wait_for(lambda: attempts_to_lead() >= 5, timeout=30, interval=0.2)
                assert oncall in _texted(twilio) and lead not in _texted(twilio)
                running.stop()  # the bridge goes away mid-retry
                running = None
                twilio.failing.clear()  # and Twilio recovers meanwhile
                running = build_bridge(bridge_cfg, listen_address=f"127.0.0.1:{port}")
                running.start()
                wait_for(lambda: lead in _texted(twilio), timeout=30, interval=0.2)
                time.sleep(4.5)  # two more group intervals: re-notifications are deduplicated
        finally:
            if running is not None:
                running.stop()
    texted = _texted(twilio)
    tier3 = [n for g in ("cto", "product", "everyone") for n in GROUPS[g]]
    assert sorted(texted) == sorted(tier3)
    assert all(len(texted[n]) == 1 for n in tier3)
    assert texted[lead] == texted[oncall]
