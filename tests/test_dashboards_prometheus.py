"""Every dashboard panel query against a real Prometheus that scraped the exporter serving
seeded demo sales (PostgreSQL) and the fake Stripe, Twilio and app health APIs, plus the
ticket app's own metrics, and evaluated the generated recording rules.

A day of history and today's revenue in the two past weeks are backfilled from the exporter's first scrape
(counters ramping up to the value it serves), so the "today", "last hour", peak-hours and
forecast panels have the history they read in production.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import load_config
from exporter.db.seed import seed_database
from exporter.generate.rules.recording import local_offset
from exporter.generate.thresholds import Thresholds, load_thresholds
from tests.support.dashboards import ROOT, Target, targets
from tests.support.data import add_tier
from tests.support.exporter import running_exporter, wait_for
from tests.support.fake_app import FakeTicketApp
from tests.support.fake_health import FakeHealth
from tests.support.fake_stripe import API_KEY, FakeStripe
from tests.support.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.support.fakehttp import serving
from tests.support.prometheus import Prometheus, Sample, backfill, running_prometheus

# Panels that return nothing on a healthy stack, and why.
EXPECTED_EMPTY = {
    # The cardinality guard folded nothing: the counter has no series until it does.
    "operations/Series folded by the cardinality guard (1h)/A",
    # Nor did the row and label bounds cut anything (docs/security.md).
    "operations/Query output cut (1h)/A",
    "operations/Query output cut (1h)/B",
    # The shop's normal completion is a seasonal baseline: it needs two past weeks of the
    # completion ratio, which only a Prometheus that ran for two weeks has.
    "business/Checkout conversion (1h)/B",
    # Likewise the average order value's normal (AverageOrderValueAnomalous's baseline).
    "business/Average order value (3h)/B",
}
# Empty or not depending on the clock: the day's sales per tier are summed from the hourly
# record at whole clock hours (docs/rules.md), so they exist once this test's Prometheus has
# recorded an hour's top, which a test crossing hh:00 does.
EMPTY_UNTIL_THE_HOUR = {"business/Tier popularity (24h)/A"}
HISTORY = 26 * 3600.0  # a full local day before now, whatever the time of day
STEP = 300.0
WEEK = 7 * 86400.0


@dataclass(frozen=True, kw_only=True)
class Scraped:
    name: str
    labels: dict[str, str]
    value: float
    counter: bool


def _scrape_typed(url: str) -> list[Scraped]:
    text = requests.get(f"{url}/metrics", timeout=5).text
    out = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.append(
                Scraped(
                    name=sample.name,
                    labels=dict(sample.labels),
                    value=sample.value,
                    counter=family.type == "counter",
                )
            )
    return out


def _history(scraped: list[Scraped], instance: str, th: Thresholds, now: float) -> list[Sample]:
    """Counters ramping to their current value over the last day, the local clock rules over
    the same day, and today's revenue one and two weeks ago (what the forecast rule reads)."""
    start, end = now - HISTORY, now - 30
    times = [start + i * STEP for i in range(int((end - start) // STEP) + 1)]
    # Every 30 s over the last 10 minutes: short windows (5m rates) see the counters move.
    times = sorted({*times, *(end - i * 30.0 for i in range(20))})
    samples: list[Sample] = []
    for series in scraped:
        if not series.counter or series.value <= 0:
            continue
        labels = {**series.labels, "job": "boxoffice", "instance": instance}
        samples += [
            Sample(
                name=series.name,
                labels=labels,
                value=series.value * (0.5 + 0.4 * (t - start) / (end - start)),
                at=t,
            )
            for t in times
        ]
    for t in times:
        offset = local_offset(th, t)
        samples.append(
            Sample(name="boxoffice:timezone_offset_seconds", labels={}, value=float(offset), at=t)
        )
        samples.append(
            Sample(
                name="boxoffice:local_day",
                labels={},
                value=float(math.floor((t + offset) / 86400)),
                at=t,
            )
        )
    revenue = {
        s.labels["currency"]: s.value for s in scraped if s.name == "boxoffice_revenue_total"
    }
    # The seasonal forecast is the median of the same time in past weeks, from two weeks on.
    for minute, weeks in itertools.product(range(-30, 16), (1, 2)):
        t = now - weeks * WEEK + minute * 60
        for currency, value in revenue.items():
            samples.append(
                Sample(
                    name="boxoffice:revenue:today",
                    labels={"currency": currency},
                    value=value * 0.1,
                    at=t,
                )
            )
    return samples


def _seed_fakes(stripe: FakeStripe, twilio: FakeTwilio) -> None:
    now = int(time.time())
    # Within the Stripe source's first listing window (its overlap, 5 minutes by default).
    for i in range(40):
        stripe.add_charge(now - 200 + i * 4)
    stripe.add_charge(now - 90, status="failed", failure_code="card_declined")
    stripe.add_charge(now - 80, status="failed", failure_code="expired_card")
    stripe.add("refund", now - 70, status="succeeded")
    stripe.add("dispute", now - 60, status="needs_response")
    stripe.add("event", now - 30, pending_webhooks=2)
    stripe.add("webhook_endpoint", now - 9000, status="enabled")
    for i in range(30):
        twilio.send(now - 2000 + i * 30, status="delivered", price="-0.00790")
    twilio.send(now - 100, status="undelivered", error_code=30003, price="-0.00790")


@pytest.fixture
def prometheus(pg_schema: str, tmp_path: Path) -> Iterator[Prometheus]:
    seed_database(pg_schema, orders=2_000, seed=11)
    with psycopg.connect(pg_schema, autocommit=True) as conn:
        row = conn.execute(
            "SELECT id FROM events WHERE status = 'on_sale' ORDER BY id LIMIT 1"
        ).fetchone()
        assert row is not None
        add_tier(conn, row[0], "balcony", price_cents=4900, capacity=40)
    th = load_thresholds(str(ROOT / "rules" / "thresholds.yaml"))
    (tmp_path / "stripe_key").write_text(API_KEY)
    (tmp_path / "twilio_token").write_text(AUTH_TOKEN)
    with (
        serving(FakeStripe()) as stripe,
        serving(FakeTwilio()) as twilio,
        serving(FakeHealth()) as health,
        serving(FakeTicketApp()) as app,
    ):
        _seed_fakes(stripe, twilio)  # type: ignore[arg-type]
        config = load_config(
            None,
            env={
                "BOXOFFICE_DSN": pg_schema,
                "BOXOFFICE_SOURCES_POSTGRES_INTERVAL": "1s",
                "BOXOFFICE_SOURCES_POSTGRES_TIMEOUT": "1s",
                # Reconcile soon, so the drift panels have data within the test.
                "BOXOFFICE_SOURCES_POSTGRES_INCREMENTAL_RECONCILE_INTERVAL": "2s",
                "BOXOFFICE_SOURCES_STRIPE_ENABLED": "true",
                "BOXOFFICE_SOURCES_STRIPE_API_KEY_FILE": str(tmp_path / "stripe_key"),
                "BOXOFFICE_SOURCES_STRIPE_API_BASE": stripe.url,
                "BOXOFFICE_SOURCES_STRIPE_INTERVAL": "1s",
                "BOXOFFICE_SOURCES_TWILIO_ENABLED": "true",
                "BOXOFFICE_SOURCES_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                "BOXOFFICE_SOURCES_TWILIO_AUTH_TOKEN_FILE": str(tmp_path / "twilio_token"),
                "BOXOFFICE_SOURCES_TWILIO_API_BASE": twilio.url,
                "BOXOFFICE_SOURCES_TWILIO_INTERVAL": "1s",
                "BOXOFFICE_SOURCES_HTTP_INTERVAL": "1s",
                # A lease on the API sources (this one replica holds it): the leader panel.
                "BOXOFFICE_HA_LEASE_DATABASE": "default",
                "BOXOFFICE_SOURCES_HTTP_TARGETS": f"[{{name: app, url: '{health.url}/health'}}]",
            },
        )
        with running_exporter(config) as (_exporter, url):

            def all_up() -> list[Scraped] | None:
                scraped = _scrape_typed(url)
                up = [s for s in scraped if s.name == "boxoffice_source_up"]
                return scraped if len(up) == 4 and all(s.value == 1 for s in up) else None

            scraped = wait_for(all_up, timeout=30)
            instance = url.removeprefix("http://")
            backfill(_history(scraped, instance, th, time.time()), tmp_path / "data")
            rules = [str(p) for p in sorted((ROOT / "rules" / "generated").glob("*.yml"))]
            scrape = {"boxoffice": instance, "ticket-app": app.url.removeprefix("http://")}
            with running_prometheus(tmp_path, scrape, rules) as server:
                yield server


def _has_data(server: Prometheus, expr: str) -> bool:
    return bool(server.query(expr))


def test_every_panel_query_returns_data(prometheus: Prometheus) -> None:
    # Rates need two scrapes of the app and of the exporter; the recording rules need an
    # evaluation after that.
    for ready in (
        "rate(boxoffice_source_errors_total[5m])",
        "increase(boxoffice_postgres_reconciliations_total[1d])",
        "boxoffice:endpoint_latency_seconds:p95_rate5m",
        "boxoffice:revenue:today",
        'boxoffice:slo_errors:ratio_rate5m{slo="web"}',
        "boxoffice:revenue:forecast_today",
    ):
        wait_for(partial(_has_data, prometheus, ready), timeout=30, interval=0.5)
    all_targets = targets()
    results: dict[str, list[dict[str, Any]]] = {}
    for target in all_targets:
        results[target.key] = prometheus.query(target.promql)
    empty = {key for key, result in results.items() if not result}
    assert empty - EMPTY_UNTIL_THE_HOUR == EXPECTED_EMPTY, sorted(empty)
    # Ratios whose denominators moved: finite numbers, not NaN.
    not_finite = [
        key
        for key, result in results.items()
        if any(not math.isfinite(float(r["value"][1])) for r in result)
    ]
    assert not_finite == [], not_finite
    _check_some_values(results, all_targets)


def _check_some_values(results: dict[str, list[dict[str, Any]]], all_targets: list[Target]) -> None:
    def values(key: str) -> dict[str, float]:
        return {str(r["metric"]): float(r["value"][1]) for r in results[key]}

    # 24 local hours in the peak-hours heatmap, tickets in each (the backfilled ramp).
    (peak,) = [t for t in all_targets if t.panel_title == "Peak hours"]
    hours = {r["metric"]["hour"] for r in results[peak.key]}
    assert hours == {f"{h:02d}" for h in range(24)}
    sell_through = values("executive/Upcoming events: sell-through/A")
    # Net sold / capacity; above 1 only where the seed oversold a tier on purpose.
    assert sell_through and all(v >= 0 for v in sell_through.values())
    assert any(0 < v < 1 for v in sell_through.values())
    balcony = results["operations/Tickets left: other tiers/A"]
    assert [r["metric"]["tier"] for r in balcony] == ["balcony"]
    assert float(balcony[0]["value"][1]) == 40
    assert values("executive/Critical alerts firing/A")
    latency = {r["metric"]["endpoint"] for r in results["operations/Endpoint latency (p95)/A"]}
    assert latency == {"checkout", "register", "stripe_webhook", "success"}
    slos = {r["metric"]["slo"] for r in results["operations/Error ratio per SLO (5m)/A"]}
    assert slos == {"web", "payments", "sms", "inventory"}
