"""The /metrics text of a multi-database cycle, byte for byte.

The golden file tests/golden/shards_exposition.txt was written by the code before the
per-cycle work was trimmed (samples built once with their database's labels instead of
built, then copied with them; commit 417faec), from the reads below: three databases with
constant labels (one unreachable), engine series folded by the guard, engine families,
money in minor units, label values with quotes, backslashes, newlines and non-ASCII text,
and values that are large, tiny, negative, infinite or not a number. Any change to how a
cycle's families are built must leave the text identical.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric

from exporter.sources.base import Failure
from exporter.sources.families import family
from exporter.sources.guard import CardinalityGuard
from exporter.sources.postgres import DatabaseRead, QueryResult, collection_of
from exporter.sources.querypack import DEFAULT_PACK_BY_NAME, bind
from exporter.sources.samples import Sample

GOLDEN = Path(__file__).parent / "golden" / "shards_exposition.txt"
HOSTILE = ('Tom "T" O\\Neil', "line\nbreak", "Zürich ☃", "", "a,b=c}")
VALUES = (0.0, 1.0, 2.5, -3.0, 1e21, 1234567.0, 1.5e-7, float("inf"), float("nan"))


def _families() -> list[Metric]:
    sold = DEFAULT_PACK_BY_NAME["boxoffice_tickets_sold_total"]
    runs = family("boxoffice_postgres_reconciliations_total", value=4.0)
    revenue = bind("boxoffice_revenue_total", database="x", sql=None)
    starts = bind("boxoffice_event_start_timestamp_seconds", database="x", sql=None)
    reads = []
    for n, name in enumerate(("eu-1", "us-2")):
        series = [
            Sample((event, city, tier), VALUES[(i + n) % len(VALUES)])
            for i, (event, city, tier) in enumerate(
                (e, c, t) for e in HOSTILE for c in HOSTILE[:2] for t in ("ga", "vip")
            )
        ]
        reads.append(
            DatabaseRead(
                database=name,
                queries=(
                    QueryResult(
                        query=revenue,
                        columns=(("currency", "text"), ("value", "int8")),
                        rows=(("usd", 12345 + n), ("jpy", 500), ("kwd", 1001)),
                    ),
                    QueryResult(
                        query=starts,
                        columns=(("event", "text"), ("city", "text"), ("value", "float8")),
                        rows=tuple((e, "Paris", 1.7e9 + i) for i, e in enumerate(HOSTILE)),
                    ),
                ),
                engine_series=((sold, series),),
                engine_families=(runs,),
                lag=0.25 * n,
                labels=(("region", f"r{n}"), ("shard", name)),
                duration=0.125,
            )
        )
    reads.append(DatabaseRead(database="gone", unavailable="refused", labels=(("shard", "gone"),)))
    collection = collection_of(reads, CardinalityGuard(12))
    assert collection.failures == (Failure("connection", "database 'gone': refused"),)
    return list(collection.families)


def _text() -> bytes:
    registry = CollectorRegistry(auto_describe=False)

    class Fixed:
        def collect(self) -> list[Metric]:
            return _families()

    registry.register(Fixed())  # type: ignore[arg-type]
    return generate_latest(registry)


def test_cycle_exposition_is_byte_identical_to_the_golden_text() -> None:
    assert _text() == GOLDEN.read_bytes()
