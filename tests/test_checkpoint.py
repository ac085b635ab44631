"""Restarts without a full scan: the incremental engine's checkpoint.

Pure: a checkpoint decodes to what was encoded, and every reason not to trust one (corrupt,
another version, another database, stale) is named. With a real PostgreSQL: a restart
resumes from the file without the full computation and is exact for rows written while the
exporter was down; counters keep what a reconciliation corrected; a corrupt or foreign file
falls back to the full computation with a log line saying why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from exporter.app import build_sources
from exporter.catalog import FULL_COMPUTATIONS_METRIC
from exporter.config import Config
from exporter.db.schema import create_schema
from exporter.db.seed import seed_database
from exporter.sources import streams as st
from exporter.sources.checkpoint import (
    VERSION,
    CheckpointError,
    Identity,
    decode,
    encode,
    write_atomically,
)
from exporter.sources.incremental import EngineState, Published
from exporter.sources.postgres import PostgresSource
from tests.support.exporter import config_for
from tests.support.pack import pack_series_of, published_engine_series
from tests.support.sources import reconcile_once
from tests.support.writes import write_sales

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
ID = Identity("7350000000000000001", 1, "tickets", "0123456789abcdef")
SAVED = Published(
    state=EngineState(
        boundary=NOW - timedelta(minutes=2),
        settled={(st.SOLD, "42"): 7, (st.PAID,): 3, (st.REVENUE, "jpy"): 12000},
        pending_orders={17: NOW - timedelta(days=1)},
        open_sessions={"cs_test_1": NOW - timedelta(hours=1)},
        refund_memos={9: st.RefundMemo(NOW - timedelta(days=2), 1, 4900)},
    ),
    offsets={(st.SOLD, "42"): 3},
    exposed=((("boxoffice_tickets_sold_total", ("berlin", "Berlin", "ga")), 10.0),),
)
DAY = timedelta(days=1)


def test_a_checkpoint_decodes_to_what_was_encoded() -> None:
    assert decode(encode(ID, SAVED), ID, NOW, DAY) == SAVED


def _other(**changes: object) -> Identity:
    fields = {"system": ID.system, "timeline": ID.timeline, "database": ID.database}
    fields["fingerprint"] = ID.fingerprint
    return Identity(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "identity", "now", "reason"),
    [
        ("{not json", ID, NOW, "corrupt: not JSON"),
        (encode(ID, SAVED)[:-40], ID, NOW, "corrupt: not JSON"),
        ('{"version": 99}', ID, NOW, "written by another version (99, this is 1)"),
        (f'{{"version": {VERSION}}}', ID, NOW, "corrupt: KeyError"),
        (encode(ID, SAVED), _other(system="1"), NOW, "foreign: its system differ"),
        (encode(ID, SAVED), _other(timeline=2), NOW, "foreign: its timeline differ"),
        (encode(ID, SAVED), _other(database="x", fingerprint="y"), NOW, "database, fingerprint"),
        (encode(ID, SAVED), ID, NOW + 2 * DAY, "stale: its boundary is 2 days, 0:02:00 old"),
        (encode(ID, SAVED), ID, NOW - DAY, "corrupt: its boundary 2026-05-01T11:58:00+00:00 is"),
    ],
)
def test_a_checkpoint_not_to_trust_says_why(
    text: str, identity: Identity, now: datetime, reason: str
) -> None:
    with pytest.raises(CheckpointError) as raised:
        decode(text, identity, now, DAY)
    assert reason in str(raised.value)


def test_writing_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "state" / "incremental-default.json"
    write_atomically(path, "first")
    write_atomically(path, "second")
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def _source(config: Config) -> PostgresSource:
    [source] = build_sources(config)
    assert isinstance(source, PostgresSource)
    return source


def _full_computations(source: PostgresSource) -> float:
    collection = source.collect()
    assert collection.ok, collection.failures
    for family in collection.families:
        for sample in family.samples:
            if sample.name == FULL_COMPUTATIONS_METRIC:
                return float(sample.value)
    raise AssertionError(f"{FULL_COMPUTATIONS_METRIC} not published")


@pytest.fixture
def seeded(pg_schema: str) -> str:
    seed_database(pg_schema, orders=2_000, seed=11, workers=1)
    return pg_schema


def _config(dsn: str, state: Path, **env: str) -> Config:
    return config_for(
        dsn,
        BOXOFFICE_SOURCES_POSTGRES_INCREMENTAL_OVERLAP="1s",
        BOXOFFICE_SOURCES_POSTGRES_INCREMENTAL_STATE_DIR=str(state),
        **env,
    )


def _writer(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(dsn, autocommit=True)


def test_a_restart_resumes_without_the_full_computation_and_stays_exact(
    seeded: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.sources.checkpoint")
    config = _config(seeded, tmp_path)
    first = _source(config)
    with _writer(seeded) as writer:
        try:
            assert _full_computations(first) == 1
            for k in range(3):
                write_sales(writer, k)
                time.sleep(0.6)  # some rows settle behind the overlap before the restart
                first.collect()
            before = published_engine_series(first)
        finally:
            first.close()  # writes the checkpoint
        assert (tmp_path / "incremental-default.json").exists()
        # Sales go on while no exporter runs.
        for k in range(3, 6):
            write_sales(writer, k)
    time.sleep(1.2)  # and some settle before it is back

    second = _source(config)
    try:
        assert _full_computations(second) == 0
        after = published_engine_series(second)
        assert after == pack_series_of(seeded)
        assert after != before
        for key, value in before.items():
            if key[0].endswith("_total"):
                assert after[key] >= value, key
    finally:
        second.close()
    assert "resumed from checkpoint" in caplog.text


def test_a_correction_found_by_reconciliation_survives_the_restart(
    seeded: str, tmp_path: Path
) -> None:
    config = _config(seeded, tmp_path)
    first = _source(config)
    try:
        first.collect()
        with _writer(seeded) as writer:  # out of band: an order paid a week ago
            writer.execute(
                "INSERT INTO orders (tier_id, quantity, amount_total_cents, currency, "
                "payment_status, created_at, paid_at) SELECT min(t.id), 3, 30000, 'usd', "
                "'completed', now() - interval '7 days', now() - interval '7 days' "
                "FROM ticket_tiers t JOIN events e ON e.id = t.event_id WHERE e.status <> 'closed'"
            )
        assert reconcile_once(first).by_metric["boxoffice_tickets_sold_total"] == 3
        corrected = published_engine_series(first)
    finally:
        first.close()
    second = _source(config)
    try:
        assert _full_computations(second) == 0
        assert published_engine_series(second) == corrected == pack_series_of(seeded)
    finally:
        second.close()


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda path: path.write_text('{"version": 1, "identity": '), "corrupt: not JSON"),
        (lambda path: path.write_bytes(b"\xff\xfe"), "unreadable"),
        (lambda path: path.unlink(), "no checkpoint at"),
    ],
)
def test_a_spoilt_checkpoint_falls_back_to_the_full_computation(
    seeded: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    spoil: Callable[[Path], object],
    reason: str,
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.sources.checkpoint")
    config = _config(seeded, tmp_path)
    first = _source(config)
    first.collect()
    first.close()
    spoil(tmp_path / "incremental-default.json")
    with _writer(seeded) as writer:
        write_sales(writer, 1)
    second = _source(config)
    try:
        assert _full_computations(second) == 1
        assert published_engine_series(second) == pack_series_of(seeded)
    finally:
        second.close()
    assert "full computation" in caplog.text
    assert reason in caplog.text


def test_a_checkpoint_of_another_database_or_too_old_is_not_used(
    seeded: str, new_database: Callable[[], str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="exporter.sources.checkpoint")
    other = new_database()
    with psycopg.connect(other, autocommit=True) as conn:
        create_schema(conn)
    seed_database(other, orders=500, seed=12, workers=1)
    first = _source(_config(seeded, tmp_path))
    first.collect()
    first.close()
    time.sleep(1.5)  # the checkpoint's boundary (1s overlap) is now more than 2s old
    max_age = "BOXOFFICE_SOURCES_POSTGRES_INCREMENTAL_STATE_MAX_AGE"
    stale = _source(_config(seeded, tmp_path, **{max_age: "2s"}))
    try:
        assert _full_computations(stale) == 1
    finally:
        stale.close()  # writes a fresh checkpoint of this database
    assert "stale: its boundary is" in caplog.text
    # The same file, a different database behind the same name "default".
    foreign = _source(_config(other, tmp_path))
    try:
        assert _full_computations(foreign) == 1
        assert published_engine_series(foreign) == pack_series_of(other)
    finally:
        foreign.close()
    assert "foreign: its database differ" in caplog.text
