"""Views into the sources' internal state that only tests need (the product never asks)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from exporter.sources.engine_series import ENGINE_METRICS
from exporter.sources.incremental import Drift, IncrementalEngine
from exporter.sources.postgres import PostgresSource
from exporter.sources.querypack import DEFAULT_PACK_BY_NAME, MetricSpec
from exporter.sources.reconcile import Reconciler
from exporter.sources.stripe import StripeSource


def engine_specs(names: Sequence[str]) -> list[MetricSpec]:
    """The pack specs for metric names the engine computes, in catalog order."""
    wanted = set(names) & ENGINE_METRICS
    return [DEFAULT_PACK_BY_NAME[name] for name in DEFAULT_PACK_BY_NAME if name in wanted]


def engines(source: PostgresSource) -> Mapping[str, IncrementalEngine]:
    """The incremental engine of each database that has one."""
    return source._engines


def reconcilers(source: PostgresSource) -> Mapping[str, Reconciler]:
    """The reconciliation of each incremental engine."""
    return source._reconcilers


def reconcile_once(source: PostgresSource) -> Drift:
    """Run one reconciliation of the default database; its snapshot is read in by
    collections on this thread, as the collection loop would."""
    reconciler = reconcilers(source)["default"]
    outcome: list[Drift | None] = []
    worker = threading.Thread(target=lambda: outcome.append(reconciler.run_once()))
    worker.start()
    for _ in range(50):
        if outcome or not worker.is_alive():
            break
        source.collect()
        worker.join(0.1)
    worker.join(30)
    assert outcome and outcome[0] is not None
    return outcome[0]


def watching(source: StripeSource) -> dict[str, int]:
    """How many objects are followed until they settle: pending charges and refunds,
    open disputes."""
    names = ("charges", "refunds", "disputes")
    return {name: len(t.ledger.watched) for name, t in zip(names, source._lists, strict=True)}
