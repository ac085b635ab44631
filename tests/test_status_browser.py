"""The status page in a real browser at a phone's size, against a real stack: a seeded
PostgreSQL, `boxoffice serve`, a Prometheus evaluating the generated rules and an
Alertmanager holding one firing alert (with hostile text in its summary).

The figures the page shows must be Prometheus' answers to the same expressions at the
instant the page names, today's must be the database's (paid since local midnight), the
page must not scroll sideways at 375 px, and the alert's text must show as text. Sixty of
the seeded orders are moved to today, and the counters the page reads are backfilled from
the database at every 5-minute step since before local midnight: what a Prometheus that ran
all day would hold.

BOXOFFICE_STATUS_SCREENSHOT=docs/img/status-page.png also writes the README's screenshot.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import yaml

from exporter.db.seed import seed_database
from exporter.generate.rules.recording import local_offset
from exporter.generate.thresholds import load_thresholds
from exporter.web.status_page import EXPRESSIONS
from tests.support.alertmanager import post_alerts, running_alertmanager
from tests.support.browser import PHONE, dump_dom, measuring_page, screenshot
from tests.support.exporter import free_port, wait_for
from tests.support.prometheus import Prometheus, Sample, backfill, running_prometheus

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = '<img src=x onerror="alert(1)"> & <script>alert(2)</script> "quoted"'
THRESHOLDS = load_thresholds(str(ROOT / "rules" / "thresholds.yaml"))
# The counters the page's Prometheus figures read.
COUNTERS = ("boxoffice_revenue_total", "boxoffice_orders_paid_total")


def _scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(f"{url}/metrics", timeout=5).text
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def _local_midnight(now: float) -> float:
    """Unix time of the seller's last local midnight (thresholds.yaml's time zone)."""
    offset = local_offset(THRESHOLDS, now)
    return math.floor((now + offset) / 86400) * 86400 - offset


def _sales_today(conn: psycopg.Connection[Any], now: float) -> None:
    """Move 60 paid, unrefunded orders to today (the seed spreads sales over a year)."""
    midnight = _local_midnight(now)
    span = max(60.0, now - 120 - midnight)
    ids = conn.execute(
        "SELECT id FROM orders WHERE paid_at IS NOT NULL AND refunded_at IS NULL "
        "ORDER BY id LIMIT 60"
    ).fetchall()
    for i, (order_id,) in enumerate(ids):
        paid = min(now - 120, midnight + span * (i + 0.5) / len(ids))
        conn.execute(
            "UPDATE orders SET paid_at = to_timestamp(%s), "
            "created_at = to_timestamp(%s) - interval '1 minute' WHERE id = %s",
            [paid, paid, order_id],
        )


_PAID_ORDERS = """
SELECT extract(epoch FROM o.paid_at)::float8, e.city, t.tier,
       lower(COALESCE(NULLIF(o.payment_method, ''), 'unknown')), o.is_member::text,
       lower(o.currency), o.amount_total_cents
