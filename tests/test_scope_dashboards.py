"""Scope labels (issue 20) on the dashboards: a variable per scope label, every panel query
limited to the shops chosen, replicas de-duplicated per shop before any total.

The real-Prometheus test holds two shops with two exporter replicas each: every panel that
reads the exporter's series answers for ``seller="acme"`` exactly what it answers on a
Prometheus holding acme alone (the other shop never leaks in, the replicas never double),
and every panel query still runs with all shops chosen.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from exporter.cli import main
from exporter.generate.grafana.queries import substitute_variables
from tests.support.dashboards import Target
from tests.support.prometheus import Sample, backfill, running_prometheus
from tests.test_dashboards_replicas import (
    REPLICAS,
    _answers,
    _reads_only_exporter_series,
    _shop,
)

ROOT = Path(__file__).resolve().parent.parent
MATCHER = 'seller=~"$seller"'


@pytest.fixture(scope="module")
def dashboards(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("scoped-grafana")
    (root / "rules").mkdir()
    data = yaml.safe_load((ROOT / "rules" / "thresholds.yaml").read_text())
    data["scope"] = {"labels": ["seller"]}
    (root / "rules" / "thresholds.yaml").write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(main, ["generate", "--root", str(root)])
    assert result.exit_code == 0, result.output
    return {
        path.stem: json.loads(path.read_text())
        for path in sorted((root / "grafana" / "dashboards").glob("*.json"))
    }


def _targets(dashboards: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for name, board in dashboards.items():
        for panel in board["panels"]:
            for inner in (panel, *panel.get("panels", [])):
                for target in inner.get("targets", []):
                    out.append((f"{name}/{inner['title']}/{target['refId']}", target["expr"]))
    return out


def test_every_panel_query_reads_the_chosen_shops(dashboards: dict[str, dict[str, Any]]) -> None:
    found = _targets(dashboards)
    assert len(found) > 50
    missing = [key for key, expr in found if MATCHER not in expr]
    assert missing == []
    for board in dashboards.values():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        seller = variables["seller"]
        assert seller["query"] == "label_values(boxoffice_source_up, seller)"
        assert seller["multi"] and seller["includeAll"]
        assert MATCHER in variables["city"]["query"]


def _two_shops(now: float, shops: tuple[str, ...]) -> Iterator[Sample]:
    """Each shop's day of every catalog series from two replicas; globex's values differ."""
    for shop in shops:
        for sample in _shop(now, REPLICAS):
            value = sample.value * 3 + 1 if shop == "globex" else sample.value
            labels = {**sample.labels, "seller": shop}
            yield Sample(name=sample.name, labels=labels, value=value, at=sample.at)


def _promql(expr: str, seller: str) -> str:
    return substitute_variables(expr.replace("$seller", seller))


def test_one_shop_chosen_reads_that_shop_alone(
    dashboards: dict[str, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    chosen = []
    for key, expr in _targets(dashboards):
        target = Target(
            dashboard="", panel_id=0, panel_title=key, ref_id="", expr=expr, instant=True
        )
        if _reads_only_exporter_series(target):
            chosen.append((key, expr))
    assert len(chosen) >= 25
    now = float(int(time.time()) // 60 * 60)
    at = now + 15
    answers = []
    for shops, seller in ((("acme",), "acme"), (("acme", "globex"), "acme")):
        tmp = tmp_path_factory.mktemp("shops")
        backfill(_two_shops(now, shops), tmp / "data")
        with running_prometheus(tmp, {}, []) as prometheus:
            answers.append(_answers(prometheus, [_promql(e, seller) for _k, e in chosen], at))
            if len(shops) == 2:  # every query runs with all shops chosen, and shows data
                everyone = _answers(prometheus, [_promql(e, ".*") for _k, e in chosen], at)
                assert not [key for (key, _e), a in zip(chosen, everyone, strict=True) if not a]
    alone, among_two = answers
    for (key, _expr), one, two in zip(chosen, alone, among_two, strict=True):
        assert one, key
        assert two == pytest.approx(one), key
