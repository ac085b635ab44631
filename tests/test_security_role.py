"""The database role docs/security.md recommends: it collects everything and writes nothing."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from exporter.app import build_sources
from exporter.db.seed import seed_database
from tests.support.exporter import config_for

DOC = Path(__file__).parent.parent / "docs" / "security.md"


def _recommended_sql(role: str, database: str) -> str:
    (block,) = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.S)
    return block.replace("boxoffice_reader", role).replace("DATABASE shop", f"DATABASE {database}")


def test_the_recommended_role_collects_every_metric_and_can_write_nothing(pg_schema: str) -> None:
    role = f"boxoffice_reader_{uuid.uuid4().hex[:8]}"
    database = str(conninfo_to_dict(pg_schema)["dbname"])
    seed_database(pg_schema, orders=300, seed=7)
    with psycopg.connect(pg_schema, autocommit=True) as admin:
        admin.execute(_recommended_sql(role, database))
    reader = make_conninfo(pg_schema, user=role, password="change-me")
    try:
        config = config_for(reader, BOXOFFICE_SOURCES_POSTGRES_INTERVAL="1h")
        (source,) = build_sources(config)
        try:
            result = source.collect()
        finally:
            source.close()
        assert result.failures == ()
        assert {f.name for f in result.families} >= {
            "boxoffice_tickets_sold",
            "boxoffice_revenue",
            "boxoffice_payments_failed",
            "boxoffice_inventory_available_tickets",
        }
        with psycopg.connect(reader, autocommit=True) as conn:
            for statement, error in [
                (
                    "INSERT INTO events (slug, name, city, starts_at) VALUES ('x','x','x',now())",
                    psycopg.errors.ReadOnlySqlTransaction,
                ),
                ("SELECT customer_email FROM orders", psycopg.errors.InsufficientPrivilege),
                ("SELECT lo_from_bytea(0, 'x')", psycopg.errors.InsufficientPrivilege),
                ("SELECT lo_create(0)", psycopg.errors.InsufficientPrivilege),
                ("CREATE TEMP TABLE t (n int)", psycopg.errors.ReadOnlySqlTransaction),
            ]:
                with pytest.raises(error):
                    conn.execute(statement)
            # What docs/security.md says such a role can still do.
            assert conn.execute("SELECT pg_try_advisory_lock(4242)").fetchone() == (True,)
            assert conn.execute("SELECT set_config('work_mem', '8MB', false)").fetchone()
    finally:
        with psycopg.connect(pg_schema, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
