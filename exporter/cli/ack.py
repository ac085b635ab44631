"""`boxoffice ack`."""

from __future__ import annotations

import getpass
import os

import click

from exporter.cli.options import bad_input_exits_2


@click.command("ack")
@click.argument("target", metavar="CODE_OR_ALERT")
@click.option(
    "--config",
    "config_path",
    envvar="BOXOFFICE_CONFIG",
    show_envvar=True,
    type=click.Path(dir_okay=False),
    help="YAML configuration file; its `sms_bridge` section names the store and Alertmanager.",
)
@bad_input_exits_2
def ack(target: str, config_path: str | None) -> None:
    """Acknowledge a page: silence its higher escalation tiers, as an SMS reply ACK does.

    CODE_OR_ALERT is the code the page SMS carries, or an alert name (its latest page).
    """
    from exporter.smsbridge.config import load_bridge_config
    from exporter.smsbridge.service import acknowledge

    config = load_bridge_config(config_path, env=os.environ)
    page, silence = acknowledge(config, target, by=f"terminal:{getpass.getuser()}")
    name = page.labels.get("alertname", "the alert")
    click.echo(
        f"ACK {page.code}: {name} will not escalate past tier {page.tier} "
        f"(silence {silence}, {float(config.settings.ack_duration) / 60:.0f} min)."
    )
