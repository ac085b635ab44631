"""The demo's notification half: what its receivers read back, the lines the terminal
shows, the Alertmanager configuration it derives from routing.yaml, and the receivers and
the dry-run bridge behind a real Alertmanager."""

from __future__ import annotations

import smtplib
import stat
import subprocess
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests

from exporter.demo.alerting import (
    Notifier,
    compressed,
    demo_numbers,
    local_routing,
)
from exporter.demo.buyers import Inventory
from exporter.demo.profile import compress
from exporter.demo.sinks import (
    ChatSinks,
    Notification,
    SmtpSink,
    from_title,
    routed_lines,
    sms_notification,
)
from exporter.demo.supervisor import Supervisor
from exporter.generate.alertmanager.config import alertmanager_config
from exporter.generate.alertmanager.routing import Duration, Timing, Timings
from exporter.generate.output import load_inputs
from tests.support.alertmanager import post_alerts
from tests.support.exporter import wait_for
from tests.support.inbox import RecordingInbox

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        (
            "[FIRING:2] PaymentSuccessRateLow (payments) CRITICAL tier 2",
            ("firing", "PaymentSuccessRateLow", "critical", "2"),
        ),
        (
            "[RESOLVED] InventoryLow (inventory) MEDIUM tier 1",
            ("resolved", "InventoryLow", "medium", "1"),
        ),
        ("[FIRING:1] ExporterDown", ("firing", "ExporterDown", "", "")),
    ],
)
def test_titles_are_read_back(title: str, expected: tuple[str, str, str, str]) -> None:
    found = from_title(1.0, "slack", "#alerts", title)
    assert found is not None
    assert (found.status, found.alertname, found.severity, found.tier) == expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "CRITICAL tier 1: 1 firing: PaymentSuccessRateLow (payments) - Payment success low",
            ("firing", "PaymentSuccessRateLow", "critical", "1"),
        ),
        (
            "HIGH tier 3: 3 firing: InventoryCritical (inventory) x3 - Tickets almost gone",
            ("firing", "InventoryCritical", "high", "3"),
        ),
        ("ALERT: 1 firing: Custom", ("firing", "Custom", "", "")),
        ("RESOLVED: NoRecentSales (sales)", ("resolved", "NoRecentSales", "", "")),
    ],
)
def test_bridge_texts_are_read_back(body: str, expected: tuple[str, str, str, str]) -> None:
    found = sms_notification(1.0, "oncall", body)
    assert found is not None
    assert (found.status, found.alertname, found.severity, found.tier) == expected
    assert sms_notification(1.0, "oncall", "hello") is None


def _n(channel: str, target: str, status: str = "firing", tier: str = "1") -> Notification:
    severity = "critical" if status == "firing" else ""
    return Notification(
        at=0.0,
        channel=channel,
        target=target,
        status=status,
        alertname="PaymentSuccessRateLow",
        severity=severity,
        tier=tier if status == "firing" else "",
        text="text",
    )


def test_routed_lines_group_one_notification_and_mark_reminders() -> None:
    told: set[tuple[str, str, str]] = set()
    first = [
        _n("sms", "oncall"),
        _n("slack", "#payment-alerts"),
        _n("sms", "engineering-lead"),
        _n("pagerduty", "trigger"),
        _n("slack", "#critical-alerts"),
    ]
    assert routed_lines(first, told) == [
        "ROUTED  PaymentSuccessRateLow CRITICAL tier 1 -> slack #critical-alerts "
        "#payment-alerts; pagerduty trigger; sms engineering-lead oncall"
    ]
    assert routed_lines([_n("slack", "#payment-alerts")], told)[0].endswith(
        "tier 1 (reminder) -> slack #payment-alerts"
    )
    resolved = [_n("sms", "oncall", "resolved"), _n("slack", "#payment-alerts", "resolved")]
    assert routed_lines(resolved, told) == [
        "ROUTED  RESOLVED PaymentSuccessRateLow -> slack #payment-alerts; sms oncall"
    ]
    assert not told, "a resolution forgets the group: the next firing is news again"


