"""Metric families built from their catalog entry, so a source never restates a HELP text.

Every source and the exporter's own health metrics go through here: the name, type, HELP
and label names all come from :mod:`exporter.catalog`, and a name missing there fails
when the family is built (in the tests of each source) rather than at a user's scrape.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample

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


def labelled(metric: Metric, labels: Mapping[str, str]) -> Metric:
    """``metric`` with ``labels`` added to every sample (a database's constant labels)."""
    if not labels:
        return metric
    built = copy.copy(metric)
    built.samples = [s._replace(labels={**s.labels, **labels}) for s in metric.samples]
    return built


# Label dicts of one database's series by (label names, label values): the per-tier
# metrics (sold, refunded, capacity, reserved, available) share one dict per tier.
SharedLabels = dict[tuple[tuple[str, ...], tuple[str, ...]], dict[str, str]]


def with_series(
    name: str,
    series: Iterable[tuple[tuple[str, ...], float]],
    labels: Mapping[str, str],
    shared: SharedLabels | None = None,
) -> CounterMetricFamily | GaugeMetricFamily:
    """The family :func:`family` builds for ``name``, with one sample per ``(label values,
    value)``, each carrying the constant ``labels`` after its own: what ``add_metric`` then
    :func:`labelled` give, built once per sample (this runs every cycle over every series).

    With ``shared`` (one table per set of constant ``labels``), a sample whose label names
    and values another family's sample already has takes that sample's dict: label dicts
    are never changed once built, and they are most of a series' memory.
    """
    built = family(name)
    names = CATALOG_BY_NAME[name].labels
    # As add_metric names them: prometheus_client adds `_total` back to a counter's samples.
    sample_name = f"{built.name}_total" if built.type == "counter" else built.name
    const = dict(labels)
    append = built.samples.append
    table: SharedLabels = shared if shared is not None else {}
    for values, value in series:
        own = table.get((names, values))
        if own is None:
            own = dict(zip(names, values, strict=False))
            own.update(const)
            table[(names, values)] = own
        append(Sample(sample_name, own, value))
    return built


def merged(metrics: Iterable[tuple[Metric, Mapping[str, str]]]) -> list[Metric]:
    """One family per name, in first-seen order; each family's samples already carry the
    constant ``labels`` it is paired with (see :func:`labelled` and :func:`with_series`).

    Several databases feed the same metric; the exposition must name each family once.
    A family whose name and constant labels repeat one already taken is left out whole, so
    two databases never publish the same series (the loader refuses configurations where
    that could happen to a query-pack metric). Families labelled by `database` are kept:
    their series differ anyway. Per family, not per sample: this runs on every cycle over
    every series.
    """
    by_name: dict[str, Metric] = {}
    taken: set[tuple[str, frozenset[tuple[str, str]]]] = set()
    for metric, labels in metrics:
        catalog = CATALOG_BY_NAME.get(metric.name) or CATALOG_BY_NAME.get(f"{metric.name}_total")
        if catalog is None or "database" not in catalog.labels:
            key = (metric.name, frozenset(labels.items()))
            if key in taken:
                continue
            taken.add(key)
        target = by_name.get(metric.name)
        if target is None:
            target = by_name[metric.name] = copy.copy(metric)
            target.samples = []
            setattr(target, _PARTS, [])
        target.samples += metric.samples
        getattr(target, _PARTS).append(metric.samples)
    return list(by_name.values())


# Where merged() notes the sample lists a family was made of.
_PARTS = "_boxoffice_parts"


def parts_of(metric: Metric) -> Sequence[list[Sample]]:
    """The sample lists ``metric``'s samples are the concatenation of, in order.

    A family :func:`merged` made is one part per database's family: an unchanged database
    publishes the very same list again (exporter.sources.reuse), so an encoder may keep
    each part's text. Any other family, or one whose samples were changed after merging,
    is one part: its own sample list.
    """
    parts: Sequence[list[Sample]] | None = getattr(metric, _PARTS, None)
    if parts is None or sum(len(part) for part in parts) != len(metric.samples):
        return [metric.samples]
    return parts
