"""The `boxoffice` command line: one module per command, each parsing its options and
calling one function of the package."""

from __future__ import annotations

import click

from exporter import __version__
from exporter.cli.ack import ack
from exporter.cli.check import check
from exporter.cli.db import db
from exporter.cli.demo import demo
from exporter.cli.generate import generate
from exporter.cli.serve import serve
from exporter.cli.sms_bridge import sms_bridge

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="boxoffice")
def main() -> None:
    """boxoffice: Prometheus exporter and alerting bundle for ticket sellers.

    Every option also reads an environment variable (BOXOFFICE_...); settings in the
    config file can be overridden the same way, e.g. BOXOFFICE_SOURCES_POSTGRES_INTERVAL=15s.
    """


for _command in (serve, check, db, demo, generate, sms_bridge, ack):
    main.add_command(_command)
