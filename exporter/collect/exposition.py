"""The registry collector: serves source snapshots and the exporter's own health metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import Metric

from exporter.catalog import REASONS, SOURCE_LEADER
from exporter.collect.scheduler import Snapshot
from exporter.sources.base import CUT_FAMILIES
from exporter.sources.families import family, info_family


def self_metrics(snapshots: Sequence[tuple[Snapshot, bool]], version: str) -> list[Metric]:
    """The exporter's own health metrics, from ``(snapshot, fresh)`` pairs."""
    up = family("boxoffice_source_up")
    leader = family(SOURCE_LEADER)
    last = family("boxoffice_source_last_success_timestamp_seconds")
    duration = family("boxoffice_source_duration_seconds")
    errors = family("boxoffice_source_errors_total")
    dropped = family("boxoffice_series_dropped_total")
    dropped_by_metric: dict[str, int] = {}
    cut = {name: family(name) for name in CUT_FAMILIES}
    cut_totals: dict[tuple[str, str], int] = {}
    for snap, fresh in snapshots:
        up.add_metric([snap.source], 1.0 if snap.up and fresh else 0.0)
        if snap.leader is not None:
            leader.add_metric([snap.source], 1.0 if snap.leader else 0.0)
        if snap.last_success is not None:
            last.add_metric([snap.source], snap.last_success)
        if snap.last_duration is not None:
            duration.add_metric([snap.source], snap.last_duration)
        for reason in sorted(set(REASONS) | set(snap.errors)):
            errors.add_metric([snap.source, reason], float(snap.errors.get(reason, 0)))
        for metric, count in snap.dropped.items():
            dropped_by_metric[metric] = dropped_by_metric.get(metric, 0) + count
        for key, count in snap.cut.items():
            cut_totals[key] = cut_totals.get(key, 0) + count
    for metric in sorted(dropped_by_metric):
        dropped.add_metric([metric], float(dropped_by_metric[metric]))
    for (name, metric), count in sorted(cut_totals.items()):
        cut[name].add_metric([metric], float(count))
    build = info_family("boxoffice_build_info", {"version": version})
    return [up, leader, last, duration, errors, dropped, *cut.values(), build]


class ExporterCollector:
    """Yields the latest snapshot of every source; never waits on a database or an API."""

    def __init__(
        self,
        snapshots: Callable[[], Iterable[Snapshot]],
        version: str,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._snapshots = snapshots
        self._version = version
        self._monotonic = monotonic

    def collect(self) -> Iterator[Metric]:
        """Business families of fresh sources, then the self-metrics."""
        now = self._monotonic()
        pairs = [(snap, snap.fresh(now)) for snap in self._snapshots()]
        for snap, fresh in pairs:
            if fresh:
                yield from snap.families
        yield from self_metrics(pairs, self._version)
