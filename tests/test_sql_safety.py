"""Configured SQL is exactly one read-only statement: refused at load, and unable to run twice.

The load check is a table; the runtime guarantee is shown against a real PostgreSQL that
becomes reachable only after the exporter started (so no start-up check could have run).
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from exporter.catalog import CATALOG_BY_NAME
from exporter.config import BoundMetric, ConfigError, load_config
from exporter.config.readonly_sql import sql_problem
from exporter.sources.guard import CardinalityGuard
from exporter.sources.pgconn import make_pool, skip_jit
from exporter.sources.postgres import PostgresSource
from tests.support.exporter import upstream_of, via_proxy
from tests.support.tcpproxy import TcpProxy

ACCEPTED = [
    "SELECT 1 AS value",
    "select 1 as value;",
    "SELECT 1 AS value;;  \n",
    "WITH t AS (SELECT 1 AS v) SELECT v AS value FROM t",
    "VALUES (1)",
    "TABLE events",
    "(SELECT 1 AS value)",
    "SELECT 'a; INSERT INTO x VALUES (1)' AS event, 1 AS value",
    "SELECT 1 AS value -- ; DELETE FROM orders",
    "SELECT 1 AS value /* ; DELETE /* nested */ FROM orders */",
    "SELECT $$; DROP TABLE orders$$ AS event, 1 AS value",
    "SELECT $q$ lo_from_bytea $q$ AS event, 1 AS value",
    "SELECT E'it\\'s; fine' AS event, 1 AS value",
    'SELECT 1 AS "value;"',
    "SELECT count(*) AS value FROM orders WHERE payment_status = 'update'",
    "SELECT 1::int8 AS value FROM pg_sleep(0)",
    "SELECT slug AS lo_event, 1 AS value FROM events",
]

REFUSED = [
    ("", "must not be empty"),
    (" ; ; ", "must not be empty"),
    ("SELECT 1; INSERT INTO orders DEFAULT VALUES", "exactly one statement"),
    ("SELECT 1 AS value; COMMIT; INSERT INTO t VALUES (1); SELECT 1", "exactly one statement"),
    ("SELECT 1 AS value;SELECT 2", "exactly one statement"),
    ("INSERT INTO orders DEFAULT VALUES", "not INSERT"),
    ("COMMIT", "not COMMIT"),
    ("DO $$ BEGIN END $$", "not DO"),
    ("WITH d AS (DELETE FROM orders RETURNING 1) SELECT 1", "DELETE is not allowed"),
    ("SELECT * INTO copy FROM orders", "INTO is not allowed"),
    ("SELECT 1 FROM orders FOR UPDATE", "UPDATE is not allowed"),
    ("SELECT lo_from_bytea(0, 'x') AS value", "lo_from_bytea()"),
    ("SELECT pg_catalog.lo_import('/etc/passwd') AS value", "lo_import()"),
    ("SELECT LO_EXPORT(1, '/tmp/x') AS value", "lo_export()"),
    ('SELECT "lo_create"(0) AS value', "lo_create()"),
    ("SELECT pg_advisory_lock(1) AS value", "pg_advisory_lock()"),
    ("SELECT pg_try_advisory_xact_lock(1) AS value", "pg_try_advisory_xact_lock()"),
    ("SELECT 1 AS value FROM dblink('x', 'DELETE FROM t')", "dblink()"),
    ("SELECT set_config('work_mem', '1TB', false) AS value", "set_config()"),
    ("SELECT nextval('s') AS value", "nextval()"),
    ("SELECT setval('s', 1) AS value", "setval()"),
    ("SELECT query_to_xml('SELECT lo_creat(1)', true, true, '')", "query_to_xml()"),
    ("SELECT pg_read_file('/etc/passwd')", "pg_read_file()"),
    ("SELECT pg_terminate_backend(1)", "pg_terminate_backend()"),
    ("SELECT pg_notify('c', 'x')", "pg_notify()"),
    ("SELECT U&\"\\006Co_from_bytea\"(0, 'x')", "U&"),
    ("SELECT 'unterminated", "unterminated string"),
    ('SELECT "unterminated', "unterminated quoted name"),
    ("SELECT 1 /* unterminated", "unterminated /* comment"),
    ("SELECT $x$ unterminated", "unterminated dollar-quoted"),
]


@pytest.mark.parametrize("sql", ACCEPTED)
def test_one_read_only_statement_is_accepted(sql: str) -> None:
    assert sql_problem(sql) is None


@pytest.mark.parametrize(("sql", "reason"), REFUSED)
def test_anything_else_is_refused_with_a_reason(sql: str, reason: str) -> None:
    problem = sql_problem(sql)
    assert problem is not None and reason in problem


def test_refused_at_load_when_no_database_is_reachable() -> None:
    """Nothing is connected at load: the error comes from the SQL alone, one line, exit 2."""
    env = {
        "BOXOFFICE_DSN": "postgresql://nobody@127.0.0.1:9/none",
        "BOXOFFICE_METRICS_BOXOFFICE_REVENUE_TOTAL_SQL": (
            "SELECT 'eur' AS currency, 1 AS value; INSERT INTO orders DEFAULT VALUES"
        ),
    }
    with pytest.raises(ConfigError) as caught:
        load_config(None, env=env)
    assert str(caught.value) == (
        "environment variable BOXOFFICE_METRICS_BOXOFFICE_REVENUE_TOTAL_SQL: "
        "must be exactly one statement (found a ';' followed by another)"
    )


def test_config_file_sql_with_lo_from_bytea_is_refused(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "boxoffice.yml"
    path.write_text(
        "databases: {default: {dsn: 'postgresql://nobody@127.0.0.1:9/none'}}\n"
        "metrics:\n  boxoffice_revenue_total:\n"
        "    sql: \"SELECT 'eur' AS currency, lo_from_bytea(0, 'x')::int8 AS value\"\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(str(path), env={})
    assert str(caught.value).startswith(f"{path}: metrics.boxoffice_revenue_total.sql: calls ")
    assert "lo_from_bytea()" in str(caught.value)


def _source(dsn: str, sql: str) -> PostgresSource:
    config = load_config(
        None, env={"BOXOFFICE_DSN": dsn, "BOXOFFICE_DATABASES_DEFAULT_CONNECT_TIMEOUT": "1s"}
    )
    spec = CATALOG_BY_NAME["boxoffice_checkout_sessions_open"]
    # Built directly, past the load check: this is the runtime's own line of defence.
    metric = BoundMetric(spec=spec, database="default", sql=sql)
    return PostgresSource(
        databases=config.databases,
        metrics=[metric],
        interval=60,
        timeout=5,
        guard=CardinalityGuard(100),
        pool_factory=make_pool,
    )


def test_a_second_statement_never_runs_even_when_the_database_comes_later(
    new_database: Callable[[], str],
) -> None:
    dsn = new_database()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE victim (n int)")
    proxy = TcpProxy(upstream_of(dsn))
    proxy_dsn = via_proxy(dsn, proxy.port)
    source = _source(
        proxy_dsn,
        "SELECT 1::int8 AS value; COMMIT; INSERT INTO victim VALUES (1); SELECT 1::int8 AS value",
    )
    try:
        assert source.collect().failures[0].reason == "connection"  # not reachable yet
        proxy.start()
        for _ in range(3):
            failures = source.collect().failures
            assert [f.reason for f in failures] == ["query"]
            assert "multiple commands" in failures[0].message
    finally:
        source.close()
        proxy.stop()
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM victim").fetchone() == (0,)


def test_a_data_modifying_cte_never_runs(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE victim (n int)")
    source = _source(
        pg_dsn, "WITH w AS (INSERT INTO victim VALUES (1) RETURNING n) SELECT 1::int8 AS value"
    )
    try:
        (failure,) = source.collect().failures
        assert failure.reason == "query"
    finally:
        source.close()
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM victim").fetchone() == (0,)


def test_identifier_patterns_keep_the_sets_they_were_written_as() -> None:
    """The identifier regexes are written as complements of ASCII characters (they compile in
    well under a millisecond at every start): the same sets as ``[A-Za-z_\\u0080-\\U0010ffff]``
    for the first character and with digits (and ``$`` outside dollar tags) after it."""
    import re

    from exporter.config import readonly_sql

    word = re.compile(r"[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*")
    tag = re.compile(r"\$([A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$")
    characters = [chr(c) for c in range(0x800)] + ["\ud800", "\uffff", "\U0001f600", "\U0010ffff"]
    for c in characters:
        for text in (c, f"a{c}", f"{c}a", f"{c}1", f"${c}$", f"$a{c}$", f"${c}1$", "$$"):
            assert bool(readonly_sql._WORD.fullmatch(text)) == bool(word.fullmatch(text)), text
            assert bool(readonly_sql._DOLLAR_TAG.fullmatch(text)) == bool(tag.fullmatch(text)), text


def test_the_start_up_check_turns_jit_off_for_its_probes_only(pg_dsn: str) -> None:
    # The probes are planned, never run (LIMIT 0): JIT-compiling them cost up to 0.25 s per
    # query at 10 million orders. SET LOCAL ends with the probes' transaction, so the
    # pooled connection's next cycle plans as the server is configured.
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        default = conn.execute("SHOW jit").fetchone()
        with conn.transaction():
            skip_jit(conn)
            assert conn.execute("SHOW jit").fetchone() == ("off",)
        assert conn.execute("SHOW jit").fetchone() == default
    source = _source(pg_dsn, "SELECT (current_setting('jit') = 'off')::int::int8 AS value")
    try:
        assert source.check_queries() == ([], [])
        (family,) = [
            f for f in source.collect().families if f.name == "boxoffice_checkout_sessions_open"
        ]
        jit_off = default == ("off",)
        assert [s.value for s in family.samples] == [float(jit_off)]
    finally:
        source.close()
