"""Each demo scenario shows in the exporter's metrics, and goes away after recovery.

Real PostgreSQL, the real exporter (1s collection), the simulator on a thread at 600x speed
with a short timeline. Windows are measured between snapshots the exporter took after it
caught up with what the database held at each phase change; thresholds come from
rules/thresholds.yaml, the same numbers the generated rules use.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import psycopg
import pytest

from exporter.demo.local_twilio import TwilioGateway
from exporter.demo.scenarios import SCENARIOS, Phase, Timeline
from exporter.demo.simulator import OVERSELL_BY, Settings
from exporter.generate.thresholds import Thresholds, load_thresholds
from tests.support.exporter import Series, config_for, running_exporter, scrape_until
from tests.support.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.support.fakehttp import serving
from tests.support.shop import QUIET, Played, playing, small_catalog

Scenarios = Callable[[str], AbstractContextManager["Run"]]
ROOT = Path(__file__).resolve().parent.parent
SPEED = 600.0
# The incident lasts several collection cycles even on a loaded machine (1s interval).
TIMELINE = Timeline(start_after=2.5, duration=5.0)
RUN_SECONDS = 10.0


@pytest.fixture(scope="module")
def thresholds() -> Thresholds:
    return load_thresholds(str(ROOT / "rules/thresholds.yaml"))


def threshold(th: Thresholds, alert: str, severity: str) -> float:
    return dict(th.alerts[alert].thresholds)[severity]


def total(series: Series, name: str, **labels: str) -> float:
    """Sum of every series of ``name`` carrying ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in series.items() if n == name and wanted <= ls)


@dataclass(frozen=True)
class Snapshot:
    series: Series
    at: float

    def minus(self, earlier: Snapshot, name: str, **labels: str) -> float:
        return total(self.series, name, **labels) - total(earlier.series, name, **labels)


# What the database holds now; the exporter has caught up when its counters reach it.
_TRUTH = """
SELECT (SELECT count(*) FROM orders WHERE payment_status <> 'pending'),
       (SELECT count(*) FROM webhook_logs),
       (SELECT COALESCE(sum(quantity), 0) FROM orders WHERE paid_at IS NOT NULL)
"""


def caught_up(url: str, dsn: str) -> Snapshot:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(_TRUTH).fetchone()
    assert row is not None
    payments, webhooks, sold = (float(v) for v in row)

    def reached(s: Series) -> bool:
        return (
            total(s, "boxoffice_payments_total") >= payments
            and total(s, "boxoffice_webhook_events_total") >= webhooks
            and total(s, "boxoffice_tickets_sold_total") >= sold
        )

    series = scrape_until(url, reached, timeout=15)
    return Snapshot(series, time.monotonic())


@dataclass
class Run:
    dsn: str
    url: str
    played: Played

    def at(self, phase: Phase) -> Snapshot:
        self.played.wait(phase)
        return caught_up(self.url, self.dsn)

    def end(self) -> Snapshot:
        self.played.join()
        return caught_up(self.url, self.dsn)


@contextmanager
def _play(dsn: str, url: str, name: str) -> Iterator[Run]:
    """Play scenario ``name`` on the shop at ``dsn`` while the test measures."""
    with playing(
        dsn,
        speed=SPEED,
        seconds=RUN_SECONDS,
        scenario=SCENARIOS[name],
        timeline=TIMELINE,
        baseline=QUIET,
    ) as played:
        yield Run(dsn, url, played)


@pytest.fixture
def run_scenario(pg_schema: str) -> Iterator[Callable[[str], AbstractContextManager[Run]]]:
    """``with run_scenario(name) as run:`` against a small shop and a running exporter."""
    with psycopg.connect(pg_schema, autocommit=True) as conn:
        small_catalog(conn, scarce_ga=50)
    with running_exporter(config_for(pg_schema)) as (_exporter, url):
        scrape_until(url, lambda s: total(s, "boxoffice_source_up", source="postgres") == 1)
        yield partial(_play, pg_schema, url)


def test_payment_outage_drops_the_success_rate_below_the_alert_and_back(
    run_scenario: Scenarios, thresholds: Thresholds
) -> None:
    floor = threshold(thresholds, "PaymentSuccessRateLow", "critical")  # 0.95
    with run_scenario("payment-outage") as run:
        before = run.at(Phase.INCIDENT)
        during = run.at(Phase.RECOVERY)
        after = run.end()
    # The alert judges system failures only: card declines, where the shop has them, go on
    # through the incident and after it, and are no outage.
    payments = during.minus(before, "boxoffice_payments_total")
    failed = during.minus(before, "boxoffice_payments_failed_total")
    assert payments >= 20, "the incident must have enough traffic for the min_traffic guard"
    processing = during.minus(
        before, "boxoffice_payments_failed_total", failure_code="processing_error"
    )
    assert 1 - processing / payments < floor
    assert processing > failed / 2
    recovered = after.minus(during, "boxoffice_payments_total")
    assert recovered >= 10  # 2.5 s of wall time after recovery; fewer when the machine is busy
    processing_after = after.minus(
        during, "boxoffice_payments_failed_total", failure_code="processing_error"
    )
    assert 1 - processing_after / recovered >= floor


def test_oversell_makes_available_tickets_negative_until_seats_are_added(
    run_scenario: Scenarios,
) -> None:
    austin = {"event": "austin-2026-12-20", "tier": "ga"}
    with run_scenario("oversell") as run:
        run.at(Phase.INCIDENT)
        oversold = scrape_until(
            run.url,
            lambda s: total(s, "boxoffice_inventory_available_tickets", **austin) < 0,
            timeout=20,
        )
        after = run.end()
    assert total(oversold, "boxoffice_inventory_available_tickets", **austin) >= -OVERSELL_BY - 4
    available = [
        v for (n, _ls), v in after.series.items() if n == "boxoffice_inventory_available_tickets"
    ]
    assert len(available) == 6 and min(available) >= 0


