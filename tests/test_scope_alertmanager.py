"""Scope labels (issue 20) in Alertmanager: a shop's alerts reach the shop's receivers
(amtool route tests), group by the shop, and one shop's ExporterDown or source down never
silences another shop's alerts (a real Alertmanager evaluates the inhibitions)."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from exporter.cli import main
from exporter.generate.alertmanager.config import alertmanager_config
from exporter.generate.alertmanager.route_tests import RouteCase, load_route_cases
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

ROOT = Path(__file__).resolve().parent.parent
SHOPS = {
    "acme": {
        "slack_channel": "#acme-alerts",
        "escalation": {"tier_1": ["acme_oncall"], "tier_2": ["acme_lead"]},
        "pagerduty": {"routing_key_file": "/run/secrets/acme_pagerduty_key"},
    },
    "globex": {"slack_channel": "#globex-alerts", "also_default": True},
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
    assert len(cases) == 2 * 4 * 7 * 3
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
