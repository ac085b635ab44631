"""One exporter, many databases: constant labels per shard, parallel reads, health per database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from exporter.config import ConfigError, load_config
from exporter.db.schema import create_schema
from exporter.sources.guard import CardinalityGuard
from exporter.sources.postgres import DatabaseRead, QueryResult, collection_of
from exporter.sources.querypack import bind
from tests.support.data import add_event, add_order, add_tier
from tests.support.exporter import running_exporter, scrape, wait_for

SHARDS = ("eu-1", "eu-2", "us-1")
_DSN = "postgresql://reader@127.0.0.1:5432/tickets"


def _yaml(databases: dict[str, str], extra: str = "") -> str:
    lines = ["databases:"]
    for name, labels in databases.items():
        lines += [f"  {name}:", f"    dsn: {_DSN}"]
        if labels:
            lines.append(f"    labels: {labels}")
    return "\n".join(lines) + "\n" + extra


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "boxoffice.yml"
    path.write_text(text)
    return load_config(str(path))


def _shards_yaml(extra: str = "sources:\n  postgres:\n    databases: ['shard-*']\n") -> str:
    return _yaml({f"shard-{s}": f"{{shard: {s}}}" for s in SHARDS}, extra)


def test_three_shards_each_read_with_the_whole_pack(tmp_path: Path) -> None:
    config = _load(tmp_path, _shards_yaml())
    metrics = config.metrics  # type: ignore[attr-defined]
    by_database: dict[str, int] = {}
    for metric in metrics:
        by_database[metric.database] = by_database.get(metric.database, 0) + 1
    assert by_database == {f"shard-{s}": 20 for s in SHARDS}
    databases = config.databases  # type: ignore[attr-defined]
    assert databases["shard-eu-2"].labels == {"shard": "eu-2"}


def test_a_metric_naming_its_database_reads_only_that_one(tmp_path: Path) -> None:
    text = _yaml(
        {"a": "{shard: a}", "b": "{shard: b}", "payments": ""},
        "sources:\n  postgres:\n    databases: [a, b]\n"
        "metrics:\n  boxoffice_revenue_total:\n    database: payments\n",
    )
    metrics = _load(tmp_path, text).metrics  # type: ignore[attr-defined]
    revenue = {m.database for m in metrics if m.spec.name == "boxoffice_revenue_total"}
    sold = {m.database for m in metrics if m.spec.name == "boxoffice_tickets_sold_total"}
    assert (revenue, sold) == ({"payments"}, {"a", "b"})


@pytest.mark.parametrize(
    ("text", "path", "reason"),
    [
        (_yaml({"default": "{'1shard': x}"}), "databases.default.labels", "not a Prometheus label"),
        (_yaml({"default": "{__shard: x}"}), "databases.default.labels", "reserved"),
        (_yaml({"default": "{event: x}"}), "databases.default.labels", "already sets"),
        (_yaml({"default": "{database: x}"}), "databases.default.labels", "already sets"),
        (_yaml({"default": "{instance: x}"}), "databases.default.labels", "already sets"),
        (_yaml({"default": "{shard: ''}"}), "databases.default.labels", "must not be empty"),
        (_yaml({"default": '{shard: "a\\nb"}'}), "databases.default.labels", "printable"),
        (_yaml({"default": "{shard: " + "x" * 129 + "}"}), "databases.default.labels", "longer"),
        (_yaml({"default": "{shard: 1}"}), "databases.default.labels.shard", "must be a string"),
        (_yaml({"default": "[shard]"}), "databases.default.labels", "must be a mapping"),
        (
            _yaml(
                {"a": "{shard: x}", "b": "{shard: x}"}, "sources: {postgres: {databases: [a, b]}}"
            ),
            "databases.b.labels",
            "same constant labels (shard=x) as database 'a'",
        ),
        (
            _yaml({"a": "", "b": ""}, "sources: {postgres: {databases: ['*']}}"),
            "databases.b.labels",
            "same constant labels (none) as database 'a'",
        ),
        (
            _yaml({"a": ""}, "sources: {postgres: {databases: ['shard-*']}}"),
            "sources.postgres.databases[0]",
            "matches no database",
        ),
        (
            _yaml({"a": ""}, "sources: {postgres: {databases: [a, nope]}}"),
            "sources.postgres.databases[1]",
            "no database named 'nope'",
        ),
        (
            _yaml({"a": ""}, "sources: {postgres: {databases: []}}"),
            "sources.postgres.databases",
            "at least one",
        ),
        (
            _yaml({"default": ""}, "sources: {postgres: {parallelism: 0}}"),
            "sources.postgres.parallelism",
            "between 1 and 64",
        ),
    ],
)
def test_hostile_shard_settings_are_one_line_errors(
    tmp_path: Path, text: str, path: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    message = str(caught.value)
    assert "\n" not in message
    assert f"{path}:" in message and reason in message, message


def test_reads_of_several_databases_make_one_family_per_metric() -> None:
    query = bind("boxoffice_revenue_total", database="x", sql=None)
    ok = QueryResult(
        query=query, columns=(("currency", "text"), ("value", "int8")), rows=(("usd", 500),)
    )
    reads = [
        DatabaseRead(database=name, queries=(ok,), labels=(("shard", name),), duration=0.1)
        for name in ("a", "b")
    ]
    reads.append(DatabaseRead(database="c", unavailable="gone", labels=(("shard", "c"),)))
    collection = collection_of(reads, CardinalityGuard(10))
    names = [family.name for family in collection.families]
    assert len(names) == len(set(names))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in collection.families
        for s in family.samples
    }
    for shard in ("a", "b"):
        assert samples[("boxoffice_revenue_total", (("currency", "usd"), ("shard", shard)))] == 5.0
        assert samples[("boxoffice_database_up", (("database", shard), ("shard", shard)))] == 1
    assert samples[("boxoffice_database_up", (("database", "c"), ("shard", "c")))] == 0
    assert [f.reason for f in collection.failures] == ["connection"]


def _seed_shard(dsn: str, tickets: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        create_schema(conn)
        tier = add_tier(conn, add_event(conn, "show", "Paris"), "ga", price_cents=100, capacity=90)
        for _ in range(tickets):
            add_order(conn, tier, quantity=1, amount_cents=100, currency="eur", status="completed")


def _boxoffice_connections(admin: str, dbname: str) -> int:
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND application_name = 'boxoffice'",
            [dbname],
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_three_shards_one_dropped_mid_run(
    tmp_path: Path, pg_server: str, new_database: Callable[[], str]
) -> None:
    """Each shard's series carry its label; a dropped shard costs only its own series."""
    dsns = {shard: new_database() for shard in SHARDS}
    for i, dsn in enumerate(dsns.values()):
        _seed_shard(dsn, tickets=i + 1)
    state = tmp_path / "state"
    lines = ["databases:"]
    for shard, dsn in dsns.items():
        lines += [f"  {shard}:", f"    dsn: '{dsn}'", "    connect_timeout: 1s"]
        lines.append(f"    labels: {{shard: {shard}}}")
    lines += [
        "sources:",
        "  postgres:",
        f"    databases: {list(SHARDS)}",
        "    interval: 1h",
        "    parallelism: 2",
        f"    incremental: {{state_dir: '{state}'}}",
    ]
    path = tmp_path / "boxoffice.yml"
    path.write_text("\n".join(lines) + "\n")
    config = load_config(str(path))

    def sold(series: dict, shard: str) -> float | None:  # type: ignore[type-arg]
        labels = {"event": "show", "city": "Paris", "tier": "ga", "shard": shard}
        return series.get(("boxoffice_tickets_sold_total", frozenset(labels.items())))

    def up(series: dict, shard: str) -> float | None:  # type: ignore[type-arg]
        labels = {"database": shard, "shard": shard}
        return series.get(("boxoffice_database_up", frozenset(labels.items())))

    with running_exporter(config) as (exporter, url):
        (runner,) = exporter.runners
        # The first cycle runs in the background at start; the next ones are run here.
        assert wait_for(lambda: runner.snapshot().cycles >= 1)
        assert runner.snapshot().up
        series = scrape(url)
        assert [sold(series, s) for s in SHARDS] == [1, 2, 3]
        assert [up(series, s) for s in SHARDS] == [1, 1, 1]
        # One connection per database, held by the pool between cycles.
        for dsn in dsns.values():
            assert _boxoffice_connections(pg_server, conninfo_to_dict(dsn)["dbname"]) == 1

        with psycopg.connect(dsns["eu-1"], autocommit=True) as conn:
            tier = conn.execute("SELECT id FROM ticket_tiers").fetchone()
            assert tier is not None
            add_order(
                conn, tier[0], quantity=4, amount_cents=400, currency="eur", status="completed"
            )
        with psycopg.connect(pg_server, autocommit=True) as admin:
            name = conninfo_to_dict(dsns["eu-2"])["dbname"]
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        snapshot = runner.run_once()
        assert not snapshot.up
        assert snapshot.last_error is not None and "database 'eu-2'" in snapshot.last_error
        series = scrape(url)
        assert [sold(series, s) for s in SHARDS] == [5, None, 3]
        assert [up(series, s) for s in SHARDS] == [1, 0, 1]
        assert series[("boxoffice_source_up", frozenset({("source", "postgres")}))] == 0
    # Checkpoints are kept per database, never shared between shards.
    files = {p.name: p.read_text() for p in state.iterdir()}
    assert sorted(files) == [f"incremental-{shard}.json" for shard in SHARDS]
    assert len(set(files.values())) == len(SHARDS)


def test_databases_without_labels_each_report_their_health() -> None:
    """A ticket database and a payment database (no shards): both health series stay."""
    reads = [DatabaseRead(database=name, duration=0.1) for name in ("tickets", "payments")]
    collection = collection_of(reads, CardinalityGuard(10))
    up = {
        s.labels["database"]: s.value
        for family in collection.families
        for s in family.samples
        if s.name == "boxoffice_database_up"
    }
    assert up == {"tickets": 1.0, "payments": 1.0}
