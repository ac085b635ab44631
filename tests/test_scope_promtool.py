"""Scope labels (issue 20) in a real rule engine: two shops, two exporter replicas each,
rules generated with ``scope: {labels: [seller]}`` and evaluated by promtool.

An incident in shop ``acme`` fires for ``acme`` only, with its ``seller`` label; ``globex``
stays quiet; the replicas of one shop count once; ExporterDown and the hold-while-blind of
an alert whose source went blind work per shop. The checks read ``ALERTS`` (what the rule
engine fired, by labels) so they do not depend on thresholds another change may tune.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from exporter.cli import main

ROOT = Path(__file__).resolve().parent.parent
SHOPS = ("acme", "globex")
REPLICAS = ("replica-1", "replica-2")


def generate_scoped(root: Path, labels: list[str], more: dict[str, object] | None = None) -> Path:
    """A repository root under ``root`` whose bundle is generated with ``labels`` (and the
    thresholds.yaml sections in ``more``)."""
    (root / "rules").mkdir(parents=True)
    data = yaml.safe_load((ROOT / "rules" / "thresholds.yaml").read_text())
    data["scope"] = {"labels": labels}
    data.update(more or {})
    (root / "rules" / "thresholds.yaml").write_text(yaml.safe_dump(data))
    (root / "alertmanager").mkdir()
    shutil.copy(ROOT / "alertmanager" / "routing.yaml", root / "alertmanager" / "routing.yaml")
    result = CliRunner().invoke(main, ["generate", "--root", str(root)])
    assert result.exit_code == 0, result.output
    return root


def _replicated(
    metric: str, labels: dict[str, str], values: dict[str, str]
) -> list[dict[str, str]]:
    """One input series per shop and replica: ``values[shop]`` from both replicas."""
    out = []
    for shop, shown in values.items():
        for replica in REPLICAS:
            matchers = {**labels, "seller": shop, "instance": replica, "job": "boxoffice"}
            text = ", ".join(f'{k}="{v}"' for k, v in matchers.items())
            out.append({"series": f"{metric}{{{text}}}", "values": shown})
    return out


def _firing(alert: str, when: str, shops: tuple[str, ...]) -> dict[str, object]:
    """An expression test: which shops ``alert`` fires for at ``when`` (any tier)."""
    return {
        "expr": f'group by (alertname, seller) (ALERTS{{alertname="{alert}", alertstate="firing"}})',
        "eval_time": when,
        "exp_samples": [
            {"labels": f'{{alertname="{alert}", seller="{shop}"}}', "value": 1} for shop in shops
        ],
    }


def _incident_in_one_shop() -> dict[str, object]:
    """acme fails half its payments and loses both exporter replicas; globex loses one."""
    series = [
        *_replicated("boxoffice_payments_total", {}, dict.fromkeys(SHOPS, "0+100x40")),
        *_replicated(
            "boxoffice_payments_failed_total",
            {"failure_code": "processing_error"},
            {"acme": "0+50x40"},
        ),
        *_replicated("boxoffice_source_up", {"source": "postgres"}, dict.fromkeys(SHOPS, "1x40")),
        *_replicated("up", {}, {"acme": "1x5 0x35"}),
    ]
    # globex: one replica down, the other up (ExporterReplicaDown, not ExporterDown).
    series += [
        {"series": 'up{job="boxoffice", instance="replica-1", seller="globex"}', "values": "1x40"},
        {
            "series": 'up{job="boxoffice", instance="replica-2", seller="globex"}',
            "values": "1x5 0x35",
        },
    ]
    replica_down = {
        "expr": 'group by (alertname, seller, instance) (ALERTS{alertname="ExporterReplicaDown", alertstate="firing"})',
        "eval_time": "30m",
        "exp_samples": [
            {
                "labels": '{alertname="ExporterReplicaDown", instance="replica-2", seller="globex"}',
                "value": 1,
            }
        ],
    }
    return {
        "name": "an incident in acme fires for acme only",
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [
            # Two replicas report the same counter: the shop's increase counts it once.
            {
                "expr": "boxoffice:payments:increase5m",
                "eval_time": "20m",
                "exp_samples": [
                    {"labels": f'boxoffice:payments:increase5m{{seller="{s}"}}', "value": 500}
                    for s in SHOPS
                ],
            },
            {
                "expr": "boxoffice:payments_failed_system:ratio_increase5m",
                "eval_time": "20m",
                "exp_samples": [
                    {
                        "labels": 'boxoffice:payments_failed_system:ratio_increase5m{seller="acme"}',
                        "value": 0.5,
                    },
                    {
                        "labels": 'boxoffice:payments_failed_system:ratio_increase5m{seller="globex"}',
                        "value": 0,
                    },
                ],
            },
            _firing("PaymentSuccessRateLow", "30m", ("acme",)),
            _firing("ExporterDown", "30m", ("acme",)),
            replica_down,
        ],
    }


def _blind_in_one_shop() -> dict[str, object]:
    """Both shops oversell a tier and their inventory series end at 10m; only acme's source
    is blind then, so acme's alert holds and globex's resolves."""
    inventory = {"event": "gala", "city": "lisbon", "tier": "ga"}
    series = [
        *_replicated(
            "boxoffice_inventory_available_tickets", inventory, dict.fromkeys(SHOPS, "-2x10 stale")
        ),
        *_replicated(
            "boxoffice_inventory_capacity_tickets", inventory, dict.fromkeys(SHOPS, "100x30")
        ),
        *_replicated(
            "boxoffice_source_up", {"source": "postgres"}, {"acme": "1x10 0x20", "globex": "1x30"}
        ),
        *_replicated("up", {}, dict.fromkeys(SHOPS, "1x30")),
    ]
    return {
        "name": "hold while blind is per shop",
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [
            _firing("InventoryOversold", "8m", ("acme", "globex")),
            _firing("InventoryOversold", "20m", ("acme",)),
        ],
    }


@pytest.fixture(scope="module")
def scoped_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_scoped(tmp_path_factory.mktemp("scoped"), ["seller"])


def test_two_shops_in_one_prometheus_never_mix(scoped_root: Path) -> None:
    tests = [_incident_in_one_shop(), _blind_in_one_shop()]
    files = ["recording", "payments", "inventory", "monitoring"]
    _promtool_passes(scoped_root, "scope_two_shops", files, tests)


def _promtool_passes(
    root: Path, name: str, files: list[str], tests: list[dict[str, object]]
) -> None:
    """``promtool test rules`` passes ``tests`` over the generated ``files`` under ``root``."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not installed (scripts/test.sh installs Debian's prometheus)")
    groups: list[str] = []
    for file in files:
        text = (root / "rules" / "generated" / f"{file}.yml").read_text()
        groups += [g["name"] for g in yaml.safe_load(text)["groups"]]
    suite = {
        "rule_files": [f"../generated/{file}.yml" for file in files],
        "evaluation_interval": "1m",
        "group_eval_order": groups,
        "tests": tests,
    }
    path = root / "rules" / "tests" / f"{name}.yml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def _digest_per_shop() -> dict[str, object]:
    """Each shop's morning digest is its own alert, its text counting that shop's orders only:
    acme sells one order a minute, globex two, from before local midnight (05:00 UTC)."""
    series = _replicated(
        "boxoffice_source_up", {"source": "postgres"}, {"acme": "1+0x1000", "globex": "1+0x1000"}
    )
    series += _replicated(
        "boxoffice_orders_paid_total",
        {"city": "Denver", "tier": "ga", "payment_method": "card", "member": "false"}
        | {"currency": "usd"},
        {"acme": "10+1x1000", "globex": "10+2x1000"},
    )
    return {
        "name": "a digest per shop, each with its own figures",
        "interval": "1m",
        "input_series": series,
        "promql_expr_test": [
            {
                "expr": "boxoffice:digest:orders - boxoffice:digest_day_start:orders",
                "eval_time": "13h",
                "exp_samples": [
                    {"labels": f'{{city="Denver", currency="usd", seller="{shop}"}}', "value": n}
                    for shop, n in (("acme", 480), ("globex", 960))
                ],
            },
            {
                # The ticker at 13h reports the minute before: one order for acme, two for globex.
                "expr": 'ALERTS{alertname="SalesTicker"}',
                "eval_time": "13h",
                "exp_samples": [
                    {
                        "labels": 'ALERTS{alertname="SalesTicker", alertstate="firing", '
                        'severity="low", category="sales", notify="ticker", '
                        f'minute="46740", seller="{shop}"}}',
                        "value": 1,
                    }
                    for shop in SHOPS
                ],
            },
        ],
        "alert_rule_test": [
            {
                "eval_time": "13h",
                "alertname": "DailyDigest",
                "exp_alerts": [
                    _digest_alert(shop, n) for shop, n in (("acme", 480), ("globex", 960))
                ],
            }
        ],
    }


def _digest_alert(shop: str, orders: int) -> dict[str, object]:
    none = "none (a week earlier: none)"
    yesterday = (
        "Revenue",
        "Paid orders",
        "Tickets",
        "Average order value",
        "Top cities by orders",
        "Payment failures",
        "Refunds",
        "SMS sent",
        "SMS failed",
    )
    text = [
        "Overnight, since midnight:",
        f"- Revenue: {none}",
        f"- Paid orders: {orders} (a week earlier: none)",
        f"- Tickets: {none}",
        "Yesterday:",
        *(f"- {title}: {none}" for title in yesterday),
    ]
    return {
        "exp_labels": {
            "severity": "low",
            "category": "sales",
            "notify": "digest",
            "slot": "morning",
            "day": "0",
            "seller": shop,
        },
        "exp_annotations": {
            "summary": "Daily digest (morning, 08:00 local): the shop this morning",
            "description": "\n".join(text),
        },
    }


def test_each_shop_gets_its_own_digest_and_ticker(tmp_path: Path) -> None:
    root = generate_scoped(tmp_path, ["seller"], {"ticker": {"enabled": True}})
    _promtool_passes(root, "scope_digest", ["recording", "reports"], [_digest_per_shop()])
