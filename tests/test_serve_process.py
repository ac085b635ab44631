"""`boxoffice serve` as a real process: config from the environment, basic auth, secrets, SIGTERM."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import psycopg
import pytest
import requests
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from exporter.app import build_sources
from tests.support.data import add_event, add_order, add_tier
from tests.support.exporter import (
    config_for,
    free_port,
    run_boxoffice,
    scrape_until,
    upstream_of,
    value,
    via_proxy,
    wait_for,
)
from tests.support.tcpproxy import TcpProxy

DB_PASSWORD = "Db-Pa55word-never-shown"
WEB_PASSWORD = "Scrape-Pa55word-never-shown"


def _with_password(dsn: str) -> str:
    # The test server trusts local connections, so the password is carried but not checked:
    # exactly what lets us see whether it leaks anywhere.
    params = conninfo_to_dict(dsn)
    params["password"] = DB_PASSWORD
    return make_conninfo(**params)


@pytest.fixture
def served(
    pg_schema: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], str, Path, TcpProxy]]:
    with psycopg.connect(pg_schema, autocommit=True) as conn:
        tier = add_tier(
            conn,
            add_event(conn, "denver-2027-02-02", "Denver"),
            "vip",
            price_cents=29900,
            capacity=20,
        )
        add_order(conn, tier, quantity=1, amount_cents=29900, status="completed")
    proxy = TcpProxy(upstream_of(pg_schema))  # not started: the database is down at start
    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(WEB_PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    port = free_port()
    stderr = tmp_path / "stderr.log"
    env = {
        **os.environ,
        "BOXOFFICE_DSN": _with_password(via_proxy(pg_schema, proxy.port)),
        "BOXOFFICE_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "BOXOFFICE_WEB_CONFIG_FILE": str(web),
        "BOXOFFICE_SOURCES_POSTGRES_INTERVAL": "1s",
        "BOXOFFICE_SOURCES_POSTGRES_TIMEOUT": "1s",
        "BOXOFFICE_DATABASES_DEFAULT_CONNECT_TIMEOUT": "1s",
        "BOXOFFICE_LOG_LEVEL": "debug",
    }
    with stderr.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "exporter", "serve"], env=env, stderr=err, stdout=err, text=True
        )
    try:
        yield process, f"http://127.0.0.1:{port}", stderr, proxy
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        proxy.stop()


def test_serve_process_end_to_end(
    served: tuple[subprocess.Popen[str], str, Path, TcpProxy],
) -> None:
    process, url, stderr, proxy = served
    auth = ("prometheus", WEB_PASSWORD)

    def healthy() -> bool:
        try:
            return requests.get(f"{url}/healthz", auth=auth, timeout=2).status_code == 200
        except requests.ConnectionError:
            assert process.poll() is None, stderr.read_text()
            return False

    wait_for(healthy, timeout=20)
    assert requests.get(f"{url}/metrics", timeout=5).status_code == 401
    assert (
        requests.get(f"{url}/metrics", auth=("prometheus", "wrong"), timeout=5).status_code == 401
    )

    down = scrape_until(
        url,
        lambda s: value(s, "boxoffice_source_errors_total", source="postgres", reason="connection"),
        auth=auth,
    )
    assert value(down, "boxoffice_source_up", source="postgres") == 0

    proxy.start()
    series = scrape_until(
        url, lambda s: value(s, "boxoffice_source_up", source="postgres") == 1, auth=auth
    )
    assert value(series, "boxoffice_revenue_total", currency="usd") == 299.0
    assert (
        value(
            series,
            "boxoffice_tickets_sold_total",
            event="denver-2027-02-02",
            city="Denver",
            tier="vip",
        )
        == 1
    )

    landing = requests.get(f"{url}/", auth=auth, timeout=5)
    assert landing.status_code == 200
    assert "postgres" in landing.text
    assert 'href="/metrics"' in landing.text
    metrics_text = requests.get(f"{url}/metrics", auth=auth, timeout=5).text

    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    log = stderr.read_text()
    assert "level=info" in log
    assert "connection" in log  # the outage was logged...
    for secret in (DB_PASSWORD, WEB_PASSWORD):  # ...without a secret anywhere
        assert secret not in log
        assert secret not in metrics_text
        assert secret not in landing.text


def test_serve_refuses_query_that_does_not_fit(pg_schema: str) -> None:
    env = {
        "BOXOFFICE_DSN": pg_schema,
        "BOXOFFICE_METRICS_BOXOFFICE_REVENUE_TOTAL_SQL": "SELECT currency AS cur, sum(amount_total_cents) AS value FROM orders GROUP BY 1",
    }
    result = run_boxoffice("serve", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "boxoffice: configuration: metrics.boxoffice_revenue_total.sql: query returns columns (cur, value); "
        "expected (currency, value) (database 'default')"
    )


def test_serve_refuses_a_database_without_the_schema(pg_dsn: str) -> None:
    result = run_boxoffice("check", env={"BOXOFFICE_DSN": pg_dsn})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        'boxoffice: configuration: metrics.boxoffice_tickets_sold_total.sql: relation "ticket_tiers" does not exist '
        "(database 'default'); run `boxoffice db init`, or override the SQL"
    )


def test_serve_reports_a_taken_address(pg_schema: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_boxoffice(
            "serve",
            env={"BOXOFFICE_DSN": pg_schema, "BOXOFFICE_WEB_LISTEN_ADDRESS": f"127.0.0.1:{port}"},
        )
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1]
        == f"boxoffice: cannot serve on 127.0.0.1:{port}: Address already in use"
    )


def test_queries_run_read_only(pg_schema: str) -> None:
    with psycopg.connect(pg_schema, autocommit=True) as conn:
        tier = add_tier(
            conn, add_event(conn, "reno-2027-05-05", "Reno"), "ga", price_cents=100, capacity=5
        )
        add_order(conn, tier, quantity=1, amount_cents=100, status="completed")
    sneaky = "WITH gone AS (DELETE FROM orders RETURNING 1) SELECT count(*) AS value FROM gone"
    env = {"BOXOFFICE_DSN": pg_schema, "BOXOFFICE_METRICS_BOXOFFICE_PAYMENTS_TOTAL_SQL": sneaky}
    result = run_boxoffice("check", env=env)
    assert result.returncode == 2
    # Refused at load, before any database is reached (issue 16).
    assert result.stderr.strip() == (
        "boxoffice: environment variable BOXOFFICE_METRICS_BOXOFFICE_PAYMENTS_TOTAL_SQL: "
        "must only read: DELETE is not allowed"
    )
    # Run for real, past the load check: the server-side cursor refuses it.
    config = config_for(pg_schema)
    metrics = tuple(
        dataclasses.replace(m, sql=sneaky) if m.spec.name == "boxoffice_payments_total" else m
        for m in config.metrics
    )
    (source,) = build_sources(dataclasses.replace(config, metrics=metrics))
    try:
        failures = source.collect().failures
    finally:
        source.close()
    assert [(f.reason, f.message) for f in failures] == [
        (
            "query",
            "boxoffice_payments_total: DECLARE CURSOR must not contain data-modifying "
            "statements in WITH",
        )
    ]
    with psycopg.connect(pg_schema) as conn:
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (1,)
