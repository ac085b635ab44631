"""Benchmark one exporter over many databases, and the rules' cost as shops grow.

    .venv/bin/python scripts/bench_shards.py [--databases 1 10 50] [--shops 1 10 50]

Part 1, one exporter, many databases: a throwaway PostgreSQL cluster (bench_collect's,
pg_stat_statements preloaded) gets one database seeded with `boxoffice db`'s seeding helper
(--orders, small by default), copied as a template into each shard database. For each count
of databases, `boxoffice serve` runs as a real process over all of them (`shard-*`, each with
its `shard` label), a writer places and pays about 50 orders per second in the first shards,
and over --cycles cycles it measures: cycle time p50/p95 (boxoffice_source_duration_seconds),
database time per cycle (pg_stat_statements of the exporter's role), the exporter's CPU
time per cycle (/proc, scrapes every 0.5 s included), connections held
(pg_stat_activity sampled every 0.1 s: most per database and in total), RSS, and whether
every database reported boxoffice_database_up 1.

Part 2, rules as shops grow: the rule files are generated into a temporary root with scope
labels [seller] (the repository's thresholds.yaml otherwise), as a platform team hosting many
shops would; a static exposition server publishes, for each shop (label `seller`), every
catalog metric with 50 events x 3 tiers; a real Prometheus scrapes it and evaluates those rule
files every --rule-interval seconds (15, as prometheus/prometheus.yml: a shorter interval
crowds the groups' evaluations and the exposition server's work onto the same moments of
the two cores, and their wall times with them). After --settle seconds it reads prometheus_rule_group_last_duration_seconds per group
--samples times, --every seconds apart (after several evaluations), and keeps each group's
median, their sum, the head series count, Prometheus' own CPU time per second between the
first and last reading (process_cpu_seconds_total: scraping and storage too, so compare it
with a run of --rule-files on an empty directory), and each rule's last evaluation time from
/api/v1/rules (median too): the --top costliest rules are printed for the largest shop
count. Groups run concurrently on the machine's cores, so on a busy machine a group's wall
time also counts its wait for a core: the sum is not the work, the CPU time is closer.

Needs root (the cluster runs as the `postgres` user), the Debian PostgreSQL server binaries
and Debian's prometheus.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import http.server
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import requests
import yaml
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_collect import Cluster, Writer, _db_time_ms, _free_port, _pct, _reset, _samples

from exporter.catalog import CATALOG, REASONS
from exporter.cli import main as cli_main
from tests.support.prometheus import running_prometheus

ROOT = Path(__file__).resolve().parent.parent


@dataclass(kw_only=True)
class ShardResult:
    databases: int
    cycles: int = 0
    cycle_p50: float = 0.0
    cycle_p95: float = 0.0
    db_ms_per_cycle: float = 0.0
    max_conn_per_db: int = 0
    max_conn_total: int = 0
    rss_mb: float = 0.0
    databases_up: int = 0
    written: int = 0
    cpu_ms_per_cycle: float = 0.0  # the exporter's CPU time (user + system) per cycle


_STAMP_LINE = re.compile(
    rb'^boxoffice_source_last_success_timestamp_seconds\{source="postgres"\} (\S+)$', re.M
)
_DURATION_LINE = re.compile(
    rb'^boxoffice_source_duration_seconds\{source="postgres"\} (\S+)$', re.M
)


def _source_line(pattern: re.Pattern[bytes], body: bytes) -> float | None:
    found = pattern.search(body)
    return float(found.group(1)) if found else None


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("VmRSS"))) / 1024


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ConnectionSampler(threading.Thread):
    """Samples the exporter's connections (application_name boxoffice) every 0.1 s."""

    def __init__(self, admin: str) -> None:
        super().__init__(daemon=True)
        self.admin = admin
        self.per_db = 0
        self.total = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.admin, autocommit=True) as conn:
            while not self.stopped.wait(0.1):
                rows = conn.execute(
                    "SELECT datname, count(*) FROM pg_stat_activity "
                    "WHERE application_name = 'boxoffice' GROUP BY datname"
                ).fetchall()
                if rows:
                    self.per_db = max(self.per_db, *(int(r[1]) for r in rows))
                    self.total = max(self.total, sum(int(r[1]) for r in rows))


def _shard(i: int) -> str:
    return f"shard_{i:03d}"


def make_shards(cluster: Cluster, count: int) -> None:
    """Copy the seeded `bench` database into shard databases up to ``count``."""
    admin = f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        have = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        for i in range(count):
            if _shard(i) not in have:
                conn.execute(f"CREATE DATABASE {_shard(i)} TEMPLATE bench")


