"""encode_text spells the text format exactly as prometheus_client's generate_latest."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.openmetrics.exposition import UNDERSCORES
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from exporter.web.encoding import ExpositionCache, encode_text, text_chunks
from tests.test_exposition_identity import GOLDEN, _families

VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e21, 1234567.0, 123456.7, 1.5e-7, 5.0]),
)
TEXT = st.text(max_size=12)


class _Fixed:
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> list[Metric]:
        return self.metrics


def _registry(metrics: list[Metric]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(metrics))  # type: ignore[arg-type]
    return registry


# What Prometheus 2.x sends: OpenMetrics 1.0.0 first.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def _openmetrics(registry: CollectorRegistry) -> bytes:
    return b"".join(text_chunks(registry, openmetrics=True))


def _library_openmetrics(registry: CollectorRegistry) -> bytes:
    return openmetrics_latest(registry, escaping=UNDERSCORES, version="1.0.0")  # type: ignore[no-any-return]


def test_a_multi_database_cycle_encodes_as_the_golden_text() -> None:
    registry = _registry(_families())
    assert encode_text(registry) == generate_latest(registry) == GOLDEN.read_bytes()
    assert _openmetrics(registry) == _library_openmetrics(registry)


def test_prometheus_scrapes_get_the_library_openmetrics_body() -> None:
    registry = _registry(_families())
    cache = ExpositionCache(registry, version=lambda: 1)
    body, content_type = cache.render(PROMETHEUS_ACCEPT, gzipped=False)
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert body == _library_openmetrics(registry)
    # Its parts, kept by the OpenMetrics encoding, serve the text format too, and back.
    assert cache.render("text/plain", gzipped=False)[0] == GOLDEN.read_bytes()
    again = ExpositionCache(registry, version=lambda: 2)
    assert again.render("text/plain", gzipped=False)[0] == GOLDEN.read_bytes()
    assert again.render(PROMETHEUS_ACCEPT, gzipped=False)[0] == body


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(TEXT, TEXT, VALUES), max_size=8),
    gauge=st.lists(VALUES, max_size=2),
    help_text=TEXT,
    info=st.dictionaries(st.sampled_from(["version", "b_c", "x"]), TEXT, max_size=3),
)
def test_hostile_families_encode_as_the_library_does(
    rows: list[tuple[str, str, float]], gauge: list[float], help_text: str, info: dict[str, str]
) -> None:
    counter = CounterMetricFamily("a_total", help_text, labels=["city", "zone"])
    for city, zone, value in rows:
        counter.add_metric([city, zone], value)
    plain = GaugeMetricFamily("b", "b\\help\nx")
    for value in gauge:
        plain.add_metric([], value)
    built = InfoMetricFamily("c", "c")
    built.add_metric([], info)
    registry = _registry([counter, plain, built])
    assert encode_text(registry) == generate_latest(registry)
    assert _openmetrics(registry) == _library_openmetrics(registry)


def test_what_it_does_not_spell_goes_to_the_library() -> None:
    histogram = HistogramMetricFamily("h", "h", buckets=[("1", 1.0), ("+Inf", 2.0)], sum_value=3)
    stamped = GaugeMetricFamily("t", "t")
    stamped.add_metric([], 1.0, timestamp=1700000000.5)
    created = CounterMetricFamily("d", "d", labels=["x"])
    created.add_metric(["y"], 1.0, created=1700000000.0)
    odd = GaugeMetricFamily("odd", "o", labels=["bad-name"])
    odd.add_metric(["v"], 1.0)
    colon = CounterMetricFamily("job:requests", "rule-style name", labels=["x"])
    colon.add_metric(["y"], 1.0)
    unit = GaugeMetricFamily("u_seconds", "with a unit", unit="seconds")
    unit.add_metric([], 1.0)
    for metric in (histogram, stamped, created, odd, colon, unit):
        registry = _registry([GaugeMetricFamily("g", "g", value=1.0), metric])
        assert encode_text(registry) == generate_latest(registry)
        assert _openmetrics(registry) == _library_openmetrics(registry)
