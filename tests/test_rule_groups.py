"""Which group each rule is evaluated in (rules/recording.py): cheap rates, rules reading
every ticket tier, series recorded beside the alerts that must read them at once.

A group's rules run one after another, so a group that reads every tier several times is as
slow as all those reads together (docs/benchmarks.md, issue 20). These tests pin the
placement and that no group reads a per-tier metric twice.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from exporter.generate.promql import metric_names
from exporter.generate.rules.recording import PER_TIER, RATES_GROUP, TIERS_GROUP, Recorder
from exporter.generate.rules.ruleset import RuleSet, build_ruleset
from exporter.generate.series import NamedSeries
from exporter.generate.thresholds import load_thresholds

ROOT = Path(__file__).resolve().parent.parent

TIER_RATE = NamedSeries("x:sold:increase1h", ("max by (event) (boxoffice_tickets_sold_total)",))
SHOP_TOTAL = NamedSeries("x:sold_all:increase1h", ("sum (", TIER_RATE, ")"))
ORDERS = NamedSeries("x:orders:increase5m", ("max (boxoffice_payments_total)",))
LOW = NamedSeries("x:left:low", ("max by (event) (boxoffice_inventory_available_tickets) <= 10",))


@pytest.mark.parametrize(
    ("used", "placed"),
    [
        ([(ORDERS, "sales", False)], {"x:orders:increase5m": "boxoffice-sales-rates"}),
        # A per-tier metric, and what is recorded from it, in the -tiers group.
        (
            [(SHOP_TOTAL, "sales", False)],
            {
                "x:sold:increase1h": "boxoffice-sales-tiers",
                "x:sold_all:increase1h": "boxoffice-sales-tiers",
            },
        ),
        # Beside: the alert group itself, per-tier or not.
        ([(LOW, "inventory", True)], {"x:left:low": "boxoffice-inventory"}),
        # Read by two categories: shared, apart from the cheap rates when it reads every tier.
        ([(ORDERS, "sales", False), (ORDERS, "payments", False)], {ORDERS.name: RATES_GROUP}),
        (
            [(SHOP_TOTAL, "sales", False), (TIER_RATE, "inventory", False)],
            {"x:sold:increase1h": TIERS_GROUP, "x:sold_all:increase1h": "boxoffice-sales-tiers"},
        ),
        # A group of its own; the series it reads are filed as usual.
        (
            [(SHOP_TOTAL, "inventory", "own")],
            {
                "x:sold:increase1h": "boxoffice-inventory-tiers",
                "x:sold_all:increase1h": "boxoffice-inventory-own",
            },
        ),
    ],
)
def test_recorder_places_each_series(
    used: list[tuple[NamedSeries, str, bool | str]], placed: dict[str, str]
) -> None:
    recorder = Recorder()
    for series, category, where in used:
        recorder.category = category
        if isinstance(where, str):
            recorder.use(series, group=where)
        else:
            recorder.use(series, beside=where)
    assert {name: recorder.group_of(name) for name in recorder.rules} == placed


def test_a_series_recorded_beside_two_categories_alerts_is_refused() -> None:
    recorder = Recorder()
    recorder.category = "inventory"
    recorder.use(LOW, beside=True)
    recorder.category = "sales"
    with pytest.raises(ValueError, match="beside the alerts of two categories"):
        recorder.use(LOW, beside=True)


def test_a_series_in_a_group_of_its_own_for_two_categories_is_refused() -> None:
    recorder = Recorder()
    recorder.category = "inventory"
    recorder.use(LOW, group="own")
    recorder.category = "sales"
    with pytest.raises(ValueError, match="in a group of two categories"):
        recorder.use(LOW, group="own")


@pytest.fixture(scope="module")
def scoped(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    data = yaml.safe_load((ROOT / "rules" / "thresholds.yaml").read_text())
    data["scope"] = {"labels": ["seller"]}
    path = tmp_path_factory.mktemp("scoped") / "thresholds.yaml"
    path.write_text(yaml.safe_dump(data))
    return build_ruleset(load_thresholds(str(path), "rules/thresholds.yaml"))


def _reads(exprs: list[str]) -> dict[str, int]:
    """How many rules of a group select each per-tier metric."""
    counts: dict[str, int] = {}
    for expr in exprs:
        for name in metric_names(expr):
            if name in PER_TIER:
                counts[name] = counts.get(name, 0) + 1
    return counts


def test_no_group_reads_a_per_tier_metric_twice(scoped: RuleSet) -> None:
    categories = dict.fromkeys(b.alert.spec.category for b in scoped.alerts)
    groups = [g for c in categories for g in scoped.category_groups(c)]
    assert len(groups) >= 15
    for group in groups:
        exprs = [r.expr for r in group.records] + [r.expr for r in group.alerts]
        twice = {name: n for name, n in _reads(exprs).items() if n > 1}
        assert twice == {}, group.name


def test_inventory_alerts_compare_the_few_tiers_recorded_beside_them(scoped: RuleSet) -> None:
    groups = {g.name: g for g in scoped.category_groups("inventory")}
    assert list(groups) == [
        "boxoffice-inventory-tiers",
        "boxoffice-inventory",
        "boxoffice-inventory-capacity",
        "boxoffice-inventory-stock",
        "boxoffice-inventory-sellout",
        "boxoffice-inventory-soldout",
        "boxoffice-inventory-predicted",
    ]
    alerts = groups["boxoffice-inventory"]
    assert [r.record for r in alerts.records] == [
        "boxoffice:inventory_available:low",
        "boxoffice:inventory_capacity:low",
    ]
    # Oversold reads this evaluation's numbers: what it compares is recorded in its group.
    for rule in alerts.alerts:
        assert _reads([rule.expr]) == {}, rule.alert
        assert "boxoffice:inventory_available:low" in rule.expr
    # The tiers InventoryLow may name: at most the largest cap of Low and Critical left.
    assert alerts.records[0].expr.endswith("<= 10")
    # Their capacity joined from every tier's, recorded apart: one raw selection a group.
    (capacity,) = groups["boxoffice-inventory-capacity"].records
    assert capacity.record == "boxoffice:inventory_capacity:max"
    assert alerts.records[1].expr.startswith("boxoffice:inventory_capacity:max and on (")
    assert {r.alert for r in alerts.alerts} == {
        "InventoryLow",
        "InventoryCritical",
        "InventoryOversold",
    }
    # The notices firing for many tiers at once, each alone with its templating; the
    # prediction recorded apart from its alert, in one pass over every tier.
    assert [r.alert for r in groups["boxoffice-inventory-soldout"].alerts] == ["InventorySoldOut"]
    predicted = groups["boxoffice-inventory-predicted"]
    assert [r.alert for r in predicted.alerts] == ["SelloutPredicted"] and not predicted.records
    sellout = groups["boxoffice-inventory-sellout"]
    (forecast,) = sellout.records
    assert forecast.record == "boxoffice:inventory_sellout_seconds:rate1d"
    assert not sellout.alerts
    for rule in predicted.alerts:
        assert _reads([rule.expr]) == {}
        assert "boxoffice:inventory_sellout_seconds:rate1d" in rule.expr
    # The forecast divides recorded stock, every tier's folded once in a group of its own,
    # and keeps the tiers under the horizon before any arithmetic with a number.
    stock = groups["boxoffice-inventory-stock"]
    assert [(r.record, r.expr) for r in stock.records] == [
        (
            "boxoffice:inventory_available:max",
            "max by (event, city, tier, seller) (boxoffice_inventory_available_tickets)",
        )
    ]
    assert _reads([forecast.expr]) == {}
    assert forecast.expr.startswith(
        "((boxoffice:inventory_available:max > 0) / boxoffice:tickets_sold:increase1d <= 1\n"
    )
    assert forecast.expr.endswith(" * 86400")
    # A day-ahead forecast and its stock every minute; the rest at Prometheus' interval.
    assert stock.interval == sellout.interval == predicted.interval == 60.0
    assert {g.interval for g in groups.values() if g not in (stock, sellout, predicted)} == {0.0}
    # The tiers sold out now: taken from the few tiers running low, not every tier again.
    tiers = groups["boxoffice-inventory-tiers"]
    sold_out = next(r for r in tiers.records if r.record == "boxoffice:inventory_sold_out:max")
    assert sold_out.expr == "boxoffice:inventory_available:low <= 0"


def test_the_days_sales_are_summed_from_the_hourly_record(scoped: RuleSet) -> None:
    """Not a day of every tier's raw samples: the 24 whole hours of the shared hourly record,
    scope labels kept (sum_over_time keeps every label of the record)."""
    shared = {g.name: g for g in scoped.shared_groups()}
    (hourly,) = shared[TIERS_GROUP].records
    assert hourly.record == "boxoffice:tickets_sold:increase1h"
    assert "by (event, city, tier, seller)" in hourly.expr
    tiers = {r.record: r.expr for r in scoped.recorder.filed("boxoffice-inventory-tiers")}
    assert tiers["boxoffice:tickets_sold:increase1d"] == (
        "sum_over_time(boxoffice:tickets_sold:increase1h[23h59m59s999ms:1h])"
    )


def test_with_the_low_stock_alerts_off_sold_out_and_oversold_read_the_tiers_at_zero(
    tmp_path: Path,
) -> None:
    data = yaml.safe_load((ROOT / "rules" / "thresholds.yaml").read_text())
    for name in ("InventoryLow", "InventoryCritical"):
        data["alerts"][name]["enabled"] = False
    path = tmp_path / "thresholds.yaml"
    path.write_text(yaml.safe_dump(data))
    ruleset = build_ruleset(load_thresholds(str(path), "rules/thresholds.yaml"))
    groups = {g.name: g for g in ruleset.category_groups("inventory")}
    (low,) = groups["boxoffice-inventory"].records  # no capacity: nothing compares it
    assert low.record == "boxoffice:inventory_available:low" and low.expr.endswith("<= 0")
    assert {r.alert for r in groups["boxoffice-inventory"].alerts} == {"InventoryOversold"}
    assert {r.alert for r in groups["boxoffice-inventory-soldout"].alerts} == {"InventorySoldOut"}


@pytest.mark.parametrize(
    ("hold", "every"), [("15m", 60.0), ("2h", 60.0), ("30s", 2.0), ("0s", 0.0)]
)
def test_the_sellout_forecast_is_evaluated_15_times_in_its_hold_at_most_every_minute(
    tmp_path: Path, hold: str, every: float
) -> None:
    """The demo's compressed profile (a 15 s hold) evaluates it every second, not every
    real minute; with no hold it keeps Prometheus' own interval."""
    data = yaml.safe_load((ROOT / "rules" / "thresholds.yaml").read_text())
    data["alerts"]["SelloutPredicted"]["for"] = hold
    path = tmp_path / "thresholds.yaml"
    path.write_text(yaml.safe_dump(data))
    ruleset = build_ruleset(load_thresholds(str(path), "rules/thresholds.yaml"))
    groups = {g.name: g.interval for g in ruleset.category_groups("inventory")}
    assert groups["boxoffice-inventory-stock"] == every
    assert groups["boxoffice-inventory-sellout"] == groups["boxoffice-inventory-predicted"] == every
    assert groups["boxoffice-inventory"] == 0.0


