"""The default query pack's full-aggregate answer, to compare the incremental engine with."""

from __future__ import annotations

from typing import Any

import psycopg

from exporter.sources.engine_series import ENGINE_METRICS
from exporter.sources.postgres import PostgresSource
from exporter.sources.querypack import DEFAULT_PACK_BY_NAME
from exporter.sources.samples import to_samples

Series = dict[tuple[str, tuple[str, ...]], float]


def pack_series(conn: psycopg.Connection[Any]) -> Series:
    """Every engine-computed series as the pack's SQL gives it, in ``conn``'s snapshot."""
    out: Series = {}
    for name in sorted(ENGINE_METRICS):
        spec = DEFAULT_PACK_BY_NAME[name]
        with conn.cursor() as cur:
            cur.execute(spec.sql.encode())
            columns = [(d.name, _type_name(conn, d.type_code)) for d in cur.description or []]
            for sample in to_samples(spec, columns, cur.fetchall()):
                out[(name, sample.labels)] = sample.value
    return out


def pack_series_of(dsn: str) -> Series:
    """:func:`pack_series` in one snapshot of a new connection."""
    with psycopg.connect(dsn) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.transaction():
            return pack_series(conn)


def published_engine_series(source: PostgresSource) -> Series:
    """One collection of ``source``: its engine-computed series (it must succeed)."""
    collection = source.collect()
    assert collection.ok, collection.failures
    out: Series = {}
    for family in collection.families:
        for sample in family.samples:
            if sample.name in ENGINE_METRICS:
                out[(sample.name, tuple(sample.labels.values()))] = sample.value
    return out


def _type_name(conn: psycopg.Connection[Any], oid: int) -> str:
    info = conn.adapters.types.get(oid)
    assert info is not None
    return info.name
