"""The metric catalog the rules are checked against is exactly what the sources publish."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import Metric

from exporter.catalog import CATALOG
from exporter.collect.exposition import ExporterCollector
from exporter.collect.scheduler import Snapshot
from exporter.sources.http import Probe, http_families
from exporter.sources.incremental import (
    ENGINE_METRICS,
    EngineSettings,
    IncrementalEngine,
    engine_specs,
)
from exporter.sources.stripe import StripeView, stripe_families
from exporter.sources.stripe_api import Balance
from exporter.sources.twilio import TwilioView, twilio_families

Shape = tuple[str, str, tuple[str, ...]]


def _shapes(families: Iterable[Metric]) -> set[Shape]:
    out = set()
    for family in families:
        name = family.name + ("_total" if family.type == "counter" else "")
        name += "_info" if family.type == "info" else ""
        labels = {tuple(sorted(s.labels)) for s in family.samples}
        assert len(labels) == 1, (family.name, labels)
        out.add((name, family.type, labels.pop()))
    return out


def _catalog(source: str) -> set[Shape]:
    return {(m.name, m.type, tuple(sorted(m.labels))) for m in CATALOG if m.source == source}


def test_api_sources_publish_exactly_their_catalog_entries() -> None:
    stripe = StripeView(
        charges=1,
        charges_failed={"card_declined": 1},
        refunds=1,
        disputes=1,
        disputes_open=1,
        balance=(Balance("usd", "available", 1),),
        events_pending_webhooks=1,
        webhook_endpoints={"enabled": 1},
    )
    twilio = TwilioView(
        messages=1, failed={"30003": 1}, cost={"usd": 1.0}, balance=1.0, balance_currency="usd"
    )
    assert _shapes(stripe_families(stripe)) == _catalog("stripe")
    assert _shapes(twilio_families(twilio)) == _catalog("twilio")
    probes = [Probe("app", True, 0.1, 200, {"database": True})]
    assert _shapes(http_families(probes)) == _catalog("http")


def test_exporter_self_metrics_match_the_catalog() -> None:
    snapshot = Snapshot("postgres", 30, 10, up=True, cycles=1, last_success=1.0, last_duration=0.1)
    snapshot.dropped["boxoffice_tickets_sold_total"] = 1
    collector = ExporterCollector(lambda: [snapshot], "1.0")
    assert _shapes(collector.collect()) == _catalog("exporter")


def test_postgres_catalog_covers_the_pack_and_the_reconciliation_metrics() -> None:
    engine = IncrementalEngine(engine_specs(sorted(ENGINE_METRICS)), EngineSettings())
    engine.reconciled({}, {}, at=1.0)
    published = {(s.name, s.kind, tuple(sorted(s.labels))) for s in engine.specs}
    published |= _shapes(engine._reconciliation_families())
    assert published <= _catalog("postgres")
    assert len(_catalog("postgres")) == 17 + 3