@pytest.mark.parametrize(
    ("window", "horizon", "kept", "scaled"),
    [("1d", "12h", "<= 0.5\n", " * 86400"), ("3h", "1d", "<= 8\n", " * 10800")],
)
def test_the_forecast_keeps_the_tiers_under_horizon_over_window_then_scales_by_the_window(
    tmp_path: Path, window: str, horizon: str, kept: str, scaled: str
) -> None:
    """stock / sales <= horizon / window is stock / (sales / window) <= horizon: the same
    tiers, compared before the product with the window gives them seconds."""
    data = yaml.safe_load((ROOT / "rules" / "thresholds.yaml").read_text())
    data["alerts"]["SelloutPredicted"].update(window=window, thresholds={"medium": horizon})
    path = tmp_path / "thresholds.yaml"
    path.write_text(yaml.safe_dump(data))
    ruleset = build_ruleset(load_thresholds(str(path), "rules/thresholds.yaml"))
    groups = {g.name: g for g in ruleset.category_groups("inventory")}
    (forecast,) = groups["boxoffice-inventory-sellout"].records
    assert forecast.record == f"boxoffice:inventory_sellout_seconds:rate{window}"
    assert f" / boxoffice:tickets_sold:increase{window} {kept}" in forecast.expr
    assert forecast.expr.endswith(scaled)
