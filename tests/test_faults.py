"""Faults: the database down at start, lost, back; slow queries cancelled; secrets kept out."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.support.data import add_event, add_order, add_tier
from tests.support.exporter import (
    config_for,
    names,
    running_exporter,
    scrape,
    scrape_until,
    upstream_of,
    value,
    via_proxy,
    wait_for,
)
from tests.support.tcpproxy import TcpProxy

AUSTIN_GA = {"event": "austin-2027-03-01", "city": "Austin", "tier": "ga"}
BUSINESS = {
    "boxoffice_tickets_sold_total",
    "boxoffice_payments_total",
    "boxoffice_inventory_available_tickets",
}


@pytest.fixture
def sales_db(pg_schema: str) -> str:
    with psycopg.connect(pg_schema, autocommit=True) as conn:
        tier = add_tier(
            conn,
            add_event(conn, "austin-2027-03-01", "Austin"),
            "ga",
            price_cents=9900,
            capacity=100,
        )
        add_order(conn, tier, quantity=2, amount_cents=19800, status="completed")
    return pg_schema


@pytest.fixture
def proxy(sales_db: str) -> Iterator[TcpProxy]:
    proxy = TcpProxy(upstream_of(sales_db))
    yield proxy
    proxy.stop()


def _up(url: str) -> float | None:
    return value(scrape(url), "boxoffice_source_up", source="postgres")


def test_database_down_at_start_then_back(sales_db: str, proxy: TcpProxy) -> None:
    config = config_for(via_proxy(sales_db, proxy.port))
    with running_exporter(config) as (_exporter, url):
        wait_for(
            lambda: value(
                scrape(url), "boxoffice_source_errors_total", source="postgres", reason="connection"
            )
        )
        series = scrape(url)
        assert value(series, "boxoffice_source_up", source="postgres") == 0
        assert not BUSINESS & names(series)
        assert value(series, "boxoffice_build_info", version="0.1.0") == 1

        proxy.start()  # the database comes back: values return without a restart
        series = scrape_until(
            url, lambda s: value(s, "boxoffice_source_up", source="postgres") == 1
        )
        assert value(series, "boxoffice_tickets_sold_total", **AUSTIN_GA) == 2


def test_database_lost_while_running_then_back(sales_db: str, proxy: TcpProxy) -> None:
    proxy.start()
    config = config_for(via_proxy(sales_db, proxy.port))
    with running_exporter(config) as (_exporter, url):
        wait_for(lambda: _up(url) == 1)
        assert names(scrape(url)) >= BUSINESS

        proxy.stop()
        lost_at = time.monotonic()
        wait_for(lambda: _up(url) == 0, timeout=10)
        within = time.monotonic() - lost_at
        series = scrape(url)
        assert not BUSINESS & names(series), "a failed source must withdraw its business series"
        assert value(
            series, "boxoffice_source_errors_total", source="postgres", reason="connection"
        )
        print(f"source_up went to 0 {within:.2f}s after the database was lost (interval 1s)")

        proxy.start()
        wait_for(lambda: _up(url) == 1, timeout=10)
        series = scrape(url)
        assert value(series, "boxoffice_payments_total") == 1


def test_slow_query_is_cancelled_on_the_server(sales_db: str, pg_server: str) -> None:
    slow = "SELECT 1::int8 AS value FROM pg_sleep(30)"
    config = config_for(
        sales_db,
        BOXOFFICE_SOURCES_POSTGRES_INTERVAL="2s",
        BOXOFFICE_SOURCES_POSTGRES_TIMEOUT="300ms",
        BOXOFFICE_METRICS_BOXOFFICE_PAYMENTS_TOTAL_SQL=slow,
    )
    with running_exporter(config) as (_exporter, url):
        series = scrape_until(
            url,
            lambda s: value(
                s, "boxoffice_source_errors_total", source="postgres", reason="timeout"
            ),
        )
        assert value(series, "boxoffice_source_up", source="postgres") == 0
        # The other metrics of the cycle are still computed (each query runs in its own savepoint).
        assert value(series, "boxoffice_tickets_sold_total", **AUSTIN_GA) == 2
        assert "boxoffice_payments_total" not in names(series)
        with psycopg.connect(pg_server, autocommit=True) as admin:
            running = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'boxoffice' "
                "AND state = 'active' AND query LIKE '%pg_sleep(30)%'"
            ).fetchone()
        assert running == (0,), "the server must have cancelled the slow query, not just the client"
