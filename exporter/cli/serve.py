"""`boxoffice serve`."""

from __future__ import annotations

import click

from exporter.cli.options import bad_input_exits_2, config_options, load, log_options


@click.command()
@config_options
@click.option(
    "--web.listen-address",
    "listen_address",
    metavar="[HOST]:PORT",
    help="Address to serve on (default :9798) [env: BOXOFFICE_WEB_LISTEN_ADDRESS].",
)
@click.option(
    "--web.config.file",
    "web_config_file",
    type=click.Path(dir_okay=False),
    help="exporter-toolkit web config: basic auth, TLS [env: BOXOFFICE_WEB_CONFIG_FILE].",
)
@log_options
@bad_input_exits_2
def serve(
    config_path: str | None,
    dsn: str | None,
    listen_address: str | None,
    web_config_file: str | None,
    log_level: str | None,
    log_format: str | None,
) -> None:
    """Run the exporter: /metrics, /healthz and a landing page at /."""
    config = load(
        config_path,
        {
            "databases.default.dsn": (dsn, "--dsn"),
            "web.listen_address": (listen_address, "--web.listen-address"),
            "web.config_file": (web_config_file, "--web.config.file"),
            "log.level": (log_level, "--log.level"),
            "log.format": (log_format, "--log.format"),
        },
    )
    from exporter.app import run_exporter

    run_exporter(config)
