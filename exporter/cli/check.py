"""`boxoffice check`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from exporter.cli.options import bad_input_exits_2, config_options, echo_err, load


@click.command()
@config_options
@click.option(
    "--seqscan-rows",
    default=10_000,
    show_default=True,
    type=click.IntRange(min=0),
    help="Report statements that would scan a table of at least this many rows sequentially.",
)
@click.option(
    "--root",
    default=".",
    show_default=True,
    envvar="BOXOFFICE_ROOT",
    show_envvar=True,
    type=click.Path(file_okay=False, exists=True),
    help="Repository root: its rules/thresholds.yaml and generated output are checked too.",
)
@bad_input_exits_2
def check(config_path: str | None, dsn: str | None, seqscan_rows: int, root: str) -> None:
    """Validate the configuration and every query against the databases reachable now.

    Each statement a collection cycle runs is also planned with EXPLAIN: one that would
    read a large table sequentially is reported with the index that fixes it (exit 1).
    Under --root, rules/thresholds.yaml and alertmanager/routing.yaml are validated, the
    generated files must be current, promtool (when installed) checks the rules and amtool
    (when installed) checks alertmanager.yml and runs its route tests; with an sms_bridge
    section in the configuration, every SMS group routing.yaml names must be one of its
    groups (exit 1 on a problem).
    """
    # Bad configuration is one line and exit 2 before anything else is printed.
    config = load(config_path, {"databases.default.dsn": (dsn, "--dsn")})
    from exporter.check import check_all

    if not check_all(
        config, seqscan_rows=seqscan_rows, root=Path(root).resolve(), out=click.echo, err=echo_err
    ):
        sys.exit(1)
