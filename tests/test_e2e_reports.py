"""The owner's reports through the whole pipeline (issue 18, item 5): the daily digest
arrives at its slot with the database's figures, the sales ticker reports the sales, and
neither reaches SMS or PagerDuty.

Real PostgreSQL → the exporter → real Prometheus (the generated rules, the digest's slot
set a minute or two ahead in the seller's time zone, the ticker on) → real Alertmanager on
the configuration generated from alertmanager/routing.yaml → the demo's local Slack, SMTP,
PagerDuty and Twilio. The digest counts from Prometheus' first evaluation (its "today"
starts there), so the sales it must report are written after the rules load, and the
expected figures are read back from the database with SQL over exactly those orders.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import requests

from exporter.demo.sinks import Notification
from tests.support.data import add_order
from tests.support.fakehttp import serving
from tests.support.pipeline import Pipeline, TimedTwilio, running_pipeline
from tests.support.shop import small_catalog

SPEED = 60.0
# Seconds from the pipeline's start to (at least) the digest's slot: the rules load after
# 10s, the day's sales are written a few seconds later and reach Prometheus before the slot.
REPORTS_AFTER = 30.0


@pytest.fixture
def twilio() -> Iterator[TimedTwilio]:
    with serving(TimedTwilio()) as fake:
        assert isinstance(fake, TimedTwilio)
        yield fake


def _tiers(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], int]:
    rows = conn.execute(
        "SELECT e.city, t.tier, t.id FROM ticket_tiers t JOIN events e ON e.id = t.event_id"
    ).fetchall()
    return {(city, tier): int(tid) for city, tier, tid in rows}


def _baseline(conn: psycopg.Connection[Any], tiers: dict[tuple[str, str], int]) -> None:
    """Yesterday's business, as far as Prometheus can tell: in the counters before it starts."""
    for city in ("Austin", "Denver", "Chicago"):
        add_order(conn, tiers[(city, "ga")], quantity=1, amount_cents=14900, status="completed")
    # Each failure code and currency already counted: a label value first seen in
    # Prometheus' first minute counts from there (docs/digest.md).
    for code in ("card_declined", "processing_error"):
        add_order(
            conn,
            tiers[("Denver", "ga")],
            quantity=1,
            amount_cents=14900,
            status="failed",
            failure_code=code,
        )
    refunded = add_order(
        conn, tiers[("Chicago", "ga")], quantity=1, amount_cents=14900, status="completed"
    )
    _refund(conn, refunded, 14900)


def _refund(conn: psycopg.Connection[Any], order: int, cents: int) -> None:
    conn.execute(
        "UPDATE orders SET payment_status = 'refunded', refunded_amount_cents = %s, "
        "refunded_at = now() WHERE id = %s",
        [cents, order],
    )


def _today(conn: psycopg.Connection[Any], tiers: dict[tuple[str, str], int]) -> None:
    """The day's sales the digest must report: one transaction, so one ticker minute."""
    with conn.transaction():
        for city, tier, quantity, cents in (
            ("Denver", "ga", 2, 29800),
            ("Denver", "vip", 1, 39900),
            ("Denver", "ga", 1, 14900),
            ("Chicago", "vip", 2, 79800),
        ):
            add_order(
                conn, tiers[(city, tier)], quantity=quantity, amount_cents=cents, status="completed"
            )
        for code in ("card_declined", "card_declined", "processing_error"):
            add_order(
                conn,
                tiers[("Austin", "ga")],
                quantity=1,
                amount_cents=14900,
                status="failed",
                failure_code=code,
            )
        first = conn.execute("SELECT min(id) FROM orders WHERE paid_at IS NOT NULL").fetchone()
        assert first is not None
        _refund(conn, int(first[0]), 5000)


def _expected(conn: psycopg.Connection[Any], since: Any) -> dict[str, str]:
    """The digest's lines, from SQL over what was written after ``since``."""
    orders, tickets, cents = conn.execute(
        "SELECT count(*), sum(quantity), sum(amount_total_cents) FROM orders WHERE paid_at >= %s",
        [since],
    ).fetchone() or (0, 0, 0)
    cities = conn.execute(
        "SELECT e.city, count(*) FROM orders o JOIN ticket_tiers t ON t.id = o.tier_id "
        "JOIN events e ON e.id = t.event_id WHERE o.paid_at >= %s GROUP BY 1 ORDER BY 2 DESC",
        [since],
    ).fetchall()
    failed = conn.execute(
        "SELECT CASE WHEN failure_code = 'card_declined' THEN 'customer_decline' "
        "ELSE 'system' END, count(*) FROM orders WHERE payment_status = 'failed' "
        "AND created_at >= %s GROUP BY 1",
        [since],
    ).fetchall()
    refunded = conn.execute(
        "SELECT sum(refunded_amount_cents) FROM orders WHERE refunded_at >= %s", [since]
    ).fetchone()
    assert refunded is not None and refunded[0] == 5000  # a later refund of an earlier order
    revenue = cents / 100
    return {
        "Revenue": f"usd {revenue:.2f}",
        "Paid orders": f"{orders}",
        "Tickets": f"{tickets}",
        "Average order value": f"usd {revenue / orders:.2f}",
        "Top cities by orders": ", ".join(f"{city} {n}" for city, n in cities),
        "Payment failures": ", ".join(sorted(f"{kind} {n}" for kind, n in failed)),
        "Refunds": f"usd {refunded[0] / 100:.2f}",
        "SMS sent": "none",
        "SMS failed": "none",
    }


