"""`boxoffice db init` and `boxoffice db seed`."""

from __future__ import annotations

import click

from exporter.cli.options import bad_input_exits_2, config_options, load


@click.group()
def db() -> None:
    """Create the reference schema and fill it with demo sales."""


@db.command("init")
@config_options
@bad_input_exits_2
def db_init(config_path: str | None, dsn: str | None) -> None:
    """Create the reference schema (tables and indexes) in the default database."""
    config = load(config_path, {"databases.default.dsn": (dsn, "--dsn")})
    from exporter.db.commands import init_schema

    init_schema(config)


@db.command("seed")
@config_options
@click.option("--orders", default=200_000, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", "seed_value", default=1, show_default=True, help="Same seed, same data.")
@click.option("--replace", is_flag=True, help="Empty the reference tables first.")
@bad_input_exits_2
def db_seed(
    config_path: str | None, dsn: str | None, orders: int, seed_value: int, replace: bool
) -> None:
    """Fill the reference schema with a year of realistic sales."""
    config = load(config_path, {"databases.default.dsn": (dsn, "--dsn")})
    from exporter.db.commands import seed_default_database

    seed_default_database(config, orders=orders, seed=seed_value, replace=replace)
