"""Acknowledging a page by SMS reply (issue 19): codes and silences as tables, Twilio's
signed inbound webhook against a real Alertmanager's silences API, `boxoffice ack`, and the
end-to-end proof on the generated configuration: a page escalates to tier 2 without an
acknowledgement and stays at tier 1 after one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from click.testing import CliRunner
from twilio.request_validator import RequestValidator

from exporter.cli import main
from exporter.generate.output import load_inputs
from exporter.smsbridge.ack import ack_code, page_tier, silence_matchers, with_code
from exporter.smsbridge.inbound import parse_ack
from exporter.smsbridge.payload import parse_notification
from exporter.smsbridge.service import build_bridge
from exporter.smsbridge.text import measure
from tests.support.alertmanager import post_alerts, running_alertmanager
from tests.support.alertpath import Sink, local_routing, write_alertmanager_config
from tests.support.alerts import alert, body, webhook
from tests.support.bridge import BEARER, ONCALL, SOLO, config, post, running_bridge, write_config
from tests.support.exporter import free_port, wait_for
from tests.support.fake_twilio import AUTH_TOKEN, FakeTwilio
from tests.support.fakehttp import serving

ROOT = Path(__file__).parent.parent
INBOUND = "https://bridge.example.com/twilio/inbound"


def _page(tier: str = "1", status: str = "firing", name: str = "PaymentSuccessRateLow") -> bytes:
    return body(
        webhook(
            alert(name, escalation=tier, status=status, source="stripe"),
            group_key=f'{{}}:{{alertname="{name}", escalation="{tier}"}}',
        )
    )


@pytest.mark.parametrize(
    ("tier", "status", "expected"),
    [("1", "firing", 1), ("2", "firing", 2), ("3", "firing", None), ("1", "resolved", None)],
)
def test_page_tier(tier: str, status: str, expected: int | None) -> None:
    assert page_tier(parse_notification(_page(tier, status))) == expected


def test_codes_are_short_stable_per_group_and_tier_and_unambiguous() -> None:
    code = ack_code("group-a", 1)
    assert code == ack_code("group-a", 1)
    assert len({code, ack_code("group-a", 2), ack_code("group-b", 1)}) == 3
    codes = {ack_code(f"group-{i}", 1) for i in range(500)}
    assert all(len(c) == 5 and not set(c) & set("01OI") for c in codes)
    assert len(codes) == 500


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ACK 7KQ2P", (True, "7KQ2P")),
        ("ack 7kq2p", (True, "7KQ2P")),
        ("  Ack  7KQ2P. ", (True, "7KQ2P")),
        ("ACK", (True, None)),
        ("ack!", (True, None)),
        ("ACK 7KQ2", (False, None)),
        ("acknowledged", (False, None)),
        ("STOP", (False, None)),
    ],
)
def test_parse_ack(text: str, expected: tuple[bool, str | None]) -> None:
    assert parse_ack(text) == expected


def test_the_code_survives_a_long_text() -> None:
    long = "CRITICAL tier 1: " + "PaymentSuccessRateLow (payments) " * 40
    text = with_code(long, "7KQ2P", 2)
    assert text.endswith("... Reply ACK 7KQ2P")
    assert measure(text).segments <= 2
    assert with_code("short", "7KQ2P", 1) == "short Reply ACK 7KQ2P"


def test_silence_matchers_keep_the_alert_and_stop_the_tiers_above() -> None:
    labels = {"alertname": "X", "escalation": "1", "severity": "critical"}
    assert silence_matchers(labels, 1) == [
        {"name": "alertname", "value": "X", "isRegex": False, "isEqual": True},
        {"name": "severity", "value": "critical", "isRegex": False, "isEqual": True},
        {"name": "escalation", "value": "2|3", "isRegex": True, "isEqual": True},
    ]
    assert silence_matchers(labels, 2)[-1]["value"] == "3"


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with serving(FakeTwilio()) as fake:
        assert isinstance(fake, FakeTwilio)
        yield fake


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "am").mkdir()
    path = tmp_path / "am" / "alertmanager.yml"
    path.write_text("route: {receiver: none}\nreceivers: [{name: none}]\n")
    with running_alertmanager(path, tmp_path / "am") as url:
        yield url


def _silences(url: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{url}/api/v2/silences", timeout=5)
    return [s for s in answer.json() if s["status"]["state"] == "active"]


def _reply(
    url: str, sender: str, text: str, sid: str, *, token: str = AUTH_TOKEN
) -> requests.Response:
    params = {"From": sender, "To": "+14155552345", "Body": text, "MessageSid": sid}
    signature = RequestValidator(token).compute_signature(INBOUND, params)
    return requests.post(
        f"{url}/twilio/inbound",
        data=urlencode(params),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
        timeout=10,
    )


def _code(twilio: FakeTwilio) -> str:
    text: str = twilio.created[0]["body"]
    assert " Reply ACK " in text, text
    return text.rsplit(" ", 1)[1]


def _replies(twilio: FakeTwilio, to: str) -> list[str]:
    return [m["body"] for m in twilio.created if m["to"] == to and m["body"].startswith("ACK")]


def test_a_signed_reply_from_a_recipient_silences_the_higher_tiers(
    tmp_path: Path, twilio: FakeTwilio, alertmanager: str
) -> None:
    cfg = config(tmp_path, twilio.url, alertmanager_url=alertmanager, inbound_url=INBOUND)
    with running_bridge(cfg) as (_parts, url):
        assert post(url, _page("1")).status_code == 200
        code = _code(twilio)
        # Bad signature (another token), a stranger, an unknown code: no silence.
        assert _reply(url, ONCALL[0], f"ACK {code}", "SM1", token="0" * 32).status_code == 403
        assert _reply(url, SOLO[0], f"ACK {code}", "SM2").status_code == 200
        assert _reply(url, ONCALL[0], "ACK ZZZZZ", "SM3").status_code == 200
        assert _replies(twilio, ONCALL[0]) == ["ACK ZZZZZ: no page with that code."]
        assert _silences(alertmanager) == []
        # The real thing.
        assert _reply(url, ONCALL[1], f"ack {code}", "SM4").status_code == 200
        (silence,) = _silences(alertmanager)
        matchers = {(m["name"], m["value"], m["isRegex"]) for m in silence["matchers"]}
        assert ("alertname", "PaymentSuccessRateLow", False) in matchers
        assert ("escalation", "2|3", True) in matchers
        assert ("source", "stripe", False) in matchers
        assert "escalation" not in {m["name"] for m in silence["matchers"] if not m["isRegex"]}
        ends = datetime.fromisoformat(silence["endsAt"].replace("Z", "+00:00"))
        assert timedelta(minutes=55) < ends - datetime.now(UTC) <= timedelta(hours=1)
        (confirmation,) = _replies(twilio, ONCALL[1])
        assert confirmation.startswith(
            f"ACK {code}: PaymentSuccessRateLow will not escalate past tier 1"
        )
        # A replay of the same message: nothing more.
        assert _reply(url, ONCALL[1], f"ack {code}", "SM4").status_code == 200
        assert len(_silences(alertmanager)) == 1
        assert len(_replies(twilio, ONCALL[1])) == 1
        # A bare ACK acknowledges the latest page to that number.
        assert post(url, _page("1", name="PaymentFailuresBurst")).status_code == 200
        assert _reply(url, ONCALL[2], "ACK", "SM5").status_code == 200
        names = {
            m["value"]
            for s in _silences(alertmanager)
            for m in s["matchers"]
            if m["name"] == "alertname"
        }
        assert names == {"PaymentSuccessRateLow", "PaymentFailuresBurst"}
        outcomes = requests.get(
            f"{url}/metrics", headers={"Authorization": f"Bearer {BEARER}"}, timeout=5
        ).text
        for outcome, count in (
            ("acknowledged", 2),
            ("bad_signature", 1),
            ("stranger", 1),
            ("unknown_code", 1),
            ("replay", 1),
        ):
            assert f'boxoffice_sms_bridge_acks_total{{outcome="{outcome}"}} {count}.0' in outcomes


def test_boxoffice_ack_by_code_or_alert_name(
    tmp_path: Path, twilio: FakeTwilio, alertmanager: str
) -> None:
    path = write_config(tmp_path, twilio.url, alertmanager_url=alertmanager, inbound_url=INBOUND)
    cfg = config(tmp_path, twilio.url, alertmanager_url=alertmanager, inbound_url=INBOUND)
    with running_bridge(cfg) as (_parts, url):
        assert post(url, _page("2")).status_code == 200
        code = _code(twilio)
    runner = CliRunner()
    result = runner.invoke(main, ["ack", code, "--config", path])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        f"ACK {code}: PaymentSuccessRateLow will not escalate past tier 2"
    )
    (silence,) = _silences(alertmanager)
    assert {"name": "escalation", "value": "3", "isRegex": True, "isEqual": True} in silence[
        "matchers"
    ]
    by_name = runner.invoke(main, ["ack", "PaymentSuccessRateLow", "--config", path])
    assert by_name.exit_code == 0, by_name.output
    unknown = runner.invoke(main, ["ack", "NoSuchAlert", "--config", path])
    assert unknown.exit_code == 2
    assert unknown.output == (
        "boxoffice: no page with code or alert name 'NoSuchAlert' in the bridge's store\n"
    )


GROUPS = {
    "engineering-lead": ["+14155550111"],
    "oncall": ["+14155550112"],
    "cto": ["+14155550113"],
    "product": ["+14155550114"],
    "everyone": ["+14155550115", "+14155550116"],
}


def test_a_page_escalates_without_an_ack_and_stays_at_tier_1_after_one(tmp_path: Path) -> None:
    """Alertmanager on the generated configuration; alerts posted as the rules fire them:
    tier 1 at once, the same alert with escalation="2" when tier2_after has passed."""
    inputs = load_inputs(ROOT)
    assert inputs.routing is not None
    am_port, bridge_port = free_port(), free_port()
    am_url = f"http://127.0.0.1:{am_port}"
    (tmp_path / "am").mkdir()
    with serving(Sink()) as sink, serving(FakeTwilio()) as twilio:
        routing = local_routing(
            inputs.routing, tmp_path, sink=sink.url, bridge=f"http://127.0.0.1:{bridge_port}"
        )
        am_config = write_alertmanager_config(tmp_path, routing, inputs.ruleset)
        cfg = config(
            tmp_path, twilio.url, groups=GROUPS, alertmanager_url=am_url, inbound_url=INBOUND
        )
        with running_alertmanager(am_config, tmp_path / "am", port=am_port):
            parts = build_bridge(cfg, listen_address=f"127.0.0.1:{bridge_port}")
            parts.start()
            try:
                parts_url = parts.server.url
                oncall, lead = GROUPS["oncall"][0], GROUPS["engineering-lead"][0]
                ends = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()

                def fire(name: str, tier: str) -> None:
                    labels = {
                        "alertname": name,
                        "severity": "critical",
                        "category": "payments",
                        "escalation": tier,
                        "source": "stripe",
                    }
                    post_alerts(am_url, [{"labels": labels, "endsAt": ends}])

                def paged(to: str, name: str) -> list[str]:
                    return [
                        m["body"]
                        for m in list(twilio.created)
                        if m["to"] == to and name in m["body"]
                    ]

                # Not acknowledged: tier 1 pages on-call, tier 2 the lead.
                fire("PaymentFailuresBurst", "1")
                wait_for(lambda: paged(oncall, "PaymentFailuresBurst"), timeout=20)
                fire("PaymentFailuresBurst", "2")
                wait_for(lambda: paged(lead, "PaymentFailuresBurst"), timeout=20)

                # Acknowledged at tier 1: tier 2 reaches nobody, tier 1 keeps its page.
                fire("PaymentSuccessRateLow", "1")
                (page,) = wait_for(lambda: paged(oncall, "PaymentSuccessRateLow"), timeout=20)
                code = page.rsplit(" ", 1)[1]
                assert _reply(parts_url, oncall, f"ACK {code}", "SMack").status_code == 200
                assert _replies(twilio, oncall)[-1].startswith(f"ACK {code}:")
                fire("PaymentSuccessRateLow", "2")

                def silenced() -> bool:
                    found = requests.get(
                        f"{am_url}/api/v2/alerts", params={"silenced": "true"}, timeout=5
                    ).json()
                    return any(
                        a["labels"]["alertname"] == "PaymentSuccessRateLow"
                        and a["labels"]["escalation"] == "2"
                        and a["status"]["state"] == "suppressed"
                        for a in found
                    )

                wait_for(silenced, timeout=20)
                # A control alert fired after the silenced one reaches the lead: Alertmanager
                # has flushed past it, and still nothing of the acknowledged alert came.
                fire("StripeWebhookBacklog", "2")
                wait_for(lambda: paged(lead, "StripeWebhookBacklog"), timeout=20)
                assert paged(lead, "PaymentSuccessRateLow") == []
                tier1 = [
                    a
                    for a in requests.get(f"{am_url}/api/v2/alerts", timeout=5).json()
                    if a["labels"]["alertname"] == "PaymentSuccessRateLow"
                    and a["labels"]["escalation"] == "1"
                ]
                assert [a["status"]["state"] for a in tier1] == ["active"]
            finally:
                parts.stop()


def test_alertmanager_url_needs_the_inbound_url(tmp_path: Path, twilio: FakeTwilio) -> None:
    from exporter.config.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        config(tmp_path, twilio.url, alertmanager_url="http://127.0.0.1:9093")
    assert str(caught.value).endswith(
        "sms_bridge.inbound_url: is required with alertmanager_url: Twilio signs replies for "
        "that URL"
    )
