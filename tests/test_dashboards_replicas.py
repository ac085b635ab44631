"""Replicas of one exporter never change a panel: every dashboard query that reads the
exporter's series directly gives the same answer on a real Prometheus holding one replica's
scrapes as on one holding the same facts scraped by two replicas.

Two replicas of one shop read the same database, so they publish the same values under two
`instance` labels. A panel that summed over them would show double the revenue; one that kept
`instance` would draw each fact twice. Panels that read recorded series inherit the rules'
de-duplication (checked with the rules); this test covers the rest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from exporter.catalog import CATALOG, CATALOG_BY_NAME
from exporter.generate.promql import metric_names
from tests.support.dashboards import Target, targets
from tests.support.prometheus import Prometheus, Sample, backfill, running_prometheus

HISTORY = 26 * 3600  # more than the longest panel window (1d)
STEP = 60  # rate()[5m] needs several samples in its window
REPLICAS = ("exporter-a:9798", "exporter-b:9798")
# Label values; event, city and tier combine so the inventory joins find their partners.
_TIERS = (
    ("spring-gala", "berlin", "ga"),
    ("spring-gala", "berlin", "vip"),
    ("jazz", "paris", "ga"),
    ("jazz", "paris", "balcony"),
)
_VALUES: dict[str, tuple[str, ...]] = {
    "failure_code": ("card_declined", "processing_error"),
    "failure_class": ("decline", "system"),
    "currency": ("usd", "eur"),
    "provider": ("stripe", "twilio"),
    "metric": ("boxoffice_tickets_sold_total",),
    "state": ("available", "pending"),
    "status": ("enabled", "disabled"),
    "error_code": ("30003", "30007"),
    "target": ("web", "api"),
    "component": ("database", "cache"),
    "source": ("postgres", "stripe"),
    "reason": ("timeout",),
    "version": ("0.1.0",),
    # The paid-orders breakdowns (no event label) and the database a lag is measured on.
    "city": ("berlin", "paris"),
    "tier": ("ga", "vip"),
    "payment_method": ("card", "paypal"),
    "member": ("true", "false"),
    "database": ("default",),
}


def _label_sets(labels: tuple[str, ...]) -> list[dict[str, str]]:
    if {"event", "city"} <= set(labels):
        combos = sorted({t if "tier" in labels else t[:2] for t in _TIERS})
        return [dict(zip(("event", "city", "tier"), combo, strict=False)) for combo in combos]
    sets: list[dict[str, str]] = [{}]
    for label in labels:
        sets = [{**s, label: value} for s in sets for value in _VALUES[label]]
    return sets


def _shop(now: float, instances: tuple[str, ...]) -> Iterator[Sample]:
    """A day of every catalog series, the same facts under each replica's instance label."""
    for number, metric in enumerate(CATALOG):
        for variant, labels in enumerate(_label_sets(metric.labels)):
            seed = 3 + number + 7 * variant
            for step in range(HISTORY // STEP + 1):
                at = now - HISTORY + step * STEP
                if metric.type == "counter":
                    value = float(seed * step)  # rising at a different rate per series
                elif metric.name == "boxoffice_event_start_timestamp_seconds":
                    value = now + seed * 86400  # upcoming
                elif metric.name.endswith("_timestamp_seconds"):
                    value = at - seed * 60
                else:
                    value = float(seed + step % 5)
                for instance in instances:
                    yield Sample(
                        name=metric.name,
                        labels={**labels, "job": "boxoffice", "instance": instance},
                        value=value,
                        at=at,
                    )


def _reads_only_exporter_series(target: Target) -> bool:
    names = metric_names(target.promql)
    return bool(names) and set(names) <= set(CATALOG_BY_NAME)


def _answers(prometheus: Prometheus, exprs: list[str], at: float) -> list[dict[Any, float]]:
    out = []
    for expr in exprs:
        response = requests.post(
            f"{prometheus.url}/api/v1/query", data={"query": expr, "time": at}, timeout=30
        )
        body = response.json()
        assert body["status"] == "success", (expr, body)
        out.append(
            {
                tuple(sorted(item["metric"].items())): float(item["value"][1])
                for item in body["data"]["result"]
            }
        )
    return out


@pytest.fixture(scope="module")
def compared(
    tmp_path_factory: pytest.TempPathFactory,
) -> list[tuple[str, dict[Any, float], dict[Any, float]]]:
    chosen = [t for t in targets() if _reads_only_exporter_series(t)]
    exprs = [t.promql for t in chosen]
    # Whole minutes: both servers answer at the same instant, after the last sample.
    now = float(int(time.time()) // 60 * 60)
    at = now + 15
    answers = []
    for instances in (REPLICAS[:1], REPLICAS):
        tmp = tmp_path_factory.mktemp("replicas")
        backfill(_shop(now, instances), tmp / "data")
        with running_prometheus(tmp, {}, []) as prometheus:
            answers.append(_answers(prometheus, exprs, at))
    one, two = answers
    return [(t.key, a, b) for t, a, b in zip(chosen, one, two, strict=True)]


def test_most_panels_read_exporter_series_and_show_data(
    compared: list[tuple[str, dict[Any, float], dict[Any, float]]],
) -> None:
    assert len(compared) >= 25
    empty = [key for key, one, _ in compared if not one]
    assert not empty, empty


def test_a_second_replica_changes_no_panel(
    compared: list[tuple[str, dict[Any, float], dict[Any, float]]],
) -> None:
    for key, one, two in compared:
        assert set(two) == set(one), (key, sorted(two))  # no per-replica series
        for labels, value in one.items():
            assert math.isclose(two[labels], value, rel_tol=1e-9, abs_tol=1e-9), (key, labels)
