"""Scope labels (issue 20) in Alertmanager: a shop's alerts and reports reach the shop's
receivers (amtool route tests; a real Alertmanager delivers each shop's digest and ticker),
group by the shop, and one shop's ExporterDown or source down never silences another
shop's alerts (a real Alertmanager evaluates the inhibitions)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from exporter.cli import main
from exporter.demo.sinks import ChatSinks, Notification, SmtpSink
from exporter.generate.alertmanager.config import alertmanager_config
from exporter.generate.alertmanager.route_tests import RouteCase, load_route_cases
from exporter.generate.alertmanager.routing import Duration
from exporter.generate.output import load_inputs
from tests.support.alertmanager import (
    alert_key,
    alert_payload,
    alert_states,
    post_alerts,
    quiet_routing,
    running_alertmanager,
)
from tests.support.alertpath import local_routing, write_alertmanager_config
from tests.support.exporter import wait_for
from tests.support.inbox import RecordingInbox

ROOT = Path(__file__).resolve().parent.parent
SHOPS = {
    "acme": {
        "slack_channel": "#acme-alerts",
        "escalation": {"tier_1": ["acme_oncall"], "tier_2": ["acme_lead"]},
        "pagerduty": {"routing_key_file": "/run/secrets/acme_pagerduty_key"},
        "digest": {"slack_channel": "#acme-reports", "email": ["owner@acme.example"]},
        "ticker": {"slack_channel": "#acme-sales"},
    },
    # Its own ticker, the default digest; also_default is about alerts, not reports.
    "globex": {
        "slack_channel": "#globex-alerts",
        "also_default": True,
        "ticker": {"slack_channel": "#globex-sales"},
    },
    # Its own digest by email only; its alerts keep the default routes (no branch of its own).
    "initech": {"digest": {"email": ["owner@initech.example"]}},
}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository root generated with scope [seller] and routes for two shops."""
    root = tmp_path_factory.mktemp("scoped-am")
    (root / "rules").mkdir()
    (root / "alertmanager").mkdir()
    thresholds = yaml.safe_load((ROOT / "rules" / "thresholds.yaml").read_text())
    thresholds["scope"] = {"labels": ["seller"]}
    (root / "rules" / "thresholds.yaml").write_text(yaml.safe_dump(thresholds))
    routing = yaml.safe_load((ROOT / "alertmanager" / "routing.yaml").read_text())
    routing["audiences"]["acme_oncall"] = {"email": ["oncall@acme.example"], "sms_group": "acme"}
    routing["audiences"]["acme_lead"] = {"email": ["lead@acme.example"]}
    routing["scopes"] = {"seller": SHOPS}
    (root / "alertmanager" / "routing.yaml").write_text(yaml.safe_dump(routing))
    result = CliRunner().invoke(main, ["generate", "--root", str(root)])
    assert result.exit_code == 0, result.output
    return root


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which("amtool")
    if path is None:
        pytest.fail(
            "amtool not installed (scripts/test.sh installs Debian's prometheus-alertmanager)"
        )
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=60, check=False)


