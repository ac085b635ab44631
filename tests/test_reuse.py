"""Last cycle's families reused for unchanged databases: never a byte of difference.

A table of cycles run through :func:`collection_of` with and without the cache must give
the same text, guard and all; against real PostgreSQL servers, an unchanged shard
publishes its very sample objects again, a change shows in the next cycle, and a shard
that goes away publishes no cached series (its `boxoffice_database_up` goes 0).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.openmetrics.exposition import UNDERSCORES
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from exporter.config import load_config
from exporter.db.schema import create_schema
from exporter.sources.engine_series import ENGINE_METRICS
from exporter.sources.guard import CardinalityGuard
from exporter.sources.incremental import EngineSettings, IncrementalEngine
from exporter.sources.postgres import DatabaseRead, QueryResult, collection_of
from exporter.sources.querypack import DEFAULT_PACK_BY_NAME, bind
from exporter.sources.reuse import FamilyCache, same_series
from exporter.sources.samples import Sample
from exporter.web.encoding import PartTexts, encode_text, text_chunks
from tests.support.data import add_event, add_order, add_tier
from tests.support.exporter import running_exporter, scrape, upstream_of, via_proxy
from tests.support.sources import engine_specs
from tests.support.tcpproxy import TcpProxy

SOLD = DEFAULT_PACK_BY_NAME["boxoffice_tickets_sold_total"]
REVENUE = bind("boxoffice_revenue_total", database="x", sql=None)
_REVENUE_COLUMNS = (("currency", "text"), ("value", "numeric"))
_TIERS = (("a", "x", "ga"), ("b", "x", "ga"), ("c", "y", "vip"), ("other", "other", "other"))
_VALUES = (0.0, -0.0, 1.0, 2.5, 1e21, float("nan"))


class _Fixed:
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> list[Metric]:
        return self.metrics


def _registry(metrics: list[Metric]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(metrics))  # type: ignore[arg-type]
    return registry


# One database's cycle: reachable or not, its engine series (or the last cycle's very list),
# and the revenue rows its query returned.
_DATABASE = st.tuples(
    st.booleans(),
    st.one_of(
        st.just("same object"),
        st.lists(
            st.tuples(st.sampled_from(_TIERS), st.sampled_from(_VALUES)),
            max_size=4,
            unique_by=lambda row: row[0],
        ),
    ),
    st.lists(
        st.tuples(st.sampled_from(["usd", "jpy", "eur"]), st.sampled_from([0, 500, 1001])),
        max_size=3,
        unique_by=lambda row: row[0],
    ),
)


@settings(max_examples=150, deadline=None)
@given(cycles=st.lists(st.tuples(_DATABASE, _DATABASE), min_size=1, max_size=6))
def test_cycles_with_the_cache_publish_what_cycles_without_it_publish(
    cycles: list[tuple[tuple[bool, object, list[tuple[str, int]]], ...]],
) -> None:
    """Same text and same folded counts every cycle, the guard's sticky choice included."""
    cache, cached_guard, plain_guard = FamilyCache(), CardinalityGuard(2), CardinalityGuard(2)
    last: dict[str, list[Sample]] = {}
    texts = PartTexts()
    for cycle in cycles:
        reads = []
        for name, (reachable, drawn, revenue) in zip(("eu-1", "us-2"), cycle, strict=True):
            if drawn == "same object":
                series = last.get(name, [])
            else:
                assert isinstance(drawn, list)
                series = [Sample(tier, value) for tier, value in drawn]
            last[name] = series
            labels = (("shard", name),)
            if not reachable:
                reads.append(DatabaseRead(database=name, unavailable="gone", labels=labels))
                continue
            rows = tuple(revenue)
            query = QueryResult(query=REVENUE, columns=_REVENUE_COLUMNS, rows=rows)
            reads.append(
                DatabaseRead(
                    database=name,
                    queries=(query,),
                    engine_series=((SOLD, series),),
                    labels=labels,
                    duration=0.5,
                )
            )
        cached = collection_of(reads, cached_guard, cache)
        plain = collection_of(reads, plain_guard)
        expected = generate_latest(_registry(list(plain.families)))
        assert generate_latest(_registry(list(cached.families))) == expected
        assert encode_text(_registry(list(cached.families)), texts) == expected
        # Prometheus asks for OpenMetrics: the same kept parts, the library's text.
        registry = _registry(list(cached.families))
        assert b"".join(text_chunks(registry, texts, openmetrics=True)) == openmetrics_latest(
            _registry(list(plain.families)), escaping=UNDERSCORES, version="1.0.0"
        )
        assert cached.dropped == plain.dropped
        assert cached.failures == plain.failures


def test_equal_series_are_the_same_text_and_signed_zeros_are_not() -> None:
    one = [Sample(("a",), 0.0), Sample(("b",), 2.0)]
    assert same_series(one, one)
    assert same_series([Sample(("a",), 0.0), Sample(("b",), 2.0)], one)
    assert not same_series([Sample(("a",), -0.0), Sample(("b",), 2.0)], one)
    assert not same_series([Sample(("a",), 0.0), Sample(("b",), 3.0)], one)
    assert not same_series([Sample(("a",), 0.0)], one)
    nan = [Sample(("a",), float("nan"))]
    assert not same_series([Sample(("a",), float("nan"))], nan)


