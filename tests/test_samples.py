"""Pure tables: query rows to samples, money units, the cardinality guard, snapshot folding."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from exporter.collect.exposition import ExporterCollector
from exporter.collect.scheduler import Snapshot, next_snapshot
from exporter.sources.base import Collection, Failure
from exporter.sources.guard import CardinalityGuard
from exporter.sources.querypack import DEFAULT_PACK, DEFAULT_PACK_BY_NAME, Fold, MetricSpec
from exporter.sources.samples import (
    ColumnMismatchError,
    Sample,
    check_columns,
    major_units,
    to_family,
    to_samples,
)

SOLD = DEFAULT_PACK_BY_NAME["boxoffice_tickets_sold_total"]
REVENUE = DEFAULT_PACK_BY_NAME["boxoffice_revenue_total"]
LAST_PAID = DEFAULT_PACK_BY_NAME["boxoffice_last_paid_order_timestamp_seconds"]


@pytest.mark.parametrize(
    ("spec", "columns", "problem"),
    [
        (SOLD, [("event", "text"), ("city", "text"), ("tier", "text"), ("value", "int8")], None),
        (SOLD, [("tier", "text"), ("value", "numeric"), ("city", "text"), ("event", "text")], None),
        (
            SOLD,
            [("event", "text"), ("tier", "text"), ("value", "int8")],
            "query returns columns (event, tier, value); expected (event, city, tier, value)",
        ),
        (
            SOLD,
            [("event", "text"), ("city", "text"), ("tier", "text"), ("n", "int8")],
            "query returns columns (event, city, tier, n); expected (event, city, tier, value)",
        ),
        (
            SOLD,
            [
                ("event", "text"),
                ("city", "text"),
                ("tier", "text"),
                ("value", "int8"),
                ("extra", "text"),
            ],
            "query returns columns (event, city, tier, value, extra); expected (event, city, tier, value)",
        ),
        (
            SOLD,
            [("event", "text"), ("city", "text"), ("tier", "text"), ("value", "text")],
            "column 'value' is of type text; expected a number",
        ),
        (LAST_PAID, [("value", "float8")], None),
        (
            LAST_PAID,
            [("value", "timestamptz")],
            "column 'value' is of type timestamptz; expected a number",
        ),
        (
            LAST_PAID,
            [("value", "int4"), ("value", "int4")],
            "query returns columns (value, value); expected (value)",
        ),
    ],
)
def test_check_columns(
    spec: MetricSpec, columns: list[tuple[str, str]], problem: str | None
) -> None:
    assert check_columns(spec, columns) == problem


def test_to_samples_reorders_columns_and_skips_null_values() -> None:
    columns = [("value", "int8"), ("tier", "text"), ("city", "text"), ("event", "text")]
    rows = [
        (3, "ga", "Austin", "austin-1"),
        (None, "vip", "Austin", "austin-1"),
        (Decimal("2"), "vip", None, "x"),
    ]
    assert to_samples(SOLD, columns, rows) == [
        Sample(("austin-1", "Austin", "ga"), 3.0),
        Sample(("x", "", "vip"), 2.0),
    ]


def test_to_samples_refuses_wrong_columns() -> None:
    with pytest.raises(ColumnMismatchError, match="expected \\(currency, value\\)"):
        to_samples(REVENUE, [("cur", "text"), ("value", "int8")], [])


@pytest.mark.parametrize(
    ("minor", "currency", "major"),
    [
        (12345, "usd", 123.45),
        (12345, "EUR", 123.45),
        (5000, "jpy", 5000),
        (1500, "krw", 1500),
        (12340, "kwd", 12.34),
        (0, "gbp", 0),
    ],
)
def test_major_units(minor: float, currency: str, major: float) -> None:
    assert major_units(minor, currency) == pytest.approx(major)


def test_money_metrics_are_published_in_major_units() -> None:
    rows = [("usd", Decimal(1999)), ("jpy", Decimal(3000))]
    samples = to_samples(REVENUE, [("currency", "text"), ("value", "numeric")], rows)
    assert samples == [Sample(("usd",), 19.99), Sample(("jpy",), 3000.0)]


def _samples(n: int, base: float = 0) -> list[Sample]:
    return [Sample((f"e{i:02}", "c", "ga"), base + i) for i in range(n)]


def test_guard_passes_through_under_the_limit() -> None:
    guard = CardinalityGuard(5)
    assert guard.apply("m", _samples(5), "sum") == (_samples(5), 0)


def test_guard_folds_the_smallest_into_other() -> None:
    guard = CardinalityGuard(3)
    kept, folded = guard.apply("m", _samples(5), "sum")  # values 0..4
    assert folded == 3
    assert kept == [
        Sample(("e04", "c", "ga"), 4),
        Sample(("e03", "c", "ga"), 3),
        Sample(("other", "other", "other"), 0 + 1 + 2),
    ]


def test_guard_drops_when_sums_mean_nothing() -> None:
    kept, folded = CardinalityGuard(2).apply("m", _samples(5), "drop")
    assert (len(kept), folded) == (2, 3)
    assert all(s.labels[0] != "other" for s in kept)


def test_guard_is_sticky_so_series_do_not_flicker() -> None:
    guard = CardinalityGuard(3)
    guard.apply("m", _samples(5), "sum")  # keeps e04, e03
    # e00 grows past the kept ones: the kept series stay, e00 is still folded.
    changed = [Sample(s.labels, 100.0 if s.labels[0] == "e00" else s.value) for s in _samples(5)]
    kept, _ = guard.apply("m", changed, "sum")
    assert [s.labels[0] for s in kept] == ["e04", "e03", "other"]
    # Metrics are tracked separately.
    kept_other, _ = guard.apply("n", changed, "sum")
    assert [s.labels[0] for s in kept_other] == ["e00", "e04", "other"]


def test_guard_merges_a_real_other_series() -> None:
    samples = [*_samples(4), Sample(("other", "other", "other"), 50)]
    kept, folded = CardinalityGuard(3).apply("m", samples, "sum")
    assert folded == 2
    assert kept == [
        Sample(("e03", "c", "ga"), 3),
        Sample(("e02", "c", "ga"), 2),
        Sample(("other", "other", "other"), 50 + 0 + 1),
    ]


def test_every_pack_metric_has_help_and_base_unit_names() -> None:
    for spec in DEFAULT_PACK:
        assert spec.name.startswith("boxoffice_")
        assert spec.help.endswith(".")
        assert spec.name.endswith("_total") == (spec.kind == "counter")
        assert "value" in spec.sql


def test_counter_family_exposes_total_once() -> None:
    family = to_family(SOLD, [Sample(("a", "b", "ga"), 2)])
    registry = CollectorRegistry()
    registry.register(_Fixed([family]))
    text = generate_latest(registry).decode()
    assert 'boxoffice_tickets_sold_total{city="b",event="a",tier="ga"} 2.0' in text
    assert "# TYPE boxoffice_tickets_sold_total counter" in text


class _Fixed:
    def __init__(self, families: list[object]) -> None:
        self.families = families

    def collect(self) -> list[object]:
        return self.families


BASE = Snapshot(source="postgres", interval=10, timeout=5)


@pytest.mark.parametrize(
    ("results", "up", "errors", "last_success"),
    [
        ([Collection()], True, {}, 100.0),
        ([Collection(failures=(Failure("timeout", "slow"),))], False, {"timeout": 1}, None),
        (
            [Collection(), Collection(failures=(Failure("connection", "x"),))],
            False,
            {"connection": 1},
            100.0,
        ),
        (
            [Collection(failures=(Failure("query", "a"), Failure("query", "b"))), Collection()],
            True,
            {"query": 2},
            100.0,
        ),
    ],
)
def test_next_snapshot(
    results: list[Collection], up: bool, errors: dict[str, int], last_success: float | None
) -> None:
    snap = BASE
    for result in results:
        snap = next_snapshot(snap, result, now=100.0, mono=50.0, duration=0.2)
    assert snap.up is up
    assert snap.errors == Counter(errors)
    assert snap.last_success == last_success
    assert snap.cycles == len(results)


@pytest.mark.parametrize(
    ("finished", "now", "fresh"),
    [(None, 0, False), (100, 100, True), (100, 125, True), (100, 125.1, False)],
)
def test_freshness_is_two_intervals_plus_timeout(
    finished: float | None, now: float, fresh: bool
) -> None:
    snap = Snapshot(source="postgres", interval=10, timeout=5, finished_monotonic=finished)
    assert snap.fresh(now) is fresh


def test_stale_or_failed_source_withdraws_business_series() -> None:
    family = to_family(SOLD, [Sample(("a", "b", "ga"), 2)])
    snap = next_snapshot(BASE, Collection(families=(family,)), now=100.0, mono=50.0, duration=0.2)
    clock = [50.0]
    registry = CollectorRegistry()
    registry.register(ExporterCollector(lambda: [snap], "1.2.3", monotonic=lambda: clock[0]))
    assert (
        registry.get_sample_value(
            "boxoffice_tickets_sold_total", {"event": "a", "city": "b", "tier": "ga"}
        )
        == 2
    )
    assert registry.get_sample_value("boxoffice_source_up", {"source": "postgres"}) == 1
    assert (
        registry.get_sample_value(
            "boxoffice_source_errors_total", {"source": "postgres", "reason": "timeout"}
        )
        == 0
    )
    assert registry.get_sample_value("boxoffice_build_info", {"version": "1.2.3"}) == 1
    clock[0] = 80.0  # 30 s without a finished cycle, more than 2 x 10 s + 5 s
    assert (
        registry.get_sample_value(
            "boxoffice_tickets_sold_total", {"event": "a", "city": "b", "tier": "ga"}
        )
        is None
    )
    assert registry.get_sample_value("boxoffice_source_up", {"source": "postgres"}) == 0
    assert (
        registry.get_sample_value(
            "boxoffice_source_last_success_timestamp_seconds", {"source": "postgres"}
        )
        == 100
    )


label_values = st.sampled_from(["a", "b", "c", "d", "e", "other"])


@given(
    rows=st.lists(
        st.tuples(st.tuples(label_values, label_values), st.integers(0, 1000)),
        max_size=40,
        unique_by=lambda r: r[0],
    ),
    limit=st.integers(1, 12),
    fold=st.sampled_from(["sum", "drop"]),
    rounds=st.integers(1, 3),
)
def test_guard_invariants(
    rows: list[tuple[tuple[str, str], int]], limit: int, fold: Fold, rounds: int
) -> None:
    samples = [Sample(labels, float(v)) for labels, v in rows]
    guard = CardinalityGuard(limit)
    for _ in range(rounds):  # the sticky choice must keep the invariants on later cycles too
        kept, folded = guard.apply("m", samples, fold)
        assert len(kept) <= limit
        assert len({s.labels for s in kept}) == len(kept)
        if len(samples) <= limit:
            assert kept == samples and folded == 0
            continue
        assert folded == len(samples) - len(kept) + (1 if fold == "sum" else 0) - sum(
            1 for s in samples if fold == "sum" and s.labels == ("other", "other")
        )
        if fold == "sum":
            assert sum(s.value for s in kept) == sum(s.value for s in samples)
        else:
            assert set(kept) <= set(samples)