def _write_config(cluster: Cluster, count: int, interval: float, workdir: Path) -> tuple[Path, int]:
    """The exporter's configuration over ``count`` shards, and the port it listens on."""
    base = f"postgresql://bench_boxoffice@127.0.0.1:{cluster.port}"
    port = _free_port()
    config = {
        "databases": {
            f"shard-{i:03d}": {"dsn": f"{base}/{_shard(i)}", "labels": {"shard": f"s{i:03d}"}}
            for i in range(count)
        },
        "sources": {
            "postgres": {
                "databases": ["shard-*"],
                "interval": f"{interval:g}s",
                "timeout": f"{interval:g}s",
            }
        },
        "web": {"listen_address": f"127.0.0.1:{port}"},
        "log": {"level": "warning"},
    }
    path = workdir / f"shards-{count}.yml"
    path.write_text(yaml.safe_dump(config))
    return path, port


def bench_databases(
    cluster: Cluster, count: int, cycles: int, interval: float, workdir: Path
) -> ShardResult:
    path, port = _write_config(cluster, count, interval, workdir)
    writers = [
        Writer(
            f"postgresql://bench_writer@127.0.0.1:{cluster.port}/{_shard(i)}",
            rate=50 / min(2, count),
        )
        for i in range(min(2, count))
    ]
    for writer in writers:
        writer.start()
    admin = cluster.dsn("postgres")
    sampler = ConnectionSampler(admin)
    url = f"http://127.0.0.1:{port}/metrics"
    process = subprocess.Popen([sys.executable, "-m", "exporter", "serve", "--config", str(path)])
    result = ShardResult(databases=count)
    try:
        deadline = time.monotonic() + 600
        seen = None
        while seen is None and time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                seen = _source_line(_STAMP_LINE, requests.get(url, timeout=30).content)
            if seen is None:
                time.sleep(0.2)
        sampler.start()
        _reset(admin)
        cpu_before = _cpu_seconds(process.pid)
        durations: list[float] = []
        body = b""
        deadline = time.monotonic() + cycles * (interval + 60)
        while len(durations) < cycles and time.monotonic() < deadline:
            try:
                body = requests.get(url, timeout=30).content
            except requests.RequestException:
                continue  # busy with a cycle; the deadline bounds the loop
            # Two lines found, not the whole exposition parsed: parsing 50 shards' ~50,000
            # series took this process ~4 s on the same two cores, so it saw every other
            # cycle and the CPU and database time per cycle counted two cycles as one.
            stamp, duration = _source_line(_STAMP_LINE, body), _source_line(_DURATION_LINE, body)
            if stamp is not None and duration is not None and stamp != seen:
                durations.append(duration)
                seen = stamp
            time.sleep(0.5)  # a scrape of 50 shards costs the exporter CPU too
        total_ms, _calls = _db_time_ms(admin, "bench_boxoffice")
        cpu = _cpu_seconds(process.pid) - cpu_before
        result.cpu_ms_per_cycle = 1000 * cpu / max(1, len(durations))
        result.cycles = len(durations)
        result.cycle_p50, result.cycle_p95 = _pct(durations, 0.5), _pct(durations, 0.95)
        result.db_ms_per_cycle = total_ms / max(1, len(durations))
        result.databases_up = sum(
            1
            for key, value in _samples(body.decode()).items()
            if key.startswith("boxoffice_database_up,") and value == 1
        )
        result.rss_mb = _rss_mb(process.pid)
    finally:
        sampler.stopped.set()
        for writer in writers:
            writer.stopped.set()
        process.terminate()
        process.wait(30)
        for writer in writers:
            writer.join(10)
        sampler.join(5)
    result.max_conn_per_db, result.max_conn_total = sampler.per_db, sampler.total
    result.written = sum(w.written for w in writers)
    return result


# Part 2 --------------------------------------------------------------------------------

_CITIES = ("Miami", "Austin", "Denver", "Boston", "Seattle")
_TIERS = ("ga", "vip", "early")
_VALUES: dict[str, tuple[str, ...]] = {
    "currency": ("usd",),
    "provider": ("stripe", "twilio"),
    "member": ("true", "false"),
    "payment_method": ("card", "wallet"),
    "reason": REASONS,
    "source": ("postgres", "stripe", "twilio", "http"),
    "database": ("default",),
    "version": ("1.0",),
    "metric": ("boxoffice_tickets_sold_total",),
    "component": ("database",),
    "target": ("shop",),
}


