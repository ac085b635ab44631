"""Benchmark a collection cycle of the PostgreSQL source against query-exporter, same run.

    .venv/bin/python scripts/bench_collect.py [--orders N ...] [--cycles 20]

Without --orders it measures 1,000,000 and then 10,000,000 orders (about 25 minutes on two
cores, most of it seeding and query-exporter's full scans).

For each size it seeds a dedicated PostgreSQL cluster (system binaries, pg_stat_statements
preloaded, removed afterwards), starts a writer that places and pays about 50 orders per
second, then measures under that load:
- `boxoffice serve` as a real process: cycle time p50/p95 over --cycles cycles (its own
  boxoffice_source_duration_seconds), database time per cycle (pg_stat_statements, by role,
  counted after the full computation at start), /metrics latency p50/p99 with 10
  concurrent scrapers, RSS; and, apart, how long that full computation at start takes;
- query-exporter (installed into .bench/qe-venv) with the same metrics, written as the
  full-aggregate SQL a user would write: its cycle time and database time per cycle.
It prints one table with the ratios. Needs root (the cluster runs as the `postgres` user)
and the Debian PostgreSQL server binaries.
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from exporter.db.seed import seed_database
from exporter.sources.incremental import EngineSettings, EngineState, database_now, run_cycle
from exporter.sources.querypack import DEFAULT_PACK

ROOT = Path(__file__).resolve().parent.parent
QE_VENV = ROOT / ".bench" / "qe-venv"
ROLES = ("bench_boxoffice", "bench_qe", "bench_writer")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    """A throwaway PostgreSQL with pg_stat_statements, run as the postgres user."""

    def __init__(self) -> None:
        bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bindirs:
            sys.exit("needs the Debian PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
        self.bin = Path(bindirs[-1])
        self.dir = Path(tempfile.mkdtemp(prefix="boxoffice-bench-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.port = _free_port()

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *args], check=True, stdout=subprocess.DEVNULL
        )

    def start(self) -> str:
        data = self.dir / "data"
        self._as_postgres(
            str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"
        )
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} "
            "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=top "
            "-c shared_buffers=1GB -c max_wal_size=4GB -c synchronous_commit=off"
        )
        self._as_postgres(
            str(self.bin / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-l",
            str(self.dir / "log"),
            "start",
        )
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
            for role in ROLES:
                conn.execute(f"CREATE ROLE {role} LOGIN SUPERUSER")
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
        return self.dsn("postgres")

    def dsn(self, role: str) -> str:
        return f"postgresql://{role}@127.0.0.1:{self.port}/bench"

    def stop(self) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.dir / "data"),
                "-m",
                "fast",
                "stop",
            ],
            check=False,
            stdout=subprocess.DEVNULL,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


class Writer(threading.Thread):
    """Places and pays about ``rate`` orders per second until stopped."""

    def __init__(self, dsn: str, rate: float = 50.0) -> None:
        super().__init__(daemon=True)
        self.dsn, self.rate, self.written = dsn, rate, 0
        self.stopped = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            tiers = [
                r[0]
                for r in conn.execute(
                    "SELECT t.id FROM ticket_tiers t JOIN events e ON e.id = t.event_id WHERE e.status = 'on_sale'"
                )
            ]
            started = time.monotonic()
            while not self.stopped.is_set():
                tier = tiers[self.written % len(tiers)]
                session = f"cs_bench_{self.written}_{time.time_ns()}"
                with conn.transaction():
                    conn.execute(
                        "INSERT INTO checkout_sessions (id, tier_id, quantity) VALUES (%s, %s, 1)",
                        [session, tier],
                    )
                    row = conn.execute(
                        "INSERT INTO orders (checkout_session_id, tier_id, quantity, amount_total_cents) VALUES (%s, %s, 1, 9900) RETURNING id",
                        [session, tier],
                    ).fetchone()
                with conn.transaction():
                    conn.execute(
                        "UPDATE orders SET payment_status = 'completed', paid_at = now() WHERE id = %s",
                        [row[0] if row else 0],
                    )
                    conn.execute(
                        "UPDATE checkout_sessions SET status = 'complete', completed_at = now() WHERE id = %s",
                        [session],
                    )
                self.written += 1
                delay = started + self.written / self.rate - time.monotonic()
                if delay > 0:
                    self.stopped.wait(delay)


def _db_time_ms(admin: str, role: str) -> tuple[float, int]:
    """Total execution time and calls of a role's statements since the last reset."""
    with psycopg.connect(admin) as conn:
        row = conn.execute(
            "SELECT COALESCE(sum(total_exec_time), 0), COALESCE(max(calls), 0) FROM pg_stat_statements s "
            "JOIN pg_roles r ON r.oid = s.userid WHERE r.rolname = %s AND s.query ILIKE '%%select%%'",
            [role],
        ).fetchone()
    return (float(row[0]), int(row[1])) if row else (0.0, 0)


