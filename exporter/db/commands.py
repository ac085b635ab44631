"""What `boxoffice db` does, shared with the demo: reach the default database, create the
reference schema in it, and seed it while showing progress on the terminal."""

from __future__ import annotations

import sys
from typing import Any

import click
import psycopg

from exporter.config import Config, ConfigError
from exporter.db.schema import create_schema
from exporter.db.seed import seed_database
from exporter.lifecycle import Failure


def connect(config: Config) -> psycopg.Connection[tuple[Any, ...]]:
    """An autocommit connection to the default database; Failure when it cannot be reached."""
    database = config.databases.get("default")
    if database is None:
        raise ConfigError(config.source, "databases.default", "is required for this command")
    try:
        return psycopg.connect(
            database.dsn, autocommit=True, connect_timeout=max(1, round(database.connect_timeout))
        )
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0]
        raise Failure(f"cannot connect to the default database: {first}") from exc


def init_schema(config: Config) -> None:
    """Create the reference schema (tables and indexes) in the default database."""
    with connect(config) as conn:
        create_schema(conn)
    click.echo("reference schema ready")


def seed_with_progress(
    config: Config, *, orders: int, seed: int, replace: bool, inventory_incidents: bool = True
) -> None:
    """Seed the default database with a progress bar on stderr (SeedError: bad input)."""
    with click.progressbar(length=orders, label="seeding orders", file=sys.stderr) as bar:
        summary = seed_database(
            config.databases["default"].dsn,
            orders=orders,
            seed=seed,
            replace=replace,
            progress=bar.update,
            inventory_incidents=inventory_incidents,
        )
    click.echo(
        f"seeded {summary.orders} orders, {summary.events} events in {summary.cities} cities, "
        f"{summary.checkout_sessions} checkout sessions, {summary.webhook_logs} webhook logs"
    )


def seed_default_database(config: Config, *, orders: int, seed: int, replace: bool) -> None:
    """`boxoffice db seed`: a clear error first when the database cannot be reached."""
    with connect(config):
        pass
    seed_with_progress(config, orders=orders, seed=seed, replace=replace)
