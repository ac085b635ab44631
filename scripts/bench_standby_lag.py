"""Benchmark the exporter on a hot standby whose replay lags for minutes (issue 17).

    .venv/bin/python scripts/bench_standby_lag.py [--lag 600] [--orders 100000]

Starts a real primary and a pg_basebackup standby (tests/support/standby.py: the server
binaries, free ports of 127.0.0.1, removed afterwards), seeds the primary, and runs
`boxoffice serve` as a real process against the standby with the default settings
(overlap 2 minutes). A writer places and pays about 20 orders per second on the primary
throughout. Replay is paused for --lag seconds, so every row written in that time is far
older than the overlap by the time the standby sees it; the writer stops, replay resumes,
and the script measures how long until the exporter's counters equal a full recomputation
on the primary, with no reconciliation in between (the first one is an hour away). It
prints the lag the exporter published and the rows written during the pause.
Needs root or the postgres user (initdb refuses root; the pair runs as `postgres`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import requests
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_collect import Writer, _free_port

from exporter.catalog import CATALOG_BY_NAME
from exporter.db.schema import create_schema
from exporter.db.seed import seed_database
from exporter.sources.engine_series import ENGINE_METRICS
from tests.support.pack import Series, pack_series_of
from tests.support.standby import ReplicationPair, server_bindir

LAG = "boxoffice_postgres_replication_lag_seconds"


def scrape(url: str) -> tuple[Series, dict[str, float]]:
    """The engine's series as the pack names them, and the other unlabelled/simple samples."""
    engine: Series = {}
    other: dict[str, float] = {}
    for family in text_string_to_metric_families(requests.get(url, timeout=5).text):
        for sample in family.samples:
            if sample.name in ENGINE_METRICS:
                labels = CATALOG_BY_NAME[sample.name].labels
                engine[(sample.name, tuple(sample.labels[k] for k in labels))] = sample.value
            else:
                key = sample.name + "".join(f",{v}" for v in sample.labels.values())
                other[key] = sample.value
    return engine, other


def start_exporter(standby: str) -> tuple[subprocess.Popen[bytes], str]:
    """`boxoffice serve` on the standby with default settings; returns when it is up."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    env = {
        **os.environ,
        "BOXOFFICE_DSN": standby,
        "BOXOFFICE_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "BOXOFFICE_SOURCES_POSTGRES_INTERVAL": "5s",
        "BOXOFFICE_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen([sys.executable, "-m", "exporter", "serve"], env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if scrape(url)[1].get("boxoffice_source_up,postgres") == 1:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    return process, url


def pause_and_resume(
    pair: ReplicationPair, primary: str, standby: str, url: str, lag: float
) -> None:
    """Pause replay for ``lag`` seconds under a writer, resume, and time exactness."""
    writer = Writer(primary, rate=20.0)
    writer.start()
    time.sleep(10)  # the exporter sees a standby that keeps up before the pause
    control = psycopg.connect(standby, autocommit=True)
    control.execute("SELECT pg_wal_replay_pause()")
    paused_at = time.monotonic()
    written_before = writer.written
    print(f"replay paused for {lag:.0f} s; the writer keeps selling", flush=True)
    max_lag = 0.0
    while time.monotonic() - paused_at < lag:
        max_lag = max(max_lag, scrape(url)[1].get(f"{LAG},default", 0.0))
        time.sleep(5)
    writer.stopped.set()
    writer.join(10)
    during = writer.written - written_before
    control.execute("SELECT pg_wal_replay_resume()")
    control.close()
    resumed = time.monotonic()
    pair.wait_replayed(timeout=600)
    caught_up = time.monotonic() - resumed
    expected = pack_series_of(primary)
    exact_after = None
    while time.monotonic() - resumed < 120:
        if scrape(url)[0] == expected:
            exact_after = time.monotonic() - resumed
            break
        time.sleep(0.2)
    after = scrape(url)[1]
    print(f"orders written on the primary while replay was paused: {during}")
    print(f"largest published lag during the pause: {max_lag:.0f} s")
    print(f"replay caught up {caught_up:.1f} s after resuming")
    exact = f"{exact_after:.1f} s after resuming" if exact_after is not None else "NOT in 120 s"
    print(f"exporter equal to a full recomputation on the primary: {exact}")
    print(f"published lag now: {after.get(f'{LAG},default', float('nan')):g} s")
    print(
        f"reconciliations run meanwhile: {after.get('boxoffice_postgres_reconciliations_total', 0):g}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lag", type=float, default=600.0, help="seconds replay is paused")
    parser.add_argument("--orders", type=int, default=100_000)
    args = parser.parse_args()
    bindir = server_bindir()
    if bindir is None:
        sys.exit("needs the PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup)")
    pair = ReplicationPair(bindir)
    pair.start()
    process = None
    try:
        with psycopg.connect(pair.dsn(pair.primary_port), autocommit=True) as admin:
            admin.execute("CREATE DATABASE shop")
        primary, standby = pair.dsn(pair.primary_port, "shop"), pair.dsn(pair.standby_port, "shop")
        with psycopg.connect(primary, autocommit=True) as conn:
            create_schema(conn)
        seed_database(primary, orders=args.orders, seed=1)
        pair.wait_replayed(timeout=600)
        process, url = start_exporter(standby)
        pause_and_resume(pair, primary, standby, url, args.lag)
    finally:
        if process is not None:
            process.terminate()
            process.wait(30)
        pair.stop()


if __name__ == "__main__":
    main()