def _reset(admin: str) -> None:
    with psycopg.connect(admin) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def _samples(text: str) -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name + "".join(f",{k}={v}" for k, v in sorted(sample.labels.items()))
            out[key] = sample.value
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(kw_only=True)
class Result:
    cycle_p50: float = 0.0
    cycle_p95: float = 0.0
    db_ms_per_cycle: float = 0.0
    cycles: int = 0
    scrape_p50: float = 0.0
    scrape_p99: float = 0.0
    rss_mb: float = 0.0
    first_cycle: float = 0.0


def full_computation(dsn: str) -> float:
    """Seconds of the full computation a start (or restart) of the exporter runs once."""
    with psycopg.connect(dsn) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        started = time.perf_counter()
        with conn.transaction():
            run_cycle(conn, EngineState(), EngineSettings(), now=database_now(conn))
        return time.perf_counter() - started


def bench_boxoffice(cluster: Cluster, cycles: int, interval: float) -> Result:
    port = _free_port()
    env = {
        **os.environ,
        "BOXOFFICE_DSN": cluster.dsn("bench_boxoffice"),
        "BOXOFFICE_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "BOXOFFICE_SOURCES_POSTGRES_INTERVAL": f"{interval:g}s",
        "BOXOFFICE_SOURCES_POSTGRES_TIMEOUT": f"{interval:g}s",
        "BOXOFFICE_LOG_LEVEL": "warning",
    }
    url = f"http://127.0.0.1:{port}/metrics"
    process = subprocess.Popen([sys.executable, "-m", "exporter", "serve"], env=env)
    result = Result()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(url, timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        # The first cycle is the full computation at start (timed apart, in full_computation):
        # start counting database time only after it.
        deadline = time.monotonic() + 1800
        seen = None
        while seen is None and time.monotonic() < deadline:
            samples = _samples(requests.get(url, timeout=5).text)
            seen = samples.get("boxoffice_source_last_success_timestamp_seconds,source=postgres")
            if seen is None:
                time.sleep(0.2)
        _reset(cluster.dsn("postgres"))
        durations: list[float] = []
        deadline = time.monotonic() + cycles * (interval + 120)
        while len(durations) < cycles and time.monotonic() < deadline:
            samples = _samples(requests.get(url, timeout=5).text)
            stamp = samples.get("boxoffice_source_last_success_timestamp_seconds,source=postgres")
            if stamp is not None and stamp != seen:
                if seen is not None:
                    durations.append(samples["boxoffice_source_duration_seconds,source=postgres"])
                seen = stamp
            time.sleep(0.05)
        total_ms, _calls = _db_time_ms(cluster.dsn("postgres"), "bench_boxoffice")
        result.cycles = len(durations)
        result.cycle_p50, result.cycle_p95 = _pct(durations, 0.5), _pct(durations, 0.95)
        # Cycles that started after the reset: the ones measured, plus at most one running.
        result.db_ms_per_cycle = total_ms / max(1, len(durations))
        result.scrape_p50, result.scrape_p99 = _scrape_latency(url)
        status = Path(f"/proc/{process.pid}/status").read_text()
        result.rss_mb = (
            int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
            / 1024
        )
    finally:
        process.terminate()
        process.wait(30)
    return result


def _scrape_latency(url: str) -> tuple[float, float]:
    """p50 and p99 of /metrics with 10 concurrent scrapers for 10 s.

    wrk (Debian package) when installed: Python client threads on the same two cores would
    measure themselves as much as the exporter.
    """
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run(
            [wrk, "-t2", "-c10", "-d10s", "--latency", url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        found = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in ("50%", "99%"):
                match = re.fullmatch(r"([\d.]+)(us|ms|s)", parts[1])
                if match:
                    scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0}[match.group(2)]
                    found[parts[0]] = float(match.group(1)) * scale
        return found["50%"], found["99%"]
    latencies: list[float] = []
    lock = threading.Lock()

    def scraper() -> None:
        with requests.Session() as session:
            stop = time.monotonic() + 10
            while time.monotonic() < stop:
                started = time.perf_counter()
                session.get(url, timeout=5).raise_for_status()
                with lock:
                    latencies.append(time.perf_counter() - started)

    with ThreadPoolExecutor(10) as pool:
        for future in [pool.submit(scraper) for _ in range(10)]:
            future.result()
    return _pct(latencies, 0.5), _pct(latencies, 0.99)


def _query_exporter() -> Path:
    binary = QE_VENV / "bin" / "query-exporter"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(QE_VENV)], check=True)
        subprocess.run(
            [
                str(QE_VENV / "bin" / "pip"),
                "install",
                "-q",
                "query-exporter>=4",
                "psycopg[binary]",
                "psycopg2-binary",
            ],
            check=True,
        )
    return binary