def test_the_inbox_prints_once_deliveries_settle() -> None:
    lines: list[str] = []
    inbox = RecordingInbox(lines.append, settle=0.2)
    inbox.add(_n("slack", "#payment-alerts"))
    inbox.add(_n("sms", "oncall"))
    inbox.add(None)
    assert lines == []
    wait_for(lambda: lines, timeout=5, interval=0.05)
    assert len(lines) == 1 and "slack #payment-alerts; sms oncall" in lines[0]
    assert inbox.unreadable == 1 and len(inbox.all()) == 2


def test_chat_sinks_answer_like_slack_and_pagerduty() -> None:
    inbox = RecordingInbox(settle=0.05)
    sinks = ChatSinks(inbox)
    sinks.start()
    try:
        slack = {
            "channel": "#alerts",
            "attachments": [{"title": "[FIRING:1] NoRecentSales (sales) HIGH tier 1"}],
        }
        answer = requests.post(f"{sinks.url}/slack", json=slack, timeout=5)
        assert (answer.status_code, answer.text) == (200, "ok")
        event = {"event_action": "resolve", "payload": {"summary": "[RESOLVED] NoRecentSales"}}
        answer = requests.post(f"{sinks.url}/pagerduty", json=event, timeout=5)
        assert answer.status_code == 202 and answer.json()["status"] == "success"
        assert requests.post(f"{sinks.url}/slack", data=b"{", timeout=5).status_code == 400
        assert requests.post(f"{sinks.url}/other", json={}, timeout=5).status_code == 404
    finally:
        sinks.stop()
    got = [(n.channel, n.target, n.status, n.alertname) for n in inbox.all()]
    assert got == [
        ("slack", "#alerts", "firing", "NoRecentSales"),
        ("pagerduty", "resolve", "resolved", "NoRecentSales"),
    ]


def test_the_smtp_sink_takes_mail_from_a_real_smtp_client() -> None:
    inbox = RecordingInbox(settle=0.05)
    sink = SmtpSink(inbox)
    sink.start()
    try:
        message = EmailMessage()
        message["From"] = "boxoffice-alerts@example.com"
        message["To"] = "oncall@example.com, cto@example.com"
        message["Subject"] = "[FIRING:1] InventoryOversold (inventory) CRITICAL tier 1"
        message.set_content(".leading dot\nbody\n")
        host, port = sink.address.split(":")
        with smtplib.SMTP(host, int(port), timeout=5) as client:
            client.ehlo()
            client.send_message(message)
    finally:
        sink.stop()
    got = sorted((n.target, n.alertname, n.tier) for n in inbox.all())
    assert got == [
        ("cto@example.com", "InventoryOversold", "1"),
        ("oncall@example.com", "InventoryOversold", "1"),
    ]


def test_grouping_waits_are_compressed_never_below_a_second() -> None:
    timings = Timings(
        critical=Timing(
            group_wait=Duration(10), group_interval=Duration(60), repeat_interval=Duration(3600)
        )
    )
    fast = compressed(timings, 60)
    assert (
        fast.critical.group_wait,
        fast.critical.group_interval,
        fast.critical.repeat_interval,
    ) == (1, 1, 60)
    assert (fast.high.group_wait, fast.high.group_interval) == (1, 5)


def test_the_demo_profile_treats_the_whole_week_as_business_hours() -> None:
    import yaml

    data = yaml.safe_load((ROOT / "rules/thresholds.yaml").read_text())
    demo = compress(data, 600)
    assert demo["business_hours"]["start"] == "00:00" and demo["business_hours"]["end"] == "24:00"
    assert len(demo["business_hours"]["days"]) == 7
    assert demo["alerts"]["ExporterDataStale"]["thresholds"] == {"high": "10s"}  # floored