def _label_sets(labels: tuple[str, ...]) -> list[dict[str, str]]:
    """The series of one metric for one shop: 50 events x 3 tiers where it is per tier."""
    sets: list[dict[str, str]] = [{}]
    if "event" in labels:
        sets = [
            {"event": f"event-{e:02d}", "city": _CITIES[e % len(_CITIES)], "tier": tier}
            for e in range(50)
            for tier in _TIERS
        ]
    elif "city" in labels or "tier" in labels:
        sets = [{"city": c, "tier": t} for c in _CITIES for t in _TIERS]
    for label in labels:
        if label in ("event", "city", "tier"):
            continue
        values = _VALUES.get(label, ("x",))
        sets = [{**s, label: v} for s in sets for v in values]
    return sets


# Shapes of a shop's day, not of a flash sale everywhere at once: tiers of 1,000 seats with
# 400 left, a few tickets an hour, and one tier in 50 selling fast or sold out, so that the
# inventory alerts fire for a few tiers (their cost grows with the alerts firing, each one
# templated and written to ALERTS every evaluation) instead of for every tier of every shop.
_CAPACITY = 1000.0
_AVAILABLE = 400.0


def _kind(name: str) -> str:
    if name.endswith("_up"):
        return "up"
    if name.endswith("_timestamp_seconds"):
        return "time"
    if name in ("boxoffice_inventory_capacity_tickets", "boxoffice_inventory_available_tickets"):
        return name.removeprefix("boxoffice_inventory_").removesuffix("_tickets")
    return "gauge"


@functools.cache
def _lines(shops: int) -> tuple[tuple[str, str, int], ...]:
    """Every line of the exposition as (kind, text before the value, index in its metric):
    built once per shop count, so a scrape of 50 shops costs the benchmark little CPU."""
    lines: list[tuple[str, str, int]] = []
    for metric in CATALOG:
        kind = "gauge" if metric.type == "info" else metric.type
        lines.append(
            ("#", f"# TYPE {metric.name} {'counter' if kind == 'counter' else 'gauge'}", 0)
        )
        kind = "counter" if metric.type == "counter" else _kind(metric.name)
        sets = _label_sets(metric.labels)
        for shop in range(shops):
            for i, labels in enumerate(sets):
                text = ",".join(
                    f'{k}="{v}"' for k, v in {"seller": f"shop-{shop:02d}", **labels}.items()
                )
                lines.append((kind, f"{metric.name}{{{text}}} ", i))
    return tuple(lines)


def exposition(shops: int, started: float) -> bytes:
    """Every catalog metric for every shop; counters grow with time, gauges stay."""
    now = time.time()
    elapsed = now - started
    out: list[str] = []
    for kind, text, i in _lines(shops):
        if kind == "#":
            out.append(text)
            continue
        if kind == "counter":
            # About 7 to 50 a day; one series in 50 about one a second (a busy tier).
            per_second = 1.0 if i % 50 == 7 else 0.0001 * (i % 7 + 1)
            value = 1000 + per_second * elapsed
        elif kind == "up":
            value = 1.0
        elif kind == "time":
            value = now
        elif kind == "capacity":
            value = _CAPACITY
        elif kind == "available":
            value = 0.0 if i % 50 == 3 else _AVAILABLE
        else:
            value = 10.0 + i % 50
        out.append(f"{text}{value:.6f}")
    return ("\n".join(out) + "\n").encode()


@dataclass(kw_only=True)
class RuleResult:
    shops: int
    series: int = 0
    groups: dict[str, float] = field(default_factory=dict)
    rules: dict[tuple[str, int, str], float] = field(default_factory=dict)  # group, index, name
    cpu: float = 0.0  # Prometheus' CPU seconds per second while the readings were taken


def _rule_times(url: str) -> dict[tuple[str, int, str], float]:
    """Each rule's last evaluation time (group, position in it, name), from /api/v1/rules."""
    groups = requests.get(f"{url}/api/v1/rules", timeout=30).json()["data"]["groups"]
    return {
        (group["name"], i, rule["name"]): float(rule["evaluationTime"])
        for group in groups
        for i, rule in enumerate(group["rules"])
    }


def digest_now(timezone: str) -> str:
    """The current minute in ``timezone`` (HH:MM), for a digest slot active during the run;
    the slot before midnight if the hour after it would run past midnight."""
    local = datetime.now(ZoneInfo(timezone))
    return min(f"{local:%H:%M}", "22:59")


