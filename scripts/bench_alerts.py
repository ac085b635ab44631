"""Alert quality of the generated production rules (issue 15): precision, recall, timings.

    .venv/bin/python scripts/bench_alerts.py [--weeks 4] [--profiles all] [--jobs 2]

Simulates each healthy shop profile (exporter/quality/profiles.py) at a 60s scrape interval
for two warm-up weeks (the history the seasonal baselines need) plus --weeks scored weeks,
injects one incident of every kind at random times (fixed --seed), backfills the raw exporter series into a throwaway Prometheus,
materializes the recording rules of rules/generated/*.yml, replays every first-tier alert
at the 60s evaluation interval, and prints three tables: per alert and severity, per
incident kind, and healthy-time notifications per profile. docs/alerting-quality.md
explains the method and records the last run. Needs the `prometheus` and `promtool`
binaries (Debian's prometheus package). Reads rules/thresholds.yaml only for the seller's
timezone, which the simulated seasonality follows.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import yaml

from exporter.quality.bench import BenchConfig, run
from exporter.quality.incidents import Kind
from exporter.quality.profiles import PROFILES, PROFILES_BY_NAME
from exporter.quality.rules import load
from exporter.quality.scoring import alert_table, kind_table, missed_table, noise_table, score

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weeks", type=int, default=4, help="scored weeks per profile")
    parser.add_argument("--warmup-weeks", type=int, default=2)
    parser.add_argument("--interval", type=int, default=60, help="scrape and evaluation, s")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--jobs", type=int, default=2, help="profiles evaluated at once")
    parser.add_argument(
        "--profiles", default="all", help=f"comma-separated, of: {', '.join(PROFILES_BY_NAME)}"
    )
    parser.add_argument("--incidents", default="all", help="comma-separated kinds, 'all' or 'none'")
    parser.add_argument("--rules", type=Path, default=ROOT / "rules" / "generated")
    parser.add_argument("--thresholds", type=Path, default=ROOT / "rules" / "thresholds.yaml")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (TSDBs)")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables here")
    parser.add_argument(
        "--dump", type=Path, default=None, help="write every incident and notification as JSON"
    )
    args = parser.parse_args(argv)

    profiles = (
        PROFILES
        if args.profiles == "all"
        else tuple(PROFILES_BY_NAME[name] for name in args.profiles.split(","))
    )
    named: dict[str, tuple[Kind, ...]] = {"all": tuple(Kind), "none": ()}
    kinds = named.get(args.incidents)
    if kinds is None:
        kinds = tuple(Kind(k) for k in args.incidents.split(","))
    timezone = str(yaml.safe_load(args.thresholds.read_text()).get("timezone", "UTC"))
    rule_files = tuple(sorted(args.rules.glob("*.yml")))
    config = BenchConfig(
        rules=rule_files,
        timezone=timezone,
        weeks=args.weeks,
        warmup_weeks=args.warmup_weeks,
        interval=args.interval,
        seed=args.seed,
        kinds=kinds,
        work=args.work,
    )
    began = time.monotonic()
    runs = run(config, profiles, jobs=args.jobs)
    elapsed = time.monotonic() - began

    severities: dict[str, set[str]] = {}
    for rule in load(rule_files).alerts:
        severities.setdefault(rule.alert, set()).add(rule.severity)
    scores = score(runs, severities)
    shop_weeks = sum(weeks for weeks, _, _ in scores.noise.values())
    lines = [
        f"Alert quality of {len(rule_files)} rule files, {len(profiles)} profiles x "
        f"{args.weeks} scored weeks (+{args.warmup_weeks} warm-up), scrape and evaluation "
        f"every {args.interval}s, seed {args.seed}, {len(kinds)} incident kinds per profile; "
        f"run took {elapsed / 60:.1f} min.",
        "",
        "### Per alert and severity",
        "",
        *alert_table(scores, shop_weeks),
        "",
        "### Per incident kind",
        "",
        *kind_table(scores),
        "",
        "### Healthy-time notifications per profile",
        "",
        *noise_table(scores),
        "",
        "### Missed incidents, and the harm they did",
        "",
        *missed_table(runs, timezone),
    ]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.markdown is not None:
        args.markdown.write_text(text)
    if args.dump is not None:
        args.dump.write_text(json.dumps([dataclasses.asdict(r) for r in runs], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
