"""Shared fixtures: a real PostgreSQL server, and a fresh database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from exporter.db.throwaway import ThrowawayPostgres

_LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def _reachable(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """Admin DSN of a real server: BOXOFFICE_TEST_DSN, else 127.0.0.1:5432, else a throwaway one."""
    configured = os.environ.get("BOXOFFICE_TEST_DSN")
    if configured:
        yield configured
        return
    if _reachable(_LOCAL_SERVER):
        yield _LOCAL_SERVER
        return
    throwaway = ThrowawayPostgres()
    try:
        yield throwaway.start()
    finally:
        throwaway.stop()


@pytest.fixture
def new_database(pg_server: str) -> Iterator[Callable[[], str]]:
    """Make empty databases on the test server; all are dropped after the test."""
    names: list[str] = []

    def make() -> str:
        name = f"boxoffice_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_server, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        names.append(name)
        return make_conninfo(pg_server, dbname=name)

    try:
        yield make
    finally:
        with psycopg.connect(pg_server, autocommit=True) as admin:
            for name in names:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


@pytest.fixture
def pg_dsn(new_database: Callable[[], str]) -> str:
    """DSN of a new, empty database that is dropped after the test."""
    return new_database()


@pytest.fixture
def pg_schema(pg_dsn: str) -> str:
    """A fresh database with the reference schema created."""
    from exporter.db.schema import create_schema

    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        create_schema(conn)
    return pg_dsn
