"""`boxoffice generate`."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from exporter.cli.options import bad_input_exits_2, echo_err


@click.command()
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 when a committed generated file is stale.",
)
@click.option(
    "--root",
    default=".",
    show_default=True,
    envvar="BOXOFFICE_ROOT",
    show_envvar=True,
    type=click.Path(file_okay=False, exists=True),
    help="Repository root holding rules/, docs/ and grafana/ (and later alertmanager/).",
)
@click.option(
    "--thresholds",
    default="rules/thresholds.yaml",
    show_default=True,
    envvar="BOXOFFICE_THRESHOLDS",
    show_envvar=True,
    help="Thresholds file, relative to --root.",
)
@bad_input_exits_2
def generate(check: bool, root: str, thresholds: str) -> None:
    """Generate rules, their promtool tests, runbooks and dashboards from rules/thresholds.yaml."""
    from exporter import bundle

    if not bundle.generate(
        Path(root).resolve(), thresholds, check=check, out=click.echo, err=echo_err
    ):
        sys.exit(1)