def test_the_encoder_writes_a_changed_sample_anew() -> None:
    cache = FamilyCache()
    guard = CardinalityGuard(10)
    texts = PartTexts()

    def text(values: tuple[float, float]) -> tuple[bytes, bytes]:
        series = [Sample(("a", "x", "ga"), values[0]), Sample(("b", "x", "ga"), values[1])]
        read = DatabaseRead(database="eu-1", engine_series=((SOLD, series),), duration=0.5)
        registry = _registry(list(collection_of([read], guard, cache).families))
        return encode_text(registry, texts), generate_latest(registry)

    for values in ((1.0, 2.0), (1.0, 2.0), (1.0, 3.0), (0.0, 3.0), (-0.0, 3.0), (1.0, 2.0)):
        ours, library = text(values)
        assert ours == library


def _shop(dsn: str, tickets: int) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_schema(conn)
        tier = add_tier(conn, add_event(conn, "show", "Paris"), "ga", price_cents=100, capacity=90)
        for _ in range(tickets):
            add_order(conn, tier, quantity=1, amount_cents=100, currency="eur", status="completed")
    return tier


def _samples(families: tuple[Metric, ...], shard: str) -> dict[tuple[str, str], object]:
    """The sample objects of one shard's query-pack series, by (name, event or currency)."""
    return {
        (s.name, s.labels.get("event") or s.labels.get("currency") or ""): s
        for f in families
        for s in f.samples
        if s.labels.get("shard") == shard
        and not s.name.startswith("boxoffice_database_")
        # The engine's own reconciliation counters are rebuilt every cycle (a few series).
        and not s.name.startswith("boxoffice_postgres_")
    }


def test_unchanged_shards_reuse_their_series_and_a_lost_one_publishes_none(
    tmp_path: Path, new_database: Callable[[], str]
) -> None:
    """A fresh exporter over two shards, one behind a proxy that is cut and restored."""
    near, far = new_database(), new_database()
    tier = _shop(near, tickets=1)
    _shop(far, tickets=2)
    proxy = TcpProxy(upstream_of(far))
    proxy.start()
    path = tmp_path / "boxoffice.yml"
    path.write_text(
        "databases:\n"
        f"  near: {{dsn: '{near}', connect_timeout: 1s, labels: {{shard: near}}}}\n"
        f"  far: {{dsn: '{via_proxy(far, proxy.port)}', connect_timeout: 1s, "
        "labels: {shard: far}}\n"
        "sources:\n  postgres: {databases: [near, far], interval: 1h}\n"
    )

    def sold(series: dict, shard: str) -> float | None:  # type: ignore[type-arg]
        labels = {"event": "show", "city": "Paris", "tier": "ga", "shard": shard}
        return series.get(("boxoffice_tickets_sold_total", frozenset(labels.items())))

    def up(series: dict, shard: str) -> float | None:  # type: ignore[type-arg]
        labels = {"database": shard, "shard": shard}
        return series.get(("boxoffice_database_up", frozenset(labels.items())))

    try:
        with running_exporter(load_config(str(path))) as (exporter, url):
            (runner,) = exporter.runners
            first = runner.run_once()
            second = runner.run_once()
            assert first.up and second.up
            for shard in ("near", "far"):
                before, after = _samples(first.families, shard), _samples(second.families, shard)
                assert ("boxoffice_tickets_sold_total", "show") in after
                assert ("boxoffice_revenue_total", "eur") in after
                assert ("boxoffice_event_start_timestamp_seconds", "show") in after
                assert all(after[key] is before[key] for key in after), shard

            with psycopg.connect(near, autocommit=True) as conn:
                add_order(
                    conn, tier, quantity=4, amount_cents=400, currency="eur", status="completed"
                )
            third = runner.run_once()
            series = scrape(url)
            assert (sold(series, "near"), sold(series, "far")) == (5, 2)
            changed = _samples(third.families, "near")
            assert changed[("boxoffice_tickets_sold_total", "show")].value == 5  # type: ignore[attr-defined]
            kept = _samples(third.families, "far")
            assert all(
                kept[key] is value for key, value in _samples(second.families, "far").items()
            )

            proxy.stop()
            lost = runner.run_once()
            assert not lost.up
            series = scrape(url)
            assert (up(series, "near"), up(series, "far")) == (1, 0)
            assert (sold(series, "near"), sold(series, "far")) == (5, None)
            assert not any(
                dict(labels).get("shard") == "far"
                for name, labels in series
                if not name.startswith("boxoffice_database_")
            )

            proxy.start()
            back = runner.run_once()
            assert back.up
            series = scrape(url)
            assert (up(series, "near"), up(series, "far")) == (1, 1)
            assert (sold(series, "near"), sold(series, "far")) == (5, 2)
    finally:
        proxy.stop()


def test_the_engine_renders_again_only_when_its_totals_or_tiers_change(
    new_database: Callable[[], str],
) -> None:
    dsn = new_database()
    tier = _shop(dsn, tickets=1)
    engine = IncrementalEngine(engine_specs(sorted(ENGINE_METRICS)), EngineSettings())

    def cycle(conn: psycopg.Connection[Any]) -> dict[str, list[Sample]]:
        with conn.transaction():
            series, _families = engine.collect(conn, imported=None)
        return {spec.name: samples for spec, samples in series}

    with psycopg.connect(dsn) as conn:
        first = cycle(conn)
        second = cycle(conn)
        assert second.keys() == first.keys()
        assert all(second[name] is first[name] for name in first)
        with psycopg.connect(dsn, autocommit=True) as writer:
            add_order(
                writer, tier, quantity=2, amount_cents=200, currency="eur", status="completed"
            )
        third = cycle(conn)
        assert [s.value for s in third["boxoffice_tickets_sold_total"]] == [3.0]
        assert [s.value for s in first["boxoffice_tickets_sold_total"]] == [1.0]
        assert (
            third["boxoffice_inventory_capacity_tickets"]
            == first["boxoffice_inventory_capacity_tickets"]
        )