def generate_scoped(root: Path, labels: list[str], *, digest: bool = False) -> list[str]:
    """The rule files generated under ``root`` with scope ``labels`` (as
    tests/test_scope_promtool.py); ``digest``: the morning digest's slot is now and active
    for an hour, so its alerts (each templated with the shop's figures) fire while the run
    reads the groups' durations, as they do for 10 minutes at each slot in production."""
    (root / "rules").mkdir(parents=True)
    data = yaml.safe_load((ROOT / "rules" / "thresholds.yaml").read_text())
    data["scope"] = {"labels": labels}
    if digest:
        at = digest_now(data["timezone"])
        evening = data["digest"].get("evening")
        data["digest"].update(
            morning=at, active_for="1h", evening=None if evening == at else evening
        )
    (root / "rules" / "thresholds.yaml").write_text(yaml.safe_dump(data))
    (root / "alertmanager").mkdir()
    shutil.copy(ROOT / "alertmanager" / "routing.yaml", root / "alertmanager" / "routing.yaml")
    result = CliRunner().invoke(cli_main, ["generate", "--root", str(root)])
    if result.exit_code != 0:
        raise SystemExit(f"generate failed: {result.output}")
    return sorted(glob.glob(str(root / "rules" / "generated" / "*.yml")))


def _rule_durations(url: str) -> tuple[dict[str, float], int, float]:
    """Each group's last evaluation duration, the head series and the process' CPU seconds,
    from Prometheus' /metrics."""
    groups: dict[str, float] = {}
    series, cpu = 0, 0.0
    own = requests.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(own):
        for sample in family.samples:
            if sample.name == "prometheus_rule_group_last_duration_seconds":
                groups[sample.labels["rule_group"].split(";")[-1]] = sample.value
            elif sample.name == "prometheus_tsdb_head_series":
                series = int(sample.value)
            elif sample.name == "process_cpu_seconds_total":
                cpu = sample.value
    return groups, series, cpu


def bench_rules(
    shops: int,
    settle: float,
    workdir: Path,
    rules: list[str],
    samples: int,
    every: float,
    interval: float,
) -> RuleResult:
    started = time.time()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = exposition(shops, started)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    tmp = workdir / f"prometheus-{shops}"
    tmp.mkdir()
    result = RuleResult(shops=shops)
    try:
        target = f"127.0.0.1:{server.server_address[1]}"
        with running_prometheus(
            tmp, {"boxoffice": target}, rules, interval=f"{interval:g}s"
        ) as prom:
            time.sleep(settle)
            seen: dict[str, list[float]] = {}
            per_rule: dict[tuple[str, int, str], list[float]] = {}
            cpu: list[tuple[float, float]] = []
            for i in range(samples):
                if i:
                    time.sleep(every)
                if prom.process.poll() is not None:  # say why, not just "connection refused"
                    log = (tmp / "prometheus.log").read_text()[-4000:]
                    raise SystemExit(f"Prometheus exited ({prom.process.returncode}):\n{log}")
                groups, result.series, used = _rule_durations(prom.url)
                cpu.append((time.monotonic(), used))
                for group, value in groups.items():
                    seen.setdefault(group, []).append(value)
                for rule, value in _rule_times(prom.url).items():
                    per_rule.setdefault(rule, []).append(value)
            result.groups = {g: statistics.median(v) for g, v in seen.items()}
            if len(cpu) > 1:
                result.cpu = (cpu[-1][1] - cpu[0][1]) / (cpu[-1][0] - cpu[0][0])
            result.rules = {r: statistics.median(v) for r, v in per_rule.items()}
    finally:
        server.shutdown()
    return result


def print_rules(rule_results: list[RuleResult], top: int) -> None:
    """The per-group table (one column per shop count), the sum and the costliest rules."""
    if not rule_results:
        return
    groups = sorted({g for r in rule_results for g in r.groups})
    print("\n| rule group | " + " | ".join(f"{r.shops} shops" for r in rule_results) + " |")
    print("|---|" + "---|" * len(rule_results))
    for group in groups:
        cells = " | ".join(f"{r.groups.get(group, 0) * 1000:.1f} ms" for r in rule_results)
        print(f"| {group} | {cells} |")
    sums = " | ".join(f"{sum(r.groups.values()) * 1000:.1f} ms" for r in rule_results)
    print(f"| sum of the groups | {sums} |")
    print("| head series | " + " | ".join(str(r.series) for r in rule_results) + " |")
    print("| Prometheus CPU | " + " | ".join(f"{r.cpu:.0%} of a core" for r in rule_results) + " |")
    last = rule_results[-1]
    print(f"\n| costliest rules at {last.shops} shops | group | last evaluation |")
    print("|---|---|---|")
    ranked = sorted(last.rules.items(), key=lambda item: item[1], reverse=True)
    for (group, i, name), value in ranked[:top]:
        print(f"| {name} (rule {i + 1}) | {group} | {value * 1000:.1f} ms |")


