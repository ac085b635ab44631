"""`boxoffice sms-bridge`."""

from __future__ import annotations

import os

import click

from exporter.cli.options import bad_input_exits_2, echo_err, log_options


@click.command("sms-bridge")
@click.option(
    "--config",
    "config_path",
    envvar="BOXOFFICE_CONFIG",
    show_envvar=True,
    type=click.Path(dir_okay=False),
    help="YAML configuration file; the bridge reads its `sms_bridge` section.",
)
@click.option(
    "--web.listen-address",
    "listen_address",
    metavar="[HOST]:PORT",
    help="Address to serve on (default :9799) [env: BOXOFFICE_SMS_BRIDGE_LISTEN_ADDRESS].",
)
@click.option(
    "--web.config.file",
    "web_config_file",
    type=click.Path(dir_okay=False),
    help="exporter-toolkit web config: basic auth users, TLS "
    "[env: BOXOFFICE_SMS_BRIDGE_WEB_CONFIG_FILE].",
)
@click.option(
    "--dry-run",
    is_flag=True,
    default=None,
    help="Log each SMS instead of sending it [env: BOXOFFICE_SMS_BRIDGE_DRY_RUN].",
)
@click.option(
    "--unauthenticated",
    is_flag=True,
    default=None,
    help="Accept webhooks without credentials [env: BOXOFFICE_SMS_BRIDGE_UNAUTHENTICATED].",
)
@log_options
@bad_input_exits_2
def sms_bridge(
    config_path: str | None,
    listen_address: str | None,
    web_config_file: str | None,
    dry_run: bool | None,
    unauthenticated: bool | None,
    log_level: str | None,
    log_format: str | None,
) -> None:
    """Receive Alertmanager webhooks at /alerts/<group>; send one SMS per recipient via Twilio.

    Needs credentials for its callers (bearer token or basic auth) unless --unauthenticated;
    see docs/sms-bridge.md.
    """
    from exporter.smsbridge.config import load_bridge_config
    from exporter.smsbridge.service import run_bridge

    flags = {
        "sms_bridge.listen_address": (listen_address, "--web.listen-address"),
        "sms_bridge.web_config_file": (web_config_file, "--web.config.file"),
        "sms_bridge.dry_run": (dry_run, "--dry-run"),
        "sms_bridge.unauthenticated": (unauthenticated, "--unauthenticated"),
        "log.level": (log_level, "--log.level"),
        "log.format": (log_format, "--log.format"),
    }
    config = load_bridge_config(
        config_path, env=os.environ, flags={k: v for k, v in flags.items() if v[0] is not None}
    )
    run_bridge(config, address=listen_address or config.settings.listen_address, echo=echo_err)
