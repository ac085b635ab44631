"""The payment-outage scenario through a real Prometheus: PaymentSuccessRateLow fires during
the incident and resolves after it.

Real PostgreSQL, the exporter, the simulator at 120x and Prometheus (the Debian binary,
started by the demo's supervisor) evaluating the rules generated from the demo profile of
rules/thresholds.yaml: 1s scrapes and evaluations, waits compressed 120x, windows of at
least 10s (PaymentSuccessRateLow's 5 minutes: 2.5s, raised to 10s with 4x the minimum
traffic), a seller selling up to 600 checkouts an hour.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import yaml

from exporter.demo.profile import compress, demo_profile
from exporter.demo.scenarios import SCENARIOS, Phase, Timeline
from exporter.demo.simulator import Settings
from exporter.demo.supervisor import Child, Supervisor, start_prometheus
from exporter.demo.watch import AlertWatcher
from tests.support.exporter import config_for, running_exporter, scrape_until, wait_for
from tests.support.shop import QUIET, playing, small_catalog

ROOT = Path(__file__).resolve().parent.parent
SPEED = 120.0


def test_the_demo_profile_compresses_waits_but_not_latency_targets() -> None:
    data = yaml.safe_load((ROOT / "rules/thresholds.yaml").read_text())
    demo = compress(data, 60)
    alerts = demo["alerts"]
    assert alerts["PaymentSuccessRateLow"]["for"] == "2s"
    assert alerts["PaymentSuccessRateLow"]["window"] == "30s"  # 5s, raised to the floor...
    assert alerts["PaymentSuccessRateLow"]["min_traffic"] == 120  # ...so 20 payments become 120
    assert alerts["PaymentSuccessRateLow"]["thresholds"] == {"critical": 0.95}  # a ratio stays
    assert alerts["PaymentFailuresBurst"]["thresholds"] == {"critical": 30, "high": 9}
    assert alerts["WebhookProcessingErrors"]["window"] == "1m"  # 1h / 60: no floor, no growth
    assert alerts["WebhookProcessingErrors"]["thresholds"] == {"critical": 0.1, "high": 5}
    assert alerts["NoRecentSales"]["thresholds"] == {"critical": 20, "high": 10}  # orders
    assert demo["baseline"]["min_silence"] == "30s"  # its silences shrink to the window floor
    assert alerts["RefundRateHigh"]["window"] == "24m"
    assert alerts["InventoryLow"]["for"] == "0s"  # the alert's default, compressed too
    assert demo["escalation"] == {
        "tier2_after": "5s",
        "tier3_after": "15s",
        "top_tier": {"critical": 3, "high": 2, "medium": 1, "low": 1},  # not a wait
    }
    assert alerts["InventorySoldOut"]["keep_firing_for"] == "1m"  # hysteresis waits too
    assert alerts["TwilioBalanceLow"]["relative"] == {"runway": "2m"}  # so does a runway
    assert demo["latency"] == data["latency"]
    assert data["alerts"]["PaymentSuccessRateLow"]["for"] == "2m", "the input is not changed"


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[Supervisor, Path]]:
    supervisor = Supervisor(tmp_path, echo=lambda line: None)
    try:
        yield supervisor, tmp_path
    finally:
        supervisor.stop_all()


def _firing(url: str, name: str) -> list[dict[str, Any]]:
    alerts = requests.get(f"{url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == name and a["state"] == "firing"]


def test_payment_outage_fires_payment_success_rate_low_and_resolves(
    pg_schema: str, prometheus: tuple[Supervisor, Path]
) -> None:
    supervisor, directory = prometheus
    with psycopg.connect(pg_schema, autocommit=True) as conn:
        small_catalog(conn)
    _ruleset, rules = demo_profile(
        ROOT / "rules/thresholds.yaml", SPEED, directory / "rules", min_window=10
    )
    with running_exporter(config_for(pg_schema)) as (_exporter, exporter_url):
        scrape_until(exporter_url, bool)
        server: Child = start_prometheus(supervisor, exporter_url.removeprefix("http://"), rules)
        lines: list[str] = []
        watcher = AlertWatcher(server.url, lines.append, interval=0.5, max_polls=200)
        watcher.start()
        try:
            with playing(
                pg_schema,
                speed=SPEED,
                seconds=60,
                scenario=SCENARIOS["payment-outage"],
                timeline=Timeline(start_after=3, duration=6),
                baseline=QUIET,
                settings=Settings(peak_per_hour=1200),  # half the checkouts are abandoned
            ) as played:
                played.wait(Phase.INCIDENT)
                assert _firing(server.url, "PaymentSuccessRateLow") == []
                incident = time.monotonic()
                fired = wait_for(
                    lambda: _firing(server.url, "PaymentSuccessRateLow"), timeout=10, interval=0.5
                )
                took = time.monotonic() - incident
                played.wait(Phase.RECOVERY)
                wait_for(
                    lambda: not _firing(server.url, "PaymentSuccessRateLow"),
                    timeout=30,
                    interval=0.5,
                )
            wait_for(  # the watcher polls on its own schedule
                lambda: any(
                    line.startswith("ALERT RESOLVED  PaymentSuccessRateLow") for line in lines
                ),
                timeout=5,
                interval=0.2,
            )
        finally:
            watcher.stop()
    labels = fired[0]["labels"]
    assert (labels["severity"], labels["category"], labels["source"]) == (
        "critical",
        "payments",
        "postgres",
    )
    assert took < 10
    shown = [line for line in lines if "PaymentSuccessRateLow" in line]
    assert shown[0].startswith("ALERT FIRING")
    assert shown[-1].startswith("ALERT RESOLVED")
