"""Metric families built from their catalog entry, so a source never restates a HELP text.

Every source and the exporter's own health metrics go through here: the name, type, HELP
and label names all come from :mod:`exporter.catalog`, and a name missing there fails
when the family is built (in the tests of each source) rather than at a user's scrape.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

from exporter.catalog import CATALOG_BY_NAME


def family(name: str, *, value: float | None = None) -> CounterMetricFamily | GaugeMetricFamily:
    """An empty counter or gauge family (or one unlabelled sample of ``value``)."""
    metric = CATALOG_BY_NAME[name]
    built: CounterMetricFamily | GaugeMetricFamily
    if metric.type == "counter":
        # prometheus_client takes the name without `_total` and adds it to the sample.
        built = CounterMetricFamily(metric.name, metric.help, labels=metric.labels)
    elif metric.type == "gauge":
        built = GaugeMetricFamily(metric.name, metric.help, labels=metric.labels)
    else:
        raise ValueError(f"{name} is an {metric.type} metric, not a counter or gauge")
    if value is not None:
        built.add_metric([], value)
    return built


def info_family(name: str, value: Mapping[str, str]) -> InfoMetricFamily:
    """An info family with its one sample; the catalog name ends in `_info`, the family's not."""
    metric = CATALOG_BY_NAME[name]
    if metric.type != "info" or set(value) != set(metric.labels):
        raise ValueError(f"{name} is not an info metric labelled {sorted(value)}")
    built = InfoMetricFamily(metric.name.removesuffix("_info"), metric.help)
    built.add_metric([], dict(value))
    return built