def test_webhook_stall_raises_webhook_errors_past_both_thresholds_and_back(
    run_scenario: Scenarios, thresholds: Thresholds
) -> None:
    ratio = threshold(thresholds, "WebhookProcessingErrors", "critical")  # 10% of deliveries
    count = threshold(thresholds, "WebhookProcessingErrors", "high")  # 5 errors
    with run_scenario("webhook-stall") as run:
        before = run.at(Phase.INCIDENT)
        during = run.at(Phase.RECOVERY)
        after = run.end()
    errors = during.minus(before, "boxoffice_webhook_events_failed_total", provider="stripe")
    events = during.minus(before, "boxoffice_webhook_events_total", provider="stripe")
    assert errors > count
    assert errors / events > ratio
    later = after.minus(during, "boxoffice_webhook_events_failed_total")
    assert later / after.minus(during, "boxoffice_webhook_events_total") < ratio
    # Stripe retried the failed deliveries: more stripe rows than the shop's own events.
    assert after.minus(before, "boxoffice_webhook_events_total", provider="stripe") > events


def test_quiet_day_stops_ticket_sales_until_buyers_return(run_scenario: Scenarios) -> None:
    with run_scenario("quiet-day") as run:
        run.played.wait(Phase.INCIDENT)
        time.sleep(1.0)  # buyers already in checkout finish paying (0.4s at this speed)
        quiet = caught_up(run.url, run.dsn)
        during = run.at(Phase.RECOVERY)
        after = run.end()
    assert during.at - quiet.at > 1.5
    assert during.minus(quiet, "boxoffice_tickets_sold_total") == 0
    # What NoRecentSales reads: the last paid order's time stands still.
    assert during.minus(quiet, "boxoffice_last_paid_order_timestamp_seconds") == 0
    assert after.minus(during, "boxoffice_tickets_sold_total") > 10
    assert after.minus(during, "boxoffice_last_paid_order_timestamp_seconds") > 0


def test_flash_sale_multiplies_sales_velocity_and_sells_an_event_out(
    run_scenario: Scenarios, thresholds: Thresholds
) -> None:
    spike = threshold(thresholds, "SalesVelocitySpike", "low")  # 2x the usual velocity
    austin = "austin-2026-12-20"
    with run_scenario("flash-sale") as run:
        start = caught_up(run.url, run.dsn)
        before = run.at(Phase.INCIDENT)
        during = run.at(Phase.RECOVERY)
        run.end()
    usual = before.minus(start, "boxoffice_tickets_sold_total") / (before.at - start.at)
    flash = during.minus(before, "boxoffice_tickets_sold_total") / (during.at - before.at)
    assert usual > 0
    assert flash > spike * usual
    left = [
        v
        for (n, ls), v in during.series.items()
        if n == "boxoffice_inventory_available_tickets" and ("event", austin) in ls
    ]
    low = threshold(thresholds, "InventoryLow", "ga")
    assert left and min(left) <= low


def test_sms_failure_raises_the_twilio_failure_ratio_and_back(
    pg_schema: str, tmp_path: Path, thresholds: Thresholds
) -> None:
    ceiling = threshold(thresholds, "SmsDeliveryFailureRateHigh", "high")  # 10% of final SMS
    with psycopg.connect(pg_schema, autocommit=True) as conn:
        small_catalog(conn)
    (tmp_path / "twilio_token").write_text(AUTH_TOKEN)
    fake = FakeTwilio()
    with serving(fake):
        gateway = TwilioGateway(fake)
        config = config_for(
            pg_schema,
            BOXOFFICE_SOURCES_TWILIO_ENABLED="true",
            BOXOFFICE_SOURCES_TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            BOXOFFICE_SOURCES_TWILIO_AUTH_TOKEN_FILE=str(tmp_path / "twilio_token"),
            BOXOFFICE_SOURCES_TWILIO_API_BASE=fake.url,
            BOXOFFICE_SOURCES_TWILIO_INTERVAL="300ms",
            BOXOFFICE_SOURCES_TWILIO_TIMEOUT="1s",
        )
        with running_exporter(config) as (_exporter, url):

            def texts() -> Series:
                sent = gateway.sent
                return scrape_until(
                    url, lambda s: total(s, "boxoffice_sms_messages_total") >= sent, timeout=15
                )

            with playing(
                pg_schema,
                speed=SPEED,
                seconds=RUN_SECONDS,
                scenario=SCENARIOS["sms-failure"],
                timeline=TIMELINE,
                baseline=QUIET,
                # Half of the checkouts are abandoned: twice the buyers for enough texts.
                settings=Settings(peak_per_hour=480),
                sms=gateway,
            ) as played:
                played.wait(Phase.INCIDENT)
                before = texts()
                played.wait(Phase.RECOVERY)
                during = texts()
                played.join()
                after = texts()

    def ratio(later: Series, earlier: Series) -> float:
        failed = total(later, "boxoffice_sms_messages_failed_total") - total(
            earlier, "boxoffice_sms_messages_failed_total"
        )
        sent = total(later, "boxoffice_sms_messages_total") - total(
            earlier, "boxoffice_sms_messages_total"
        )
        assert sent >= 20, "enough texts for the min_traffic guard"
        return failed / sent

    assert ratio(during, before) > ceiling
    assert ratio(after, during) < ceiling
    # Provider errors (ours), the class SmsDeliveryFailureRateHigh counts.
    assert total(during, "boxoffice_sms_messages_failed_total", error_code="30008") > 0
