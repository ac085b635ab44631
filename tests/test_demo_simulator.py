"""The demo's sales simulator: the shape of its traffic (pure) and its writes (real PostgreSQL).

Runs here use a fake clock, so a virtual day plays as fast as the database takes the writes.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest

from exporter.demo.buyers import Timers
from exporter.demo.report import Counts, describe
from exporter.demo.scenarios import (
    NORMAL,
    SCENARIOS,
    SMS_ERRORS,
    SMS_PROVIDER_ERRORS,
    Effects,
    Phase,
    Timeline,
    effects,
)
from exporter.demo.shape import DemoClock, arrival_rate, demand_shape, poisson
from exporter.demo.simulator import Settings, SmsOutcome
from tests.support.shop import (
    NOON,
    FakeClock,
    contract_violations,
    playing,
    simulator,
    small_catalog,
)

THURSDAY = NOON.replace(hour=0)


# --- pure: the clock, the shape, the timeline -------------------------------------------


def test_the_demo_clock_compresses_time() -> None:
    clock = DemoClock(NOON, speed=60)
    assert clock.local(90) == NOON + timedelta(minutes=90)
    assert clock.real(1800) == 30


@pytest.mark.parametrize("start, speed", [(datetime(2026, 11, 26, 12), 60), (NOON, 0)])
def test_the_demo_clock_refuses_a_naive_start_or_no_speed(start: datetime, speed: float) -> None:
    with pytest.raises(ValueError):
        DemoClock(start, speed)


@pytest.mark.parametrize(
    "hour, low, high",
    [
        (19.5, 1.0, 1.0),  # Thursday's busiest hour is the week's peak
        (3.5, 0.0, 0.05),  # the night is nearly silent
        (12.5, 0.75, 0.9),  # lunch
        (7.0, 0.15, 0.3),  # the morning ramp, between two hour midpoints
    ],
)
def test_demand_follows_the_time_of_day(hour: float, low: float, high: float) -> None:
    assert low <= demand_shape(THURSDAY + timedelta(hours=hour)) <= high


def test_demand_ramps_instead_of_jumping_on_the_hour() -> None:
    minutes = [demand_shape(THURSDAY + timedelta(hours=17, minutes=m)) for m in range(30, 91)]
    assert minutes == sorted(minutes)
    assert max(b - a for a, b in itertools.pairwise(minutes)) < 0.02


@pytest.mark.parametrize(
    "speed, demand, expected",
    [(1, 1.0, 240 / 3600), (60, 1.0, 4.0), (60, 8.0, 32.0), (60, 0.0, 0.0), (60, -1.0, 0.0)],
)
def test_arrivals_scale_with_speed_and_demand(speed: float, demand: float, expected: float) -> None:
    peak = THURSDAY + timedelta(hours=19, minutes=30)
    assert arrival_rate(peak, 240, speed, demand) == pytest.approx(expected)


@pytest.mark.parametrize("mean", [0.3, 4.0, 200.0])
def test_poisson_draws_have_the_mean(mean: float) -> None:
    rng = random.Random(7)
    draws = [poisson(rng, mean) for _ in range(4000)]
    assert sum(draws) / len(draws) == pytest.approx(mean, rel=0.05)
    assert min(draws) >= 0


@pytest.mark.parametrize(
    "elapsed, phase",
    [
        (0, Phase.BASELINE),
        (9.9, Phase.BASELINE),
        (10, Phase.INCIDENT),
        (29.9, Phase.INCIDENT),
        (30, Phase.RECOVERY),
        (1e6, Phase.RECOVERY),
    ],
)
def test_the_timeline_has_three_phases(elapsed: float, phase: Phase) -> None:
    assert Timeline(start_after=10, duration=20).phase(elapsed) is phase


def test_an_incident_changes_only_what_it_is_about() -> None:
    baseline = Effects(failure_share=0.02, webhook_error_share=0.0)
    outage = effects(SCENARIOS["payment-outage"], Phase.INCIDENT, baseline)
    assert outage.failure_share == 0.85
    assert outage.failure_codes[0][0] == "processing_error"
    assert outage.webhook_error_share == 0.0  # the baseline's, untouched
    for phase in (Phase.BASELINE, Phase.RECOVERY):
        assert effects(SCENARIOS["payment-outage"], phase, baseline) is baseline
    assert effects(None, Phase.INCIDENT) is NORMAL


def test_every_scenario_names_alerts_of_the_spec() -> None:
    from exporter.generate.alertdefs import ALERT_DEFS_BY_NAME

    assert set(SCENARIOS) == {
        "oversell",
        "payment-outage",
        "webhook-stall",
        "sms-failure",
        "quiet-day",
        "flash-sale",
    }
    for scenario in SCENARIOS.values():
        assert scenario.expected_alerts
        assert set(scenario.expected_alerts) <= set(ALERT_DEFS_BY_NAME), scenario.name
        assert scenario.incident != NORMAL


def test_timers_come_due_in_order_and_in_bounded_batches() -> None:
    timers = Timers()
    for due in (3.0, 1.0, 2.0, 5.0):
        timers.add(due, "pay", due)
    assert timers.due(2.5, limit=1) == [("pay", 1.0)]
    assert timers.due(2.5, limit=10) == [("pay", 2.0)]
    assert timers.drain() == [("pay", 3.0), ("pay", 5.0)]
    assert len(timers) == 0


def test_the_status_line_says_what_happened() -> None:
    counts = Counts(sessions=10, paid=9, failed=1, tickets=14, webhooks=20, webhook_errors=2)
    line = describe(counts)
    assert "9 paid / 1 failed (10% failed)" in line
    assert "20 webhooks (2 errors)" in line


# --- against PostgreSQL ----------------------------------------------------------------


@pytest.fixture
def shop(pg_schema: str) -> Any:
    with psycopg.connect(pg_schema, autocommit=True) as conn:
        small_catalog(conn, scarce_ga=15)
        yield conn


class Texts:
    def __init__(self) -> None:
        self.sent: list[SmsOutcome] = []

    def deliver(self, outcome: SmsOutcome) -> None:
        self.sent.append(outcome)


def test_a_sales_day_follows_the_write_contract(shop: psycopg.Connection[Any]) -> None:
    texts = Texts()
    clock = FakeClock()
    # Two virtual days in 60 fake seconds: sessions expire, refunds and retries come due.
    lines: list[str] = []
    sim = simulator(
        shop,
        speed=2880,
        seconds=60,
        fake_clock=clock,
        sms=texts,
        lines=lines,
        settings=Settings(peak_per_hour=40, status_every=15.0),
        start=THURSDAY,
        seed=1,
    )
    tally = sim.run(threading.Event())
    assert contract_violations(shop) == {}
    total = tally.total
    assert total.sessions > 300
    orders = dict(shop.execute("SELECT payment_status, count(*) FROM orders GROUP BY 1").fetchall())
    assert orders.get("completed", 0) + orders.get("refunded", 0) == total.paid
    assert orders["failed"] == total.failed
    assert 0.02 < total.failed / (total.paid + total.failed) < 0.10  # ~5% declined
    assert orders.get("refunded", 0) >= 1
    row = shop.execute(
        "SELECT count(*) FILTER (WHERE status = 'expired'), count(*) FROM checkout_sessions"
    ).fetchone()
    assert row is not None and 0.35 < row[0] / row[1] < 0.65  # about half abandoned
    webhooks = dict(
        shop.execute("SELECT provider || '/' || status, count(*) FROM webhook_logs GROUP BY 1")
    )
    assert webhooks["stripe/processed"] > 2 * total.paid
    assert webhooks["twilio/processed"] > 0.9 * total.paid
    assert sum(v for k, v in webhooks.items() if k.endswith("/error")) == total.webhook_errors
    assert len(texts.sent) == total.paid
    # The app's inventory check: no tier sells past its capacity on a normal day.
    oversold = shop.execute(
        "SELECT t.id FROM ticket_tiers t JOIN orders o ON o.tier_id = t.id "
        "WHERE o.payment_status = 'completed' GROUP BY t.id, t.capacity "
        "HAVING sum(o.quantity) > t.capacity"
    ).fetchall()
    assert oversold == []
    assert total.turned_away > 0  # Austin's 15 GA tickets sold out
    assert sum("last interval" in line for line in lines) == 3  # at +15s, +30s, +45s
    assert lines[-1].startswith("[   +60s") and "stopped:" in lines[-1]


def test_buyers_come_at_lunch_not_at_night(shop: psycopg.Connection[Any]) -> None:
    counts = []
    for hour in (3, 12):
        # One virtual hour at 60x speed, by a fake clock.
        sim = simulator(
            shop, speed=60, seconds=60, fake_clock=FakeClock(), start=THURSDAY.replace(hour=hour)
        )
        counts.append(sim.run(threading.Event()).total.sessions)
    night, lunch = counts
    assert lunch > 10 * max(night, 1)
    assert contract_violations(shop) == {}


def test_a_retry_after_the_session_lapsed_expires_it_on_time(pg_schema: str) -> None:
    with psycopg.connect(pg_schema, autocommit=True) as conn:
        small_catalog(conn)
        # Every payment fails and every buyer retries until a retry comes after the 2s
        # session lapsed.
        settings = Settings(
            peak_per_hour=400, retry_share=1.0, checkout_ttl=120.0, think_time=(5.0, 30.0)
        )
        lapsed = []
        with playing(
            pg_schema, speed=60, seconds=5, settings=settings, baseline=Effects(failure_share=1.0)
        ) as played:
            for _ in range(20):  # real time: the database's expires_at against its now()
                time.sleep(0.25)
                row = conn.execute(
                    "SELECT count(*) FROM checkout_sessions "
                    "WHERE status = 'open' AND expires_at < now() - interval '2 seconds'"
                ).fetchone()
                lapsed.append(int(row[0]) if row else -1)
            played.join()
        failed = conn.execute("SELECT count(*) FROM orders WHERE payment_status = 'failed'")
        assert (failed.fetchone() or [0])[0] > 10, "the buyers retried"
    assert max(lapsed) == 0, str(lapsed)


def test_a_run_is_bounded_in_buyers_and_stops_when_asked(shop: psycopg.Connection[Any]) -> None:
    from exporter.demo.simulator import Limits

    sim = simulator(shop, speed=600, seconds=600, fake_clock=FakeClock())
    sim.limits = Limits(seconds=600, buyers=25)
    assert sim.run(threading.Event()).total.sessions <= 25
    stopped = threading.Event()
    stopped.set()
    clock = FakeClock()
    assert (
        simulator(shop, speed=600, seconds=600, fake_clock=clock).run(stopped).total.sessions == 0
    )
    assert clock.now == 0
    assert contract_violations(shop) == {}


def test_the_sms_failure_scenario_fails_texts_with_twilio_codes(
    shop: psycopg.Connection[Any],
) -> None:
    texts = Texts()
    marks: dict[Phase, int] = {}  # how many texts were sent when each phase began
    sim = simulator(
        shop,
        speed=600,
        seconds=12,
        fake_clock=FakeClock(),
        sms=texts,
        scenario=SCENARIOS["sms-failure"],
        timeline=Timeline(4, 4),
        settings=Settings(peak_per_hour=480),
        on_phase=lambda phase: marks.setdefault(phase, len(texts.sent)),
    )
    sim.run(threading.Event())

    def failed_share(texts_sent: list[SmsOutcome]) -> float:
        return sum(t.status != "delivered" for t in texts_sent) / max(1, len(texts_sent))

    start, end = marks[Phase.INCIDENT], marks[Phase.RECOVERY]
    assert end - start > 30
    assert failed_share(texts.sent[start:end]) > 0.4  # 60% of the incident's texts
    assert failed_share(texts.sent[:start] + texts.sent[end:]) < 0.1  # 3% otherwise
    failed = [t for t in texts.sent if t.status != "delivered"]
    assert {t.status for t in failed} == {"failed", "undelivered"}
    recipient = {code for code, _ in SMS_ERRORS}
    provider = {code for code, _ in SMS_PROVIDER_ERRORS}
    assert all(t.error_code in recipient | provider for t in failed)
    during = [t for t in texts.sent[start:end] if t.status != "delivered"]
    assert sum(t.error_code in provider for t in during) > 0.8 * len(during)
    assert all(t.error_code is None for t in texts.sent if t.status == "delivered")
