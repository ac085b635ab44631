"""What the commands share: the config and log options, loading the configuration with the
flags given, and how an error becomes one line and an exit code."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

import click

from exporter.config import Config, ConfigError, load_config
from exporter.lifecycle import Failure

P = ParamSpec("P")
R = TypeVar("R")

EXIT_BAD_INPUT = 2


def bad_input_exits_2(func: Callable[P, R]) -> Callable[P, R]:
    """Print a ConfigError as one line and exit 2, starting and writing nothing; a Failure
    is one line too, with its own exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"boxoffice: {exc}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except Failure as exc:
            click.echo(f"boxoffice: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper


def config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--config and --dsn."""
    func = click.option(
        "--dsn",
        metavar="URI",
        help="libpq URI of the default database [env: BOXOFFICE_DSN, or BOXOFFICE_DSN_FILE]. "
        "A password given here is visible to other users of the machine (ps, /proc): prefer "
        "BOXOFFICE_DSN_FILE or BOXOFFICE_DSN.",
    )(func)
    return click.option(
        "--config",
        "config_path",
        envvar="BOXOFFICE_CONFIG",
        show_envvar=True,
        type=click.Path(dir_okay=False),
        help="YAML configuration file (see boxoffice.example.yml).",
    )(func)


def log_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--log.level and --log.format."""
    func = click.option(
        "--log.format",
        "log_format",
        type=click.Choice(["logfmt", "json"]),
        help="[env: BOXOFFICE_LOG_FORMAT]",
    )(func)
    return click.option(
        "--log.level",
        "log_level",
        type=click.Choice(["debug", "info", "warning", "error"]),
        help="[env: BOXOFFICE_LOG_LEVEL]",
    )(func)


def load(config_path: str | None, flags: Mapping[str, tuple[Any, str]]) -> Config:
    """The configuration, with the flags that were given overriding file and environment."""
    return load_config(config_path, env=os.environ, flags={k: v for k, v in flags.items() if v[0]})


def echo_err(message: str) -> None:
    """One line on stderr."""
    click.echo(message, err=True)