def _rule_files(args: argparse.Namespace, tmp: Path) -> list[str]:
    """The rule files part 2 evaluates: --rule-files' directory, or generated (and kept)."""
    if args.rule_files:
        return sorted(glob.glob(str(Path(args.rule_files) / "*.yml")))
    if not args.shops:
        return []
    rules = generate_scoped(tmp / "root", args.scope, digest=args.digest_now)
    if args.keep_rules:
        Path(args.keep_rules).mkdir(parents=True, exist_ok=True)
        for path in rules:
            shutil.copy(path, args.keep_rules)
    return rules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", type=int, nargs="*", default=[1, 10, 50])
    parser.add_argument("--shops", type=int, nargs="*", default=[1, 10, 50])
    parser.add_argument("--orders", type=int, default=5000, help="orders seeded per database")
    parser.add_argument("--cycles", type=int, default=15)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument(
        "--rule-interval",
        type=float,
        default=15.0,
        help="scrape and rule evaluation interval of part 2, s (prometheus/prometheus.yml's)",
    )
    parser.add_argument("--settle", type=float, default=45.0, help="seconds before reading rules")
    parser.add_argument("--samples", type=int, default=5, help="readings of the rule durations")
    parser.add_argument(
        "--every", type=float, default=None, help="seconds between readings (--rule-interval)"
    )
    parser.add_argument("--scope", nargs="*", default=["seller"], help="scope labels of the rules")
    parser.add_argument("--top", type=int, default=10, help="costliest rules to list")
    parser.add_argument(
        "--rule-files",
        default="",
        help="evaluate the *.yml files of this directory instead of generating (e.g. an older"
        " commit's scoped rules, for a before/after in one run)",
    )
    parser.add_argument(
        "--digest-now",
        action="store_true",
        help="generate the morning digest's slot at the current local minute, active for an"
        " hour, so DailyDigest fires during the readings",
    )
    parser.add_argument(
        "--keep-rules",
        default="",
        help="copy the generated rule files into this directory (a later run's --rule-files)",
    )
    args = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs", flush=True)
    shard_results: list[ShardResult] = []
    if args.databases:
        cluster = Cluster()
        try:
            from exporter.db.seed import seed_database

            cluster.start()
            began = time.perf_counter()
            seed_database(cluster.dsn("postgres"), orders=args.orders, seed=1)
            make_shards(cluster, max(args.databases))
            print(
                f"seeded {args.orders:,} orders, copied into {max(args.databases)} databases "
                f"in {time.perf_counter() - began:.0f}s",
                flush=True,
            )
            with tempfile.TemporaryDirectory(prefix="boxoffice-shards-") as tmp:
                for count in args.databases:
                    r = bench_databases(cluster, count, args.cycles, args.interval, Path(tmp))
                    shard_results.append(r)
                    print(r, flush=True)
        finally:
            cluster.stop()
    rule_results: list[RuleResult] = []
    with tempfile.TemporaryDirectory(prefix="boxoffice-rules-") as tmp:
        rules = _rule_files(args, Path(tmp))
        for shops in args.shops:
            every = args.rule_interval if args.every is None else args.every
            r = bench_rules(
                shops, args.settle, Path(tmp), rules, args.samples, every, args.rule_interval
            )
            rule_results.append(r)
            print(r.shops, r.series, max(r.groups.values(), default=0.0), flush=True)
    print(
        "\n| databases | cycles | cycle p50 | cycle p95 | db time/cycle | exporter CPU/cycle "
        "| conn/db (max) | conn total (max) | RSS | up |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in shard_results:
        print(
            f"| {r.databases} | {r.cycles} | {r.cycle_p50 * 1000:.0f} ms | {r.cycle_p95 * 1000:.0f} ms "
            f"| {r.db_ms_per_cycle:.0f} ms | {r.cpu_ms_per_cycle:.0f} ms | {r.max_conn_per_db} | {r.max_conn_total} "
            f"| {r.rss_mb:.0f} MB | {r.databases_up}/{r.databases} |"
        )
    print_rules(rule_results, args.top)


if __name__ == "__main__":
    main()