def bench_query_exporter(cluster: Cluster, cycles: int, interval: float, workdir: Path) -> Result:
    """The same metric set as the straightforward full-aggregate SQL, through query-exporter."""
    binary = _query_exporter()
    config = {
        "databases": {"tickets": {"dsn": cluster.dsn("bench_qe")}},
        "metrics": {
            spec.name.removesuffix("_total"): {
                "type": "gauge",
                "description": spec.help,
                **({"labels": list(spec.labels)} if spec.labels else {}),
            }
            for spec in DEFAULT_PACK
        },
        "queries": {
            spec.name: {
                "databases": ["tickets"],
                "metrics": [spec.name.removesuffix("_total")],
                "interval": f"{int(interval)}s",
                "sql": f"SELECT {''.join(f'{label}, ' for label in spec.labels)}value AS {spec.name.removesuffix('_total')} FROM ({spec.sql}\n) AS q",
            }
            for spec in DEFAULT_PACK
        },
    }
    path = workdir / "query-exporter.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    port = _free_port()
    _reset(cluster.dsn("postgres"))
    process = subprocess.Popen(
        [str(binary), "--config", str(path), "-H", "127.0.0.1", "-p", str(port), "-L", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    result = Result()
    try:
        # Both counts start with the process: its own latency counters and the statistics.
        time.sleep(interval * cycles + 5)
        total_ms, _calls = _db_time_ms(cluster.dsn("postgres"), "bench_qe")
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
        samples = _samples(text)
        # One cycle runs every query once: the sum over queries of their mean latency.
        sums = {
            k.split(",", 1)[1]: v for k, v in samples.items() if k.startswith("query_latency_sum,")
        }
        counts = {
            k.split(",", 1)[1]: v
            for k, v in samples.items()
            if k.startswith("query_latency_count,")
        }
        cycle = sum(total / counts[key] for key, total in sums.items() if counts.get(key))
        result.cycle_p50 = result.cycle_p95 = cycle
        result.cycles = round(statistics.mean(counts.values())) if counts else 0
        result.db_ms_per_cycle = total_ms / max(1, result.cycles)
    finally:
        process.terminate()
        process.wait(30)
    return result


def start_seeded(cluster: Cluster, orders: int) -> float:
    """Start ``cluster`` and seed ``orders`` orders (seed 1); the seconds the seeding took."""
    cluster.start()
    with psycopg.connect(cluster.dsn("postgres")) as conn:
        version = conn.execute("SHOW server_version").fetchone()
    print(
        f"PostgreSQL {version[0] if version else '?'}; seeding {orders:,} orders ...",
        flush=True,
    )
    seeding = time.perf_counter()
    seed_database(cluster.dsn("postgres"), orders=orders, seed=1)
    return time.perf_counter() - seeding


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, action="append")
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument(
        "--interval", type=float, default=2.0, help="boxoffice collection interval (s)"
    )
    parser.add_argument(
        "--qe-interval", type=float, default=30.0, help="query-exporter query interval (s)"
    )
    parser.add_argument("--qe-cycles", type=int, default=3)
    args = parser.parse_args()
    sizes = args.orders or [1_000_000, 10_000_000]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    rows = []
    for orders in sizes:
        cluster = Cluster()
        try:
            start_seeded(cluster, orders)
            writer = Writer(cluster.dsn("bench_writer"))
            writer.start()
            started = time.monotonic()
            try:
                ours = bench_boxoffice(cluster, args.cycles, args.interval)
                ours.first_cycle = full_computation(cluster.dsn("bench_writer"))
                peer = bench_query_exporter(cluster, args.qe_cycles, args.qe_interval, cluster.dir)
            finally:
                writer.stopped.set()
                writer.join(10)
            rows.append((orders, ours, peer, writer.written, time.monotonic() - started))
        finally:
            cluster.stop()
    print()
    print(
        "| orders | boxoffice cycle p50 / p95 | query-exporter cycle | DB ms/cycle boxoffice "
        "| DB ms/cycle query-exporter | DB time ratio | /metrics p50 / p99 (10 scrapers) "
        "| exporter RSS | full computation at start | writer orders/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for orders, ours, peer, written, seconds in rows:
        print(
            f"| {orders:,} | {ours.cycle_p50 * 1000:.1f} / {ours.cycle_p95 * 1000:.1f} ms "
            f"({ours.cycles} cycles) | {peer.cycle_p50 * 1000:.0f} ms (mean of {peer.cycles}) "
            f"| {ours.db_ms_per_cycle:.1f} | {peer.db_ms_per_cycle:.0f} "
            f"| {_ratio(peer, ours):.0f}x | {ours.scrape_p50 * 1000:.1f} / "
            f"{ours.scrape_p99 * 1000:.1f} ms | {ours.rss_mb:.0f} MB | {ours.first_cycle:.1f} s "
            f"| {written / seconds:.0f} |"
        )
    orders, ours, peer, _written, _seconds = rows[-1]
    print()
    print(f"targets at {orders:,} orders:")
    for label, value, target, met in (
        ("cycle p50", f"{ours.cycle_p50 * 1000:.1f} ms", "<= 50 ms", ours.cycle_p50 <= 0.05),
        (
            "DB time vs query-exporter",
            f"{_ratio(peer, ours):.0f}x",
            ">= 50x",
            _ratio(peer, ours) >= 50,
        ),
        ("/metrics p99", f"{ours.scrape_p99 * 1000:.1f} ms", "<= 10 ms", ours.scrape_p99 <= 0.01),
        ("exporter RSS", f"{ours.rss_mb:.0f} MB", "<= 80 MB", ours.rss_mb <= 80),
    ):
        print(f"  {label}: {value} (target {target}): {'met' if met else 'MISSED'}")


def _ratio(peer: Result, ours: Result) -> float:
    return peer.db_ms_per_cycle / ours.db_ms_per_cycle if ours.db_ms_per_cycle else float("nan")


if __name__ == "__main__":
    main()
