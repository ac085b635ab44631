"""Time to notify: from the commit that starts an incident to the SMS reaching Twilio.

    .venv/bin/python scripts/bench_notify.py [--rounds 3]

Runs the end-to-end scenario tests (tests/test_e2e_incidents.py) --rounds times with
BOXOFFICE_E2E_REPORT set, so each test records, for the first alert its scenario must
raise: incident commit -> Prometheus' activeAt (detection: sales data accumulating,
collection, scrape, evaluation) and activeAt -> first SMS request at the local Twilio API
(notification: `for`, Alertmanager's group_wait, the SMS bridge). Needs what the test
suite needs (PostgreSQL, prometheus, alertmanager; scripts/test.sh installs them).

Then it computes the worst case at production intervals, per alert:

    collection interval (sources.<source>.interval default, the source the alert reads)
  + Prometheus scrape_interval + evaluation_interval (prometheus/prometheus.yml)
  + the alert's `for` (rules/thresholds.yaml)
  + Alertmanager's group_wait for its severity (alertmanager/routing.yaml)
  + what the pipeline itself took in the run: the measured notification time minus the
    demo profile's `for` and group_wait (Alertmanager, bridge and Twilio work, Prometheus
    sending), taken at its maximum over the rounds.

Each interval is counted whole: a commit can land just after a collection, that
collection just after a scrape, that scrape just after an evaluation. Detection beyond
that (how long an incident takes to move a ratio over its window) depends on the incident,
not on the pipeline, and is reported from the run, not extrapolated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from exporter.config.settings import (  # noqa: E402
    PostgresSourceSettings,
    TwilioSourceSettings,
)
from exporter.demo.alerting import compressed  # noqa: E402
from exporter.demo.profile import MIN_WINDOW, compress  # noqa: E402
from exporter.generate.alertmanager.routing_load import load_routing  # noqa: E402
from exporter.generate.thresholds import load_thresholds  # noqa: E402

SOURCE = {"SmsDeliveryFailureRateHigh": "twilio"}  # every other measured alert reads PostgreSQL
SEVERITY = {
    "PaymentSuccessRateLow": "critical",
    "WebhookProcessingErrors": "critical",
    "SmsDeliveryFailureRateHigh": "high",
    "InventoryOversold": "critical",
    "InventorySoldOut": "critical",
    "NoRecentSales": "high",
}


def run_rounds(rounds: int) -> list[dict[str, object]]:
    fd, report = tempfile.mkstemp(prefix="bench-notify-", suffix=".jsonl")
    os.close(fd)
    env = {**os.environ, "BOXOFFICE_E2E_REPORT": report}
    try:
        for i in range(rounds):
            print(f"round {i + 1}/{rounds}: pytest tests/test_e2e_incidents.py", file=sys.stderr)
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "tests/test_e2e_incidents.py",
                    "-k",
                    "scenario",
                ],
                cwd=ROOT,
                env=env,
                check=True,
                timeout=1800,
            )
        lines = Path(report).read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    finally:
        os.unlink(report)


def demo_waits(alert: str, severity: str, speed: float) -> float:
    """The demo profile's `for` plus group_wait at ``speed`` (what the run waited on purpose)."""
    data = yaml.safe_load((ROOT / "rules" / "thresholds.yaml").read_text(encoding="utf-8"))
    profile = compress(data, speed, MIN_WINDOW)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(profile, handle)
    try:
        waits = load_thresholds(handle.name).alerts[alert].for_seconds
    finally:
        os.unlink(handle.name)
    routing = load_routing(str(ROOT / "alertmanager" / "routing.yaml"))
    timing = getattr(compressed(routing.file.timing, speed), severity)
    return waits + float(timing.group_wait)


def production_parts(alert: str, severity: str) -> dict[str, float]:
    prometheus = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())["global"]
    thresholds = load_thresholds(str(ROOT / "rules" / "thresholds.yaml"))
    routing = load_routing(str(ROOT / "alertmanager" / "routing.yaml"))
    source = SOURCE.get(alert, "postgres")
    interval = (TwilioSourceSettings() if source == "twilio" else PostgresSourceSettings()).interval
    return {
        "collection": float(interval),
        "scrape": _seconds(prometheus["scrape_interval"]),
        "evaluation": _seconds(prometheus["evaluation_interval"]),
        "for": thresholds.alerts[alert].for_seconds,
        "group_wait": float(getattr(routing.file.timing, severity).group_wait),
    }


def _seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * units[unit]
    raise ValueError(f"not a duration: {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--from-report", metavar="FILE", help="tabulate a BOXOFFICE_E2E_REPORT file instead"
    )
    args = parser.parse_args()
    if args.from_report:
        text = Path(args.from_report).read_text(encoding="utf-8")
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        per_scenario: dict[str, int] = defaultdict(int)
        for row in rows:
            per_scenario[str(row["scenario"])] += 1
        args.rounds = max(per_scenario.values(), default=0)
    else:
        rows = run_rounds(args.rounds)
    by: dict[tuple[str, str, float], list[dict[str, object]]] = defaultdict(list)
    for row in rows:
        by[(str(row["scenario"]), str(row["alert"]), float(str(row["speed"])))].append(row)
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.rounds} rounds\n"
    )
    print(
        "| scenario | alert | speed | commit → SMS, median (max) | detection | notification "
        "| pipeline work (max) | worst case at production intervals |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for (scenario, alert, speed), found in by.items():
        severity = SEVERITY[alert]
        total = [float(str(r["to_sms"])) for r in found]
        detection = [float(str(r["detection"])) for r in found]
        notification = [float(str(r["notification"])) for r in found]
        work = max(notification) - demo_waits(alert, severity, speed)
        parts = production_parts(alert, severity)
        worst = sum(parts.values()) + max(work, 0.0)
        shown = " + ".join(f"{v:g} {k}" for k, v in parts.items())
        print(
            f"| {scenario} | {alert} ({severity}) | {speed:g}x "
            f"| {statistics.median(total):.1f} s ({max(total):.1f}) "
            f"| {statistics.median(detection):.1f} s | {statistics.median(notification):.1f} s "
            f"| {work:.2f} s | {worst:.0f} s = {shown} + {max(work, 0):.1f} work |"
        )


if __name__ == "__main__":
    main()
