"""The metric catalog the rules are checked against is exactly what the sources publish."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from prometheus_client.core import Metric

from exporter.catalog import CATALOG, CATALOG_BY_NAME, POSTGRES_PACK
from exporter.collect.exposition import ExporterCollector
from exporter.collect.scheduler import Snapshot
from exporter.sources.engine_series import ENGINE_METRICS
from exporter.sources.guard import CardinalityGuard
from exporter.sources.http import Probe, http_families
from exporter.sources.incremental import (
    EngineSettings,
    IncrementalEngine,
)
from exporter.sources.postgres import DatabaseRead, collection_of
from exporter.sources.querypack import DEFAULT_PACK
from exporter.sources.stripe import StripeView, stripe_families
from exporter.sources.stripe_api import Balance
from exporter.sources.twilio import TwilioView, twilio_families
from tests.support.sources import engine_specs

Shape = tuple[str, str, tuple[str, ...]]
ROOT = Path(__file__).resolve().parent.parent


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
        charges_failed={("card_declined", "customer_decline"): 1},
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
    probes = [
        Probe(target="app", success=True, duration=0.1, status=200, components={"database": True})
    ]
    assert _shapes(http_families(probes)) == _catalog("http")


def test_exporter_self_metrics_match_the_catalog() -> None:
    snapshot = Snapshot(
        source="postgres",
        interval=30,
        timeout=10,
        up=True,
        cycles=1,
        last_success=1.0,
        last_duration=0.1,
    )
    snapshot.dropped["boxoffice_tickets_sold_total"] = 1
    snapshot.cut[("boxoffice_query_rows_truncated_total", "boxoffice_revenue_total")] = 1
    snapshot.cut[("boxoffice_label_values_truncated_total", "boxoffice_revenue_total")] = 1
    # An API source under a lease (ha.lease_database) also publishes who polls it.
    leased = Snapshot(source="stripe", interval=60, timeout=20, up=True, cycles=1, leader=True)
    collector = ExporterCollector(lambda: [snapshot, leased], "1.0")
    assert _shapes(collector.collect()) == _catalog("exporter")


def test_postgres_catalog_covers_the_pack_reconciliation_and_lag_metrics() -> None:
    engine = IncrementalEngine(engine_specs(sorted(ENGINE_METRICS)), EngineSettings())
    engine.reconciled({}, {}, at=1.0)
    published = {(s.name, s.kind, tuple(sorted(s.labels))) for s in engine.specs}
    published |= _shapes(engine._reconciliation_families())
    lagging = collection_of(
        [DatabaseRead(database="tickets", lag=3.0, duration=0.2)], CardinalityGuard(10)
    )
    published |= _shapes(lagging.families)
    assert published <= _catalog("postgres")
    # the pack (with 3 breakdowns), reconciliation and the engine, the standby's lag, and
    # each database's health and read time (one exporter, many databases)
    assert len(_catalog("postgres")) == 20 + 4 + 1 + 2
    assert {"boxoffice_database_up", "boxoffice_database_duration_seconds"} <= {
        name for name, _type, _labels in published
    }


def test_the_query_pack_adds_sql_to_exactly_the_catalog_postgres_metrics() -> None:
    assert [spec.metric for spec in DEFAULT_PACK] == list(POSTGRES_PACK)
    assert all(CATALOG_BY_NAME[spec.name] is spec.metric for spec in DEFAULT_PACK)


def _loaded_after(code: str) -> set[str]:
    """Modules loaded by a fresh interpreter after running ``code`` (from the repo root)."""
    script = f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(result.stdout.split())


def test_the_catalog_is_a_leaf() -> None:
    ours = {m for m in _loaded_after("import exporter.catalog") if m.startswith("exporter")}
    assert ours == {"exporter", "exporter.catalog"}


def test_generate_loads_neither_database_nor_exposition_code() -> None:
    # The CLI's generate command in-process: loading thresholds and routing, rendering and
    # comparing every generated file (it writes nothing with --check).
    loaded = _loaded_after(
        "from exporter.cli import main\nmain(['generate', '--check'], standalone_mode=False)"
    )
    forbidden = {"psycopg", "psycopg_pool", "prometheus_client", "exporter.sources.incremental"}
    assert {m for m in loaded if m in forbidden or m.split(".")[0] in forbidden} == set()
    assert "exporter.catalog" in loaded
