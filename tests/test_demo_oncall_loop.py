"""The demo's on-call loop end to end, with its own Notifier behind a real Alertmanager:
a page acknowledged by an SMS reply that the local Twilio API posts (signed as Twilio signs
it) stops its escalation, and stopping Alertmanager makes the bridge text the on-call group
that alerting is down, once, and that it is back, once, after a restart."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from exporter.demo.alerting import Notifier, heartbeat_timeout
from exporter.demo.profile import demo_profile
from exporter.demo.stack import heartbeat_only
from exporter.demo.supervisor import Supervisor
from exporter.demo.twilio_server import REPLY_PATH, LocalTwilioServer
from exporter.generate.output import load_inputs
from tests.support.alertmanager import alert_states, post_alerts
from tests.support.exporter import wait_for
from tests.support.inbox import RecordingInbox

ROOT = Path(__file__).resolve().parent.parent
SPEED = 60.0


def page(alertname: str, tier: str) -> dict[str, Any]:
    return {
        "labels": {
            "alertname": alertname,
            "severity": "critical",
            "category": "payments",
            "escalation": tier,
            "source": "postgres",
        },
        "annotations": {"summary": f"{alertname} (test)"},
    }


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[tuple[Notifier, LocalTwilioServer, list[str]]]:
    inputs = load_inputs(ROOT)
    assert inputs.routing is not None
    lines: list[str] = []
    phones = LocalTwilioServer("AC" + secrets.token_hex(16), secrets.token_hex(16))
    phones.start()
    supervisor = Supervisor(tmp_path, lines.append)
    notifier = Notifier(
        inputs.routing,
        inputs.ruleset,
        supervisor,
        RecordingInbox(settle=0.1),
        speed=SPEED,
        replies=phones,
    )
    try:
        notifier.start(lines.append)
        yield notifier, phones, lines
    finally:
        supervisor.stop_all()
        notifier.stop()
        phones.stop()


def tier_2(texts: list[str], alertname: str) -> list[str]:
    return [t for t in texts if t.startswith("CRITICAL tier 2:") and alertname in t]


def silences(url: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{url}/api/v2/silences", timeout=5)
    assert answer.status_code == 200, answer.text
    return [s for s in answer.json() if s["status"]["state"] == "active"]


def test_an_sms_reply_through_the_local_twilio_api_stops_the_escalation(
    loop: tuple[Notifier, LocalTwilioServer, list[str]],
) -> None:
    notifier, phones, lines = loop
    assert notifier.alertmanager is not None and notifier.sender is not None
    am = notifier.alertmanager.url
    sender = notifier.sender
    post_alerts(am, [page("PaymentSuccessRateLow", "1")])
    code_text = wait_for(
        lambda: [t for t in sender.sent("oncall") if "Reply ACK" in t], timeout=20, interval=0.2
    )[0]
    code = code_text.rsplit("Reply ACK ", 1)[1].strip()
    assert any(line.startswith("SMS     oncall:") and code in line for line in lines), lines
    # The demo's documented way: the on-call phone replies through POST /demo/reply.
    phone = notifier.groups["oncall"][0]
    answer = requests.post(f"{phones.url}{REPLY_PATH}", data={"From": phone, "Body": "ACK"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == 200
    silence = wait_for(lambda: silences(am), timeout=10, interval=0.2)
    assert len(silence) == 1
    matchers = {m["name"]: (m["value"], m["isRegex"]) for m in silence[0]["matchers"]}
    assert matchers["alertname"] == ("PaymentSuccessRateLow", False)
    assert matchers["escalation"] == ("2|3", True)
    assert any(code in t and "will not escalate" in t for t in sender.sent("oncall"))

    # Escalation: the acknowledged alert and an unacknowledged control reach tier 2 together.
    post_alerts(am, [page("PaymentSuccessRateLow", "2"), page("CheckoutErrorsHigh", "1")])
    post_alerts(am, [page("CheckoutErrorsHigh", "2")])
    wait_for(
        lambda: tier_2(sender.sent("engineering-lead"), "CheckoutErrorsHigh"),
        timeout=20,
        interval=0.2,
    )
    states = alert_states(am)
    acked = next(
        status
        for labels, status in states.items()
        if ("alertname", "PaymentSuccessRateLow") in labels and ("escalation", "2") in labels
    )
    assert acked["state"] == "suppressed"
    assert acked["silencedBy"] == [silence[0]["id"]]
    assert not tier_2(sender.sent("engineering-lead"), "PaymentSuccessRateLow")
    assert not tier_2(sender.sent("oncall"), "PaymentSuccessRateLow")
    # The reply is refused when replayed by someone else: a stranger's ACK creates nothing.
    assert phones.reply("+12025550199", f"ACK {code}") == 200
    assert len(silences(am)) == 1


def beats(notifier: Notifier) -> float:
    assert notifier.bridge is not None
    value = notifier.bridge.registry.get_sample_value(
        "boxoffice_sms_bridge_heartbeats_received_total"
    )
    return value or 0.0


def test_stopping_the_demos_alertmanager_texts_the_oncall_group_down_then_back(
    loop: tuple[Notifier, LocalTwilioServer, list[str]],
) -> None:
    notifier, _, lines = loop
    assert notifier.alertmanager is not None and notifier.sender is not None
    sender = notifier.sender
    watchdog = {"labels": {"alertname": "Watchdog", "notify": "heartbeat", "severity": "none"}}
    post_alerts(notifier.alertmanager.url, [watchdog])
    wait_for(lambda: beats(notifier) >= 2, timeout=20, interval=0.2)
    assert heartbeat_timeout(notifier.routing, SPEED) == 15.0

    notifier.stop_alertmanager()
    down = wait_for(lambda: [t for t in sender.sent("oncall") if "ALERTING DOWN" in t], timeout=30)
    assert any(line.startswith("SMS     oncall: boxoffice ALERTING DOWN") for line in lines)

    restarted = notifier.restart_alertmanager()
    post_alerts(restarted.url, [watchdog])
    wait_for(lambda: [t for t in sender.sent("oncall") if "alerting back" in t], timeout=30)
    # Several more heartbeats and checks: still one text each way.
    after = beats(notifier)
    wait_for(lambda: beats(notifier) >= after + 3, timeout=20, interval=0.2)
    assert len([t for t in sender.sent("oncall") if "ALERTING DOWN" in t]) == len(down) == 1
    assert len([t for t in sender.sent("oncall") if "alerting back" in t]) == 1
    assert all(to == "oncall" for to, t in sender.texts if "ALERTING" in t or "alerting" in t)


def test_while_the_rules_settle_prometheus_evaluates_the_watchdog_alone(tmp_path: Path) -> None:
    _, rules = demo_profile(ROOT / "rules" / "thresholds.yaml", SPEED, tmp_path / "rules")
    (only,) = heartbeat_only(rules, tmp_path)
    groups = yaml.safe_load(only.read_text(encoding="utf-8"))["groups"]
    assert [r["alert"] for g in groups for r in g["rules"]] == ["Watchdog"]
    assert heartbeat_only([], tmp_path) == []
