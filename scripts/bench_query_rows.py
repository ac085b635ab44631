#!/usr/bin/env python3
"""RSS of the PostgreSQL source while a configured query returns 2,000,000 rows.

Runs the real source against a real PostgreSQL (BOXOFFICE_BENCH_DSN, default the local
server) in a child process per setting, a few collections each, and prints the child's
resident set after every collection and its peak. Numbers go to docs/benchmarks.md.

    .venv/bin/python scripts/bench_query_rows.py [--rows 2000000] [--cycles 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child(dsn: str, rows: int, cycles: int, max_rows: int) -> None:
    """One setting: collect ``cycles`` times, print RSS per cycle as JSON."""
    from exporter.app import build_sources
    from exporter.config import load_config

    sql = (
        "SELECT 'provider-' || g AS provider, g::int8 AS value "
        f"FROM generate_series(1, {rows}) AS g"
    )
    config = load_config(
        None,
        env={
            "BOXOFFICE_DSN": dsn,
            "BOXOFFICE_METRICS_BOXOFFICE_WEBHOOK_EVENTS_TOTAL_SQL": sql,
            "BOXOFFICE_SOURCES_POSTGRES_TIMEOUT": "120s",
            "BOXOFFICE_SOURCES_POSTGRES_INTERVAL": "120s",
            "BOXOFFICE_SOURCES_POSTGRES_MAX_ROWS_PER_QUERY": str(max_rows),
            "BOXOFFICE_SOURCES_POSTGRES_INCREMENTAL_ENABLED": "false",
        },
    )
    only = [m for m in config.metrics if m.overridden]
    config = dataclasses.replace(config, metrics=tuple(only))
    (source,) = build_sources(config)
    start = _rss_mib()
    per_cycle = []
    try:
        for _ in range(cycles):
            result = source.collect()
            assert not result.failures, result.failures
            per_cycle.append(round(_rss_mib(), 1))
    finally:
        source.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"start": round(start, 1), "cycles": per_cycle, "peak": round(peak, 1)}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    dsn = os.environ.get("BOXOFFICE_BENCH_DSN", DEFAULT_DSN)
    if args.child is not None:
        child(dsn, args.rows, args.cycles, args.child)
        return 0
    for label, max_rows in (("bounded (default 10000)", 10000), ("unbounded", args.rows + 1)):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--rows",
                str(args.rows),
                "--cycles",
                str(args.cycles),
                "--child",
                str(max_rows),
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=1800,
        ).stdout
        data = json.loads(out.strip().splitlines()[-1])
        print(
            f"{label:>24}: start {data['start']} MiB, after each cycle {data['cycles']} MiB, "
            f"peak {data['peak']} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
