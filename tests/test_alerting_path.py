"""The alerting path watching itself, with real parts (issue 19): a real Prometheus on the
generated rules (compressed 60x, as in the demo), a real Alertmanager on the generated
configuration, the real SMS bridge and the fake Twilio.

- Alertmanager stopped: the Watchdog's heartbeats stop reaching the bridge, which texts the
  on-call group that the pipeline is down, once; Alertmanager started again: "back", once.
- Slack answering 500: Prometheus, scraping Alertmanager, fires
  AlertmanagerNotificationsFailing, and it reaches the on-call group by SMS.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from exporter.generate.output import load_inputs
from exporter.smsbridge.service import build_bridge
from tests.support.alertmanager import post_alerts, running_alertmanager
from tests.support.alertpath import Sink, fast_rules, local_routing, write_alertmanager_config
from tests.support.bridge import BEARER, config
from tests.support.exporter import free_port, scrape, value, wait_for
from tests.support.fake_twilio import FakeTwilio
from tests.support.fakehttp import serving
from tests.support.prometheus import running_prometheus

ROOT = Path(__file__).parent.parent
GROUPS = {
    "engineering-lead": ["+14155550111"],
    "oncall": ["+14155550112", "+14155550117"],
    "cto": ["+14155550113"],
    "product": ["+14155550114"],
    "everyone": ["+14155550115", "+14155550116"],
}
AUTH = {"Authorization": f"Bearer {BEARER}"}


def _all_texted(twilio: FakeTwilio, start: str, numbers: set[str]) -> dict[str, int]:
    """The texts starting with ``start`` once every number in ``numbers`` has one, else {}."""
    found = _texts(twilio, start)
    return found if numbers <= set(found) else {}


def _texts(twilio: FakeTwilio, start: str) -> dict[str, int]:
    """How many SMS starting with ``start`` each number got."""
    out: dict[str, int] = {}
    for message in list(twilio.created):
        if message["body"].startswith(start):
            out[message["to"]] = out.get(message["to"], 0) + 1
    return out


def _dirs(tmp: Path, *names: str) -> list[Path]:
    out = []
    for name in names:
        (tmp / name).mkdir()
        out.append(tmp / name)
    return out


def test_alertmanager_stopped_texts_the_oncall_group_once_and_again_when_back(
    tmp_path: Path,
) -> None:
    inputs = load_inputs(ROOT)
    assert inputs.routing is not None
    prom_dir, am_dir = _dirs(tmp_path, "prometheus", "alertmanager")
    rules = fast_rules(tmp_path)
    am_port, bridge_port = free_port(), free_port()
    bridge_url = f"http://127.0.0.1:{bridge_port}"
    oncall = set(GROUPS["oncall"])
    with serving(Sink()) as sink, serving(FakeTwilio()) as twilio:
        routing = local_routing(inputs.routing, tmp_path, sink=sink.url, bridge=bridge_url)
        am_config = write_alertmanager_config(tmp_path, routing, inputs.ruleset)
        cfg = config(
            tmp_path, twilio.url, groups=GROUPS, heartbeat_group="oncall", heartbeat_timeout="10s"
        )
        alerting = (f"127.0.0.1:{am_port}",)
        with running_prometheus(prom_dir, {}, rules, alertmanagers=alerting):
            # Prometheus is up first, so the bridge's grace of one timeout from its start
            # is only spent on Alertmanager starting.
            parts = build_bridge(cfg, listen_address=f"127.0.0.1:{bridge_port}")
            parts.start()
            try:
                with running_alertmanager(am_config, am_dir, port=am_port):

                    def beats() -> float:
                        found = value(
                            scrape(bridge_url, headers=AUTH),
                            "boxoffice_sms_bridge_heartbeats_received_total",
                        )
                        return found or 0.0

                    wait_for(lambda: beats() >= 3, timeout=30, interval=0.5)
                    assert twilio.created == []  # alive: nobody is texted
                    assert sink.requests == []  # the Watchdog reached the heartbeat only
                # Alertmanager is stopped; Prometheus and the bridge keep running.
                down = wait_for(
                    lambda: _all_texted(twilio, "boxoffice ALERTING DOWN", oncall), timeout=30
                )
                assert set(down) == oncall and set(down.values()) == {1}
                metrics = scrape(bridge_url, headers=AUTH)
                assert value(metrics, "boxoffice_sms_bridge_pipeline_down") == 1
                with running_alertmanager(am_config, am_dir, port=am_port):
                    back = wait_for(
                        lambda: _all_texted(twilio, "boxoffice alerting back", oncall),
                        timeout=45,
                    )
                    assert set(back) == oncall and set(back.values()) == {1}
            finally:
                parts.stop()
        # Once each way, to the on-call group only.
        assert {m["to"] for m in twilio.created} == oncall
        assert len(twilio.created) == 2 * len(oncall)


def test_a_failing_slack_raises_the_notification_failure_alert_on_the_other_channels(
    tmp_path: Path,
) -> None:
    inputs = load_inputs(ROOT)
    assert inputs.routing is not None
    prom_dir, am_dir = _dirs(tmp_path, "prometheus", "alertmanager")
    rules = fast_rules(tmp_path)
    am_port, bridge_port = free_port(), free_port()
    sink = Sink()
    sink.slack_status = 500
    with serving(sink), serving(FakeTwilio()) as twilio:
        routing = local_routing(
            inputs.routing, tmp_path, sink=sink.url, bridge=f"http://127.0.0.1:{bridge_port}"
        )
        am_config = write_alertmanager_config(tmp_path, routing, inputs.ruleset)
        parts = build_bridge(
            config(tmp_path, twilio.url, groups=GROUPS),
            listen_address=f"127.0.0.1:{bridge_port}",
        )
        parts.start()
        try:
            with (
                running_alertmanager(am_config, am_dir, port=am_port) as am_url,
                running_prometheus(
                    prom_dir,
                    {"alertmanager": f"127.0.0.1:{am_port}"},
                    rules,
                    alertmanagers=(f"127.0.0.1:{am_port}",),
                ) as prometheus,
            ):
                ends = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
                labels = {
                    "alertname": "PaymentSuccessRateLow",
                    "severity": "critical",
                    "category": "payments",
                    "escalation": "1",
                    "source": "stripe",
                }
                post_alerts(am_url, [{"labels": labels, "endsAt": ends}])
                wait_for(lambda: sink.requests, timeout=20)  # Slack was asked, and failed

                def firing() -> list[dict[str, object]]:
                    return prometheus.query(
                        'ALERTS{alertname="AlertmanagerNotificationsFailing", '
                        'integration="slack", alertstate="firing", escalation="1"}'
                    )

                (alert,) = wait_for(firing, timeout=90, interval=1)
                assert alert["metric"]["severity"] == "high"  # type: ignore[index]
                assert alert["metric"]["job"] == "alertmanager"  # type: ignore[index]

                # ... and the on-call group hears of it by SMS, Slack being down (the lead
                # too, once its tier 2 fires: compressed, 5 seconds later).
                def told() -> set[str]:
                    return {
                        m["to"]
                        for m in list(twilio.created)
                        if "AlertmanagerNotificationsFailing" in m["body"]
                    }

                oncall = set(GROUPS["oncall"])
                wait_for(lambda: oncall <= told(), timeout=30)
                assert told() <= oncall | set(GROUPS["engineering-lead"])
        finally:
            parts.stop()