def test_local_routing_keeps_the_matrix_and_moves_receivers_and_secrets(tmp_path: Path) -> None:
    inputs = load_inputs(ROOT)
    assert inputs.routing is not None
    routing = local_routing(
        inputs.routing,
        tmp_path,
        chat_url="http://127.0.0.1:1",
        smtp="127.0.0.1:2",
        bridge_url="http://127.0.0.1:3",
        bridge_token="t0ken",
        speed=60,
    )
    text = alertmanager_config(routing, inputs.ruleset, "demo")
    assert "/run/secrets" not in text and "t0ken" not in text
    assert "http://127.0.0.1:3/alerts/oncall" in text and "127.0.0.1:2" in text
    for secret in (tmp_path / "secrets").iterdir():
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert (tmp_path / "secrets" / "sms_bridge_token").read_text().strip() == "t0ken"
    assert routing.file.audiences == inputs.routing.file.audiences
    assert routing.file.escalation == inputs.routing.file.escalation
    (tmp_path / "templates").mkdir()
    config = tmp_path / "alertmanager.yml"
    config.write_text(text)
    checked = subprocess.run(
        ["amtool", "check-config", str(config)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    groups = demo_numbers(routing)
    assert sorted(groups) == ["cto", "engineering-lead", "everyone", "oncall", "product"]
    assert all(len(n) == 1 and n[0].startswith("+1202555") for n in groups.values())


def test_the_dry_run_bridge_prints_texts_behind_a_real_alertmanager(tmp_path: Path) -> None:
    inputs = load_inputs(ROOT)
    assert inputs.routing is not None
    lines: list[str] = []
    inbox = RecordingInbox(lines.append, settle=0.3)
    supervisor = Supervisor(tmp_path, lambda line: None)
    notifier = Notifier(inputs.routing, inputs.ruleset, supervisor, inbox, speed=60)
    try:
        alertmanager = notifier.start(lambda line: None)
        alert = {
            "labels": {
                "alertname": "InventoryOversold",
                "severity": "critical",
                "category": "inventory",
                "escalation": "1",
                "source": "postgres",
                "event": "nyc",
                "city": "New York",
                "tier": "ga",
            },
            "annotations": {"summary": "Ticket tier oversold"},
        }
        post_alerts(alertmanager.url, [alert])
        wait_for(lambda: any("sms" in line for line in lines), timeout=20, interval=0.2)
        time.sleep(0.5)
    finally:
        supervisor.stop_all()
        notifier.stop()
    routed = [line for line in lines if line.startswith("ROUTED  InventoryOversold")]
    assert routed, lines
    shown = " ".join(routed)
    for where in (
        "slack #critical-alerts #inventory-alerts",
        "pagerduty trigger",
        "email oncall@example.com",
        "sms oncall",
    ):
        assert where in shown, shown
    assert not any(n.channel == "sms" and n.target.startswith("+") for n in inbox.all())


def test_a_broken_check_oversells_the_tier_that_just_sold_out() -> None:
    from exporter.demo.buyers import Tier
    from exporter.demo.store import TierRow

    def row(tier_id: int, taken: int) -> TierRow:
        return TierRow(
            id=tier_id,
            event="austin",
            city="Austin",
            tier="ga",
            price_cents=14900,
            currency="usd",
            capacity=100,
            taken=taken,
        )

    inventory = Inventory([row(1, 100), row(2, 40), row(3, 103)])
    assert all(isinstance(t, Tier) for t in inventory.tiers)
    assert [t.row.id for t in inventory.fewest_left_ga()] == [1]  # 0 left; -3 is excluded


def test_a_report_keeps_its_text_and_is_never_a_reminder() -> None:
    title = "SalesTicker: Sales ticker: new paid orders"
    first = from_title(1.0, "slack", "#sales-notifications", title, "14:32 local: 4 new")
    assert first is not None and first.alertname == "SalesTicker" and first.body.endswith("new")
    told: set[tuple[str, str, str]] = set()
    assert routed_lines([first], told) == ["ROUTED  SalesTicker -> slack #sales-notifications"]
    # The next minute's ticker is its own news, not a reminder of this one.
    assert routed_lines([first], told) == ["ROUTED  SalesTicker -> slack #sales-notifications"]


def test_the_demo_profile_sets_the_digest_minutes_ahead_or_leaves_reports_off() -> None:
    from exporter.demo.profile import reports_soon

    data = {"timezone": "UTC", "digest": {"morning": "08:00"}}
    soon = reports_soon(data, 120, now=0.0)  # 1970-01-01 00:00 UTC
    assert soon["digest"]["evening"] == "00:03" and soon["digest"]["morning"] is None
    assert soon["ticker"]["enabled"] is True