def _config(bundle: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(
        (bundle / "alertmanager" / "alertmanager.yml").read_text()
    )
    return data


def test_notifications_group_by_shop_and_inhibitions_stay_within_one(bundle: Path) -> None:
    config = _config(bundle)
    assert config["route"]["group_by"][-1] == "seller"
    assert all("seller" in rule["equal"] for rule in config["inhibit_rules"])
    result = _amtool("check-config", str(bundle / "alertmanager" / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


# (labels, receivers in tree order) written out by hand from SHOPS and routing.yaml.
HAND_CASES = [
    (
        {"severity": "critical", "category": "payments", "escalation": "1", "seller": "acme"},
        "slack-acme-alerts,slack-critical-alerts,seller-acme-pagerduty,"
        "seller-acme-tier1-email,seller-acme-tier1-sms",
    ),
    (
        {"severity": "critical", "category": "sales", "escalation": "2", "seller": "acme"},
        "seller-acme-tier2-email",
    ),
    ({"severity": "critical", "category": "sales", "escalation": "3", "seller": "acme"}, "nobody"),
    (
        {"severity": "high", "category": "inventory", "escalation": "1", "seller": "globex"},
        "slack-globex-alerts,tier1-email,tier1-sms,slack-inventory-alerts,tier1-email,tier1-sms",
    ),
    (
        {"severity": "high", "category": "inventory", "escalation": "1", "seller": "initech"},
        "slack-inventory-alerts,tier1-email,tier1-sms",
    ),
    # The owner's reports: a shop's own receivers only, whatever the severity says.
    (
        {"alertname": "DailyDigest", "notify": "digest", "severity": "low", "seller": "acme"},
        "seller-acme-digest-slack,seller-acme-digest-email",
    ),
    (
        {"alertname": "DailyDigest", "notify": "digest", "severity": "critical", "seller": "acme"},
        "seller-acme-digest-slack,seller-acme-digest-email",
    ),
    (
        {"alertname": "SalesTicker", "notify": "ticker", "severity": "low", "seller": "acme"},
        "seller-acme-ticker-slack",
    ),
    (
        {"alertname": "DailyDigest", "notify": "digest", "severity": "low", "seller": "globex"},
        "digest-slack,digest-email",
    ),
    (
        {"alertname": "SalesTicker", "notify": "ticker", "severity": "low", "seller": "globex"},
        "seller-globex-ticker-slack",
    ),
    (
        {"alertname": "DailyDigest", "notify": "digest", "severity": "low", "seller": "initech"},
        "seller-initech-digest-email",
    ),
    (
        {"alertname": "SalesTicker", "notify": "ticker", "severity": "low", "seller": "initech"},
        "ticker-slack",
    ),
    (
        {"alertname": "DailyDigest", "notify": "digest", "severity": "low", "seller": "umbrella"},
        "digest-slack,digest-email",
    ),
]


@pytest.mark.parametrize(("labels", "receivers"), HAND_CASES)
def test_a_shops_alert_reaches_the_shops_receivers(
    bundle: Path, labels: dict[str, str], receivers: str
) -> None:
    case = RouteCase(labels, tuple(receivers.split(",")), False)
    result = _amtool(*case.amtool_args(str(bundle / "alertmanager" / "alertmanager.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_generated_shop_route_test_passes(bundle: Path) -> None:
    text = (bundle / "alertmanager" / "tests" / "routes.yml").read_text()
    cases = [c for c in load_route_cases(yaml.safe_load(text)) if "seller" in c.labels]
    # acme and globex: the matrix, their digest and ticker; initech: its digest and ticker.
    assert len(cases) == 2 * (4 * 7 * 3 + 2) + 2
    config = str(bundle / "alertmanager" / "alertmanager.yml")

    def run(case: RouteCase) -> str | None:
        result = _amtool(*case.amtool_args(config))
        if result.returncode != 0:
            return f"{case.labels}: expected {case.receivers}, got {result.stdout.strip()}"
        return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        failures = [f for f in pool.map(run, cases) if f]
    assert failures == []


def test_one_shops_outage_silences_that_shop_only(bundle: Path, tmp_path: Path) -> None:
    inputs = load_inputs(bundle)
    assert inputs.routing is not None
    config = tmp_path / "alertmanager.yml"
    config.write_text(alertmanager_config(quiet_routing(inputs.routing), inputs.ruleset, "test"))
    exporter_down = alert_payload(
        "ExporterDown", "critical", "monitoring", job="boxoffice", seller="acme"
    )
    source_down = alert_payload(
        "ExporterSourceDown", "high", "monitoring", source="postgres", seller="globex"
    )
    payments = {
        shop: alert_payload(
            "PaymentSuccessRateLow", "critical", "payments", source="stripe", seller=shop
        )
        for shop in ("acme", "globex")
    }
    sales = {
        shop: alert_payload("NoRecentSales", "high", "sales", source="postgres", seller=shop)
        for shop in ("acme", "globex", "initech")
    }
    critical = alert_payload(
        "EndpointLatencyHigh", "critical", "availability", endpoint="x", seller="acme"
    )
    high = {
        shop: alert_payload(
            "EndpointLatencyHigh", "high", "availability", endpoint="x", seller=shop
        )
        for shop in ("acme", "globex")
    }
    alerts = [exporter_down, source_down, critical, *payments.values(), *sales.values()]
    alerts += high.values()
    with running_alertmanager(config, tmp_path) as url:
        post_alerts(url, alerts)

        def all_listed() -> dict[tuple[tuple[str, str], ...], dict[str, Any]] | None:
            states = alert_states(url)
            return states if all(alert_key(a) in states for a in alerts) else None

        status = wait_for(all_listed, timeout=15)

    def inhibited(alert: dict[str, Any]) -> bool:
        return bool(status[alert_key(alert)]["inhibitedBy"])

    assert inhibited(payments["acme"])  # acme's exporter is down
    assert not inhibited(payments["globex"])  # another shop
    assert inhibited(sales["acme"])
    assert inhibited(sales["globex"])  # globex's postgres source is down
    assert not inhibited(sales["initech"])  # neither
    assert inhibited(high["acme"])  # acme's critical of the same alert
    assert not inhibited(high["globex"])  # not globex's


def _subtree_receivers(route: dict[str, Any]) -> set[str]:
    out = {route["receiver"]}
    for child in route.get("routes", ()):
        out |= _subtree_receivers(child)
    return out


def _subtree_routes(route: dict[str, Any]) -> list[dict[str, Any]]:
    out = [route]
    for child in route.get("routes", ()):
        out += _subtree_routes(child)
    return out


def test_shops_report_branches_never_page_text_mute_or_resolve(bundle: Path) -> None:
    config = _config(bundle)
    # initech routes its digest only: no alert branch of its own.
    shop_branches = [r.get("matchers") for r in config["route"]["routes"]]
    assert ['seller="acme"'] in shop_branches and ['seller="initech"'] not in shop_branches
    receivers = {r["name"]: r for r in config["receivers"]}
    branches = {
        notify: next(r for r in config["route"]["routes"] if r.get("matchers") == [notify])
        for notify in ('notify="digest"', 'notify="ticker"')
    }
    for branch in branches.values():
        assert not branch.get("continue", False)  # never reaches a severity branch
        assert not any("mute_time_intervals" in r for r in _subtree_routes(branch))
        for name in _subtree_receivers(branch) - {"nobody"}:
            kinds = set(receivers[name]) - {"name"}
            assert kinds <= {"slack_configs", "email_configs"}, name
            assert all(c["send_resolved"] is False for kind in kinds for c in receivers[name][kind])
    digest = _subtree_receivers(branches['notify="digest"'])
    assert digest == {
        "nobody",
        "seller-acme-digest-slack",
        "seller-acme-digest-email",
        "seller-initech-digest-email",
        "digest-slack",
        "digest-email",
    }
    assert receivers["seller-acme-digest-slack"]["slack_configs"][0]["channel"] == "#acme-reports"
    assert receivers["seller-acme-digest-email"]["email_configs"][0]["to"] == "owner@acme.example"
    ticker = _subtree_receivers(branches['notify="ticker"'])
    assert ticker == {"ticker-slack", "seller-acme-ticker-slack", "seller-globex-ticker-slack"}
    assert receivers["seller-globex-ticker-slack"]["slack_configs"][0]["channel"] == "#globex-sales"


def _report(name: str, notify: str, shop: str, **labels: str) -> dict[str, Any]:
    """A report alert with the labels its generated rule sets, naming its shop in its text."""
    return {
        "labels": {
            "alertname": name,
            "severity": "low",
            "category": "sales",
            "notify": notify,
            "seller": shop,
            **labels,
        },
        "annotations": {"summary": f"{name} test", "description": f"figures of {shop}"},
    }


def _delivered(inbox: RecordingInbox) -> list[tuple[str, str, str, str]]:
    """(channel, target, report, the shop its text is about) of each delivery, sorted."""

    def shop(n: Notification) -> str:
        return n.body.replace("figures of ", "").strip()

    return sorted((n.channel, n.target, n.alertname, shop(n)) for n in inbox.all())


def test_each_shops_digest_and_ticker_reach_only_its_own_people(
    bundle: Path, tmp_path: Path
) -> None:
    inputs = load_inputs(bundle)
    assert inputs.routing is not None
    inbox = RecordingInbox()
    chat, smtp = ChatSinks(inbox), SmtpSink(inbox)
    chat.start()
    smtp.start()
    try:
        local = local_routing(
            inputs.routing, tmp_path, sink=chat.url, bridge="http://127.0.0.1:9", heartbeat=None
        )
        f = local.file
        assert f.email is not None
        file = dataclasses.replace(
            f,
            email=dataclasses.replace(f.email, smarthost=smtp.address),
            digest=dataclasses.replace(f.digest, group_wait=Duration(1)),
            ticker=dataclasses.replace(f.ticker, group_wait=Duration(1)),
        )
        routing = dataclasses.replace(local, file=file)
        config = write_alertmanager_config(tmp_path, routing, inputs.ruleset)
        shops = ("acme", "globex", "initech", "umbrella")
        alerts = [_report("DailyDigest", "digest", s, slot="evening", day="20429") for s in shops]
        alerts += [_report("SalesTicker", "ticker", s, minute="1765100000") for s in shops]
        expected = sorted(
            [
                ("slack", "#acme-reports", "DailyDigest", "acme"),
                ("email", "owner@acme.example", "DailyDigest", "acme"),
                ("slack", "#acme-sales", "SalesTicker", "acme"),
                ("slack", "#daily-reports", "DailyDigest", "globex"),
                ("email", "owner@example.com", "DailyDigest", "globex"),
                ("slack", "#globex-sales", "SalesTicker", "globex"),
                ("email", "owner@initech.example", "DailyDigest", "initech"),
                ("slack", "#sales-notifications", "SalesTicker", "initech"),
                ("slack", "#daily-reports", "DailyDigest", "umbrella"),
                ("email", "owner@example.com", "DailyDigest", "umbrella"),
                ("slack", "#sales-notifications", "SalesTicker", "umbrella"),
            ]
        )
        with running_alertmanager(config, tmp_path) as url:
            post_alerts(url, alerts)
            wait_for(lambda: set(expected) <= set(_delivered(inbox)), timeout=30, interval=0.2)
            time.sleep(2)  # a flush to anyone else would have happened with these
            delivered = _delivered(inbox)
    finally:
        chat.stop()
        smtp.stop()
    assert delivered == expected  # each once, nowhere else: no PagerDuty, no other channel