FROM orders o JOIN ticket_tiers t ON t.id = o.tier_id JOIN events e ON e.id = t.event_id
WHERE o.paid_at IS NOT NULL"""


def _history(dsn: str, instance: str, now: float) -> list[Sample]:
    """The page's counters as the database had them at each 5-minute step since a little
    before local midnight (what a Prometheus running all day would hold), and the local
    clock rules over the same time."""
    with psycopg.connect(dsn) as conn:
        paid = conn.execute(_PAID_ORDERS).fetchall()
    first = math.floor((_local_midnight(now) - 3600) / 300) * 300
    times = [float(t) for t in range(int(first), int(now - 30), 300)]
    job = {"job": "boxoffice", "instance": instance}
    samples: list[Sample] = []
    for t in times:
        revenue: dict[str, float] = {}
        orders: dict[tuple[str, ...], float] = {}
        for at, city, tier, method, member, currency, cents in paid:
            if at <= t:
                revenue[currency] = revenue.get(currency, 0.0) + cents / 100
                key = (city, tier, method, member, currency)
                orders[key] = orders.get(key, 0.0) + 1
        samples += [
            Sample(name="boxoffice_revenue_total", labels={"currency": c, **job}, value=v, at=t)
            for c, v in revenue.items()
        ]
        samples += [
            Sample(
                name="boxoffice_orders_paid_total",
                labels={
                    **dict(
                        zip(
                            ("city", "tier", "payment_method", "member", "currency"), k, strict=True
                        )
                    ),
                    **job,
                },
                value=v,
                at=t,
            )
            for k, v in orders.items()
        ]
        offset = float(local_offset(THRESHOLDS, t))
        samples.append(
            Sample(name="boxoffice:timezone_offset_seconds", labels={}, value=offset, at=t)
        )
        day = float(math.floor((t + offset) / 86400))
        samples.append(Sample(name="boxoffice:local_day", labels={}, value=day, at=t))
    return samples


def _database_today(dsn: str) -> tuple[dict[str, float], int]:
    """Revenue per currency and paid orders since local midnight, from the database."""
    midnight = _local_midnight(time.time())
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT upper(currency), sum(amount_total_cents) / 100.0, count(*) FROM orders "
            "WHERE paid_at > to_timestamp(%s) GROUP BY 1",
            [midnight],
        ).fetchall()
    return {c: float(v) for c, v, _n in rows}, sum(int(n) for _c, _v, n in rows)


@pytest.fixture
def stack(pg_schema: str, tmp_path: Path) -> Iterator[tuple[str, Prometheus, str]]:
    seed_database(pg_schema, orders=800, seed=7)
    with psycopg.connect(pg_schema, autocommit=True) as conn:
        _sales_today(conn, time.time())
    exporter_port, prometheus_port = free_port(), free_port()
    (tmp_path / "am").mkdir()
    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(
        yaml.safe_dump({"route": {"receiver": "none"}, "receivers": [{"name": "none"}]})
    )
    with running_alertmanager(am_config, tmp_path / "am") as alertmanager:
        post_alerts(
            alertmanager,
            [
                {
                    "labels": {"alertname": "StatusPageProbe", "severity": "critical"},
                    "annotations": {"summary": HOSTILE},
                }
            ],
        )
        env = {
            **os.environ,
            "BOXOFFICE_DSN": pg_schema,
            "BOXOFFICE_WEB_LISTEN_ADDRESS": f"127.0.0.1:{exporter_port}",
            # Not faster: on a loaded machine a 1 s cycle can overrun its freshness window
            # (two intervals plus the timeout), the exporter then withdraws the series and
            # Prometheus marks them stale, and a figure goes blank for a moment.
            "BOXOFFICE_SOURCES_POSTGRES_INTERVAL": "5s",
            "BOXOFFICE_STATUS_PAGE_PROMETHEUS_URL": f"http://127.0.0.1:{prometheus_port}",
            "BOXOFFICE_STATUS_PAGE_ALERTMANAGER_URL": alertmanager,
            "BOXOFFICE_STATUS_PAGE_TIMEOUT": "5s",
        }
        log = (tmp_path / "exporter.log").open("w")
        exporter = subprocess.Popen(
            [sys.executable, "-m", "exporter", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{exporter_port}"
        try:

            def collected() -> list[tuple[str, dict[str, str], float]] | None:
                if exporter.poll() is not None:
                    raise AssertionError((tmp_path / "exporter.log").read_text()[-3000:])
                try:
                    scraped = _scrape(url)
                except requests.RequestException:
                    return None
                names = {name for name, _labels, _value in scraped}
                return scraped if {*COUNTERS, "boxoffice_checkout_sessions_open"} <= names else None

            wait_for(collected, timeout=30, interval=0.3)
            instance = url.removeprefix("http://")
            backfill(_history(pg_schema, instance, time.time()), tmp_path / "data")
            rules = [str(p) for p in sorted((ROOT / "rules" / "generated").glob("*.yml"))]
            with running_prometheus(
                tmp_path, {"boxoffice": instance}, rules, port=prometheus_port
            ) as prometheus:
                yield url, prometheus, pg_schema
        finally:
            exporter.terminate()
            try:
                exporter.wait(timeout=10)
            except subprocess.TimeoutExpired:
                exporter.kill()
                exporter.wait(timeout=10)
            log.close()


def _query(prometheus: Prometheus, expr: str, at: int) -> list[tuple[str, float]]:
    answer = requests.get(
        f"{prometheus.url}/api/v1/query", params={"query": expr, "time": str(at)}, timeout=10
    ).json()
    assert answer["status"] == "success", answer
    return [
        (r["metric"].get("currency", ""), float(r["value"][1])) for r in answer["data"]["result"]
    ]


def _shown(dom: str, key: str) -> str:
    found = re.search(rf'data-figure="{key}">(.*?)</dd>', dom, re.DOTALL)
    assert found, f"{key} not on the page"
    return unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip()


def _money(text: str) -> dict[str, float]:
    found = re.findall(r"(-?[\d,]+\.\d\d) ([A-Z]+)", text)
    assert found, text
    return {currency: float(amount.replace(",", "")) for amount, currency in found}


def _figures_ready(prometheus: Prometheus) -> bool:
    # Scraped (not only backfilled) by the instant the page will ask about.
    at = int(time.time()) - 5
    exprs = [*EXPRESSIONS.values(), "max(boxoffice_checkout_sessions_open)"]
    return all(_query(prometheus, expr, at) for expr in exprs)


def test_status_page_on_a_phone_shows_prometheus_figures(
    stack: tuple[str, Prometheus, str], tmp_path: Path
) -> None:
    url, prometheus, dsn = stack
    # The recording rules need an evaluation, and the page asks for Prometheus' answer as
    # of a few seconds ago.
    wait_for(lambda: _figures_ready(prometheus), timeout=40, interval=1)
    time.sleep(1)
    dom = dump_dom(f"{url}/status")

    found = re.search(r'data-at="(\d+)"', dom)
    assert found, dom[:2000]
    at = int(found.group(1))
    for key in ("revenue_today", "revenue_hour"):
        expected = {c.upper(): round(v, 2) for c, v in _query(prometheus, EXPRESSIONS[key], at)}
        assert expected and sum(expected.values()) > 0, (key, expected)
        assert _money(_shown(dom, key)) == pytest.approx(expected, abs=0.006), key
    for key in ("orders_today", "orders_hour"):
        answer = _query(prometheus, EXPRESSIONS[key], at)
        assert len(answer) == 1, (key, at, answer, _shown(dom, key))
        value = answer[0][1]
        assert value > 0, key
        assert int(_shown(dom, key).replace(",", "")) == round(value), key

    # Today's figures are also the database's: paid since local midnight.
    revenue, orders = _database_today(dsn)
    assert _money(_shown(dom, "revenue_today")) == pytest.approx(revenue, abs=0.006)
    assert int(_shown(dom, "orders_today").replace(",", "")) == orders

    # From the exporter's own snapshot; the database does not change during the test.
    (open_now,) = _query(prometheus, "max(boxoffice_checkout_sessions_open)", at)
    assert int(_shown(dom, "open_checkouts").replace(",", "")) == round(open_now[1])
    ratios = requests.get(
        f"{prometheus.url}/api/v1/query",
        params={
            "query": "boxoffice_inventory_available_tickets / "
            "(boxoffice_inventory_capacity_tickets > 0)",
            "time": str(at),
        },
        timeout=10,
    ).json()["data"]["result"]
    lowest = sorted(float(r["value"][1]) for r in ratios)
    low = dom.split('id="low"', 1)[1].split("</table>", 1)[0]
    shown_ratios = re.findall(r'<td class="n[^"]*">([^<]*%|oversold)</td>', low)
    assert 0 < len(shown_ratios) <= 5
    assert shown_ratios == [
        "oversold" if r < 0 else f"{100 * r:.0f}%" for r in lowest[: len(shown_ratios)]
    ]

    # The firing alert, its hostile summary shown as text and not run.
    assert "StatusPageProbe" in dom and 'data-alerts="1"' in dom
    assert "&lt;img src=x" in dom and "<img" not in dom and "alert(2)" in dom
    assert "<script" not in dom
    # Each source's health.
    assert re.search(r'<th scope="row">postgres</th><td class="up">up</td>', dom)

    # No sideways scrolling at 375 px.
    page = requests.get(f"{url}/status", timeout=10).text
    measuring = tmp_path / "measure.html"
    measuring.write_text(measuring_page(page))
    measured = dump_dom(measuring.as_uri())
    widths = re.search(
        r'id="scroll-width">(\d+)</output><output id="client-width">(\d+)</output>', measured
    )
    assert widths, measured[-1000:]
    scroll_width, client_width = int(widths.group(1)), int(widths.group(2))
    assert client_width <= PHONE[0]
    assert scroll_width <= client_width, (scroll_width, client_width)

    if target := os.environ.get("BOXOFFICE_STATUS_SCREENSHOT"):
        # Taller than the phone's screen, so the README shows the whole page.
        screenshot(f"{url}/status", Path(target), height=1500)