def _lines(body: str) -> dict[str, str]:
    """``- Title: figures (a week earlier: ...)`` -> {title: figures}."""
    out = {}
    text = body.replace("\r\n", "\n")
    for found in re.finditer(r"^- ([^:]+): (.*) \(a week earlier: (.*)\)$", text, re.M):
        out[found[1]] = found[2]
        assert found[3] == "none", f"no history a week ago, yet {found[0]!r}"
    return out


def _wait(pipeline: Pipeline, done: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # bounded by the deadline
        if done():
            return
        time.sleep(0.5)
    tail = "\n".join(pipeline.lines[-40:])
    pytest.fail(f"no {what} within {seconds:g}s:\n{tail}")


DIGEST = "DailyDigest"


def _orders(pipeline: Pipeline, kind: str) -> float | None:
    """``sum(boxoffice:digest:orders)``, or of its day start, as Prometheus has it now."""
    name = "boxoffice:digest_day_start:orders" if kind else "boxoffice:digest:orders"
    answer = requests.get(
        f"{pipeline.prometheus_url}/api/v1/query", params={"query": f"sum({name})"}, timeout=5
    ).json()
    result = answer["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _reports(pipeline: Pipeline, name: str) -> list[Notification]:
    return [n for n in pipeline.notifications() if n.alertname == name]


def test_the_digest_and_the_ticker_reach_their_receivers_with_the_databases_figures(
    pg_schema: str, twilio: TimedTwilio
) -> None:
    with psycopg.connect(pg_schema, autocommit=True) as conn:
        small_catalog(conn)
        tiers = _tiers(conn)
        _baseline(conn, tiers)
        with running_pipeline(
            pg_schema, speed=SPEED, twilio=twilio, reports_after=REPORTS_AFTER
        ) as pipeline:
            # Prometheus starts the digest's day at its first evaluation of the day rules.
            _wait(pipeline, lambda: _orders(pipeline, "day_start") == 4, 20, "day start")
            time.sleep(2)  # two more evaluations: the start is held, not re-taken
            since = conn.execute("SELECT now()").fetchone()
            assert since is not None
            _today(conn, tiers)
            expected = _expected(conn, since[0])
            _wait(pipeline, lambda: _orders(pipeline, "") == 8, 10, "the sales in Prometheus")
            early = [a for a in pipeline.prometheus_alerts() if a["labels"]["alertname"] == DIGEST]
            assert not early, "the digest's slot came before its sales: raise REPORTS_AFTER"

            _wait(pipeline, lambda: bool(_reports(pipeline, "DailyDigest")), 100, "digest")
            _wait(pipeline, lambda: bool(_reports(pipeline, "SalesTicker")), 70, "ticker")
            time.sleep(2)  # the digest's email and Slack arrive together
            delivered = pipeline.notifications()

    digests = [n for n in delivered if n.alertname == "DailyDigest"]
    assert {(n.channel, n.target) for n in digests} == {
        ("slack", "#daily-reports"),
        ("email", "owner@example.com"),
    }, digests
    assert len(digests) == 2, "once per slot and receiver"
    for digest in digests:
        got = _lines(digest.body)
        assert "Payment failures" in got, (digest.channel, digest.body)
        got["Payment failures"] = ", ".join(sorted(got["Payment failures"].split(", ")))
        assert got == expected, digest.body

    tickers = [n for n in delivered if n.alertname == "SalesTicker"]
    assert {(n.channel, n.target) for n in tickers} == {("slack", "#sales-notifications")}
    assert any(
        "4 new paid orders, usd 1644.00; cities: Denver 3, Chicago 1" in n.body for n in tickers
    ), [n.body for n in tickers]

    for n in delivered:
        if n.alertname in ("DailyDigest", "SalesTicker"):
            assert n.channel in ("slack", "email"), n
    assert not [body for _at, _to, body in twilio.arrivals if "Digest" in body or "Ticker" in body]
