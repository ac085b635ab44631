"""Benchmark a restart of `boxoffice serve` with and without the incremental checkpoint.

    .venv/bin/python scripts/bench_restart.py [--orders N ...] [--runs 3]

Without --orders it measures 1,000,000 and then 10,000,000 orders. For each size it seeds
a dedicated PostgreSQL cluster (the one of scripts/bench_collect.py: system binaries,
pg_stat_statements, removed afterwards) and starts a writer placing and paying about 50
orders per second. Then, --runs times each:
- without a checkpoint: `boxoffice serve` as a real process, timed from the process start
  to the first /metrics whose PostgreSQL source is up (the first complete metric set), and
  the database time of its statements until then (pg_stat_statements, by role);
- with a checkpoint: the same exporter with `state_dir` set is started, left to collect,
  stopped (SIGTERM writes the checkpoint), the writer keeps selling for a few seconds, and
  it is started again: timed the same way, plus its full computations (0 means resumed).
Also the Python start-up alone (`boxoffice --version`), which every restart pays, the CPU
time the exporter process had used by its first complete metric set (barely changed by
other processes sharing the cores, unlike the wall time), and the load average.
The package is compiled to bytecode first, as `pip install` leaves it.
Needs root (the cluster runs as the `postgres` user) and the Debian PostgreSQL binaries.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_collect import (
    Cluster,
    Writer,
    _db_time_ms,
    _free_port,
    _reset,
    _samples,
    start_seeded,
)

UP = "boxoffice_source_up,source=postgres"
FULL = "boxoffice_postgres_full_computations_total"


@dataclass
class Start:
    seconds: float  # process start to the first complete metric set
    serving: float  # process start to the first /metrics answer (start-up of the process)
    cycle: float  # the first collection's own duration (boxoffice_source_duration_seconds)
    db_ms: float  # database time of the exporter's statements until then
    full: float  # full computations the process ran
    cpu: float  # CPU seconds (user + system) the process had used by then

    def __str__(self) -> str:
        return (
            f"first complete metric set {self.seconds:.2f} s (serving after {self.serving:.2f} s, "
            f"first cycle {self.cycle * 1000:.0f} ms), DB {self.db_ms:,.0f} ms, "
            f"full computations {self.full:g}, CPU {self.cpu:.2f} s"
        )


def _env(cluster: Cluster, port: int, state_dir: str | None) -> dict[str, str]:
    env = {
        **os.environ,
        "BOXOFFICE_DSN": cluster.dsn("bench_boxoffice"),
        "BOXOFFICE_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "BOXOFFICE_SOURCES_POSTGRES_INTERVAL": "2s",
        "BOXOFFICE_LOG_LEVEL": "info",
    }
    if state_dir is not None:
        env["BOXOFFICE_SOURCES_POSTGRES_INCREMENTAL_STATE_DIR"] = state_dir
    return env


def start_once(cluster: Cluster, state_dir: str | None, *, keep: float = 0.0) -> Start:
    """Start the exporter, wait for its first complete metric set, keep it ``keep`` s, stop."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    _reset(cluster.dsn("postgres"))
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "exporter", "serve"],
        env=_env(cluster, port, state_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 1800
        samples: dict[str, float] = {}
        serving = float("nan")
        while time.monotonic() < deadline:
            try:
                samples = _samples(requests.get(url, timeout=5).text)
            except requests.ConnectionError:
                samples = {}
            else:
                if math.isnan(serving):
                    serving = time.perf_counter() - started
            if samples.get(UP) == 1:
                break
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        cpu = _cpu_seconds(process.pid)
        db_ms, _calls = _db_time_ms(cluster.dsn("postgres"), "bench_boxoffice")
        time.sleep(keep)
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=60)
    for line in err.splitlines():
        if "checkpoint" in line or "full computation" in line:
            print("   ", line[:200], flush=True)
    cycle = samples.get("boxoffice_source_duration_seconds,source=postgres", float("nan"))
    return Start(seconds, serving, cycle, db_ms, samples.get(FULL, float("nan")), cpu)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process: unlike the wall time, barely changed by
    other processes sharing the cores."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load() -> str:
    """The machine's load averages (1, 5, 15 min): how shared the cores were."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f}, {five:.1f}, {fifteen:.1f}"


def python_start() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "exporter", "--version"], check=True, capture_output=True)
    return time.perf_counter() - started


def _summary(starts: list[Start]) -> str:
    def median(values: list[float]) -> float:
        return statistics.median(values)

    seconds = median([s.seconds for s in starts])
    serving = median([s.serving for s in starts])
    cycle = median([s.cycle for s in starts]) * 1000
    db_ms = median([s.db_ms for s in starts])
    cpu = median([s.cpu for s in starts])
    full = ",".join(f"{s.full:g}" for s in starts)
    return (
        f"{seconds:.2f} s ({serving:.2f} s + {cycle:,.0f} ms) | CPU {cpu:.2f} s | {db_ms:,.0f} ms"
        f" | {full}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, action="append")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sizes = args.orders or [1_000_000, 10_000_000]
    # An installed exporter starts from bytecode (pip compiles it, in the Docker image too,
    # even under PYTHONDONTWRITEBYTECODE); an editable checkout with that variable set would
    # compile every module of ours from source on each start instead.
    package = Path(__file__).resolve().parent.parent / "exporter"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    rows = []
    for orders in sizes:
        cluster = Cluster()
        try:
            seeding = start_seeded(cluster, orders)
            vacuum = time.perf_counter()
            with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
            print(f"seeded in {seeding + time.perf_counter() - vacuum:.0f} s; {load()}", flush=True)
            writer = Writer(cluster.dsn("bench_writer"))
            writer.start()
            try:
                cold = []
                for run in range(args.runs):
                    cold.append(start_once(cluster, None))
                    print(f"  without checkpoint, run {run + 1}: {cold[-1]}; {load()}", flush=True)
                warm = []
                with tempfile.TemporaryDirectory(prefix="boxoffice-state-") as state:
                    start_once(cluster, state, keep=3.0)  # writes the first checkpoint
                    for run in range(args.runs):
                        time.sleep(3.0)  # the shop sells while the exporter is down
                        warm.append(start_once(cluster, state, keep=3.0))
                        print(f"  with checkpoint, run {run + 1}: {warm[-1]}; {load()}", flush=True)
                    size = sum(p.stat().st_size for p in Path(state).iterdir())
            finally:
                writer.stopped.set()
                writer.join(10)
            rows.append((orders, cold, warm, size))
        finally:
            cluster.stop()
    print(f"Python start-up alone (boxoffice --version): {python_start():.2f} s; {load()}")
    print(
        "| orders | without checkpoint: first complete metric set (serving + first cycle) | "
        "exporter CPU | DB time | full computations | with checkpoint: first complete metric set "
        "(serving + first cycle) | exporter CPU | DB time | full computations | checkpoint file |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for orders, cold, warm, size in rows:
        print(f"| {orders:,} | {_summary(cold)} | {_summary(warm)} | {size / 1024:.0f} KiB |")


if __name__ == "__main__":
    main()
