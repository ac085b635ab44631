"""The reference schema (SPEC 4.1) that the default query pack targets."""

from __future__ import annotations

from importlib import resources

import psycopg


def schema_sql() -> str:
    """The DDL of the reference schema, with the indexes the default queries need."""
    return resources.files("exporter.db").joinpath("schema.sql").read_text(encoding="utf-8")


def create_schema(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Create the reference tables and indexes; existing ones are left as they are."""
    with conn.transaction():
        conn.execute(schema_sql().encode())
