"""`boxoffice demo`."""

from __future__ import annotations

import functools

import click

from exporter.cli.options import bad_input_exits_2, config_options, echo_err, load
from exporter.demo.scenarios import SCENARIOS


@click.command()
@config_options
@click.option("--orders", default=100_000, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", "seed_value", default=1, show_default=True)
@click.option(
    "--web.listen-address",
    "listen_address",
    default=":9798",
    show_default=True,
    metavar="[HOST]:PORT",
)
@click.option(
    "--scenario",
    type=click.Choice(list(SCENARIOS)),
    envvar="BOXOFFICE_DEMO_SCENARIO",
    show_envvar=True,
    help="Incident to play on the live sales (docs/demo.md).",
)
@click.option(
    "--speed",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=1, max=3600),
    help="Virtual seconds of the seller's day per real second.",
)
@click.option(
    "--start-after",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Real seconds of normal sales before the incident.",
)
@click.option(
    "--incident-for",
    type=click.FloatRange(min=1),
    help="Real seconds the incident lasts; then it recovers [default: 120, quiet-day 180: "
    "long enough for its alerts at --speed 60].",
)
@click.option(
    "--simulate/--no-simulate",
    default=True,
    show_default=True,
    help="Run the live sales simulator beside the exporter.",
)
@click.option(
    "--prometheus/--no-prometheus",
    "with_prometheus",
    default=None,
    help="Run Prometheus with the demo profile of the rules [default: when on PATH].",
)
@click.option(
    "--prometheus.listen-address",
    "prometheus_listen",
    metavar="HOST:PORT",
    help="Where the demo's Prometheus listens [default: 127.0.0.1:9090, else a free port].",
)
@click.option(
    "--thresholds",
    default="rules/thresholds.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Thresholds whose rules the demo's Prometheus evaluates, waits compressed by --speed.",
)
@click.option(
    "--alertmanager/--no-alertmanager",
    "with_alertmanager",
    default=None,
    help="Run Alertmanager, the SMS bridge (dry run) and local receivers with Prometheus "
    "[default: when on PATH].",
)
@click.option(
    "--routing",
    default="alertmanager/routing.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Routing whose generated Alertmanager configuration the demo runs.",
)
@bad_input_exits_2
def demo(
    config_path: str | None,
    dsn: str | None,
    orders: int,
    seed_value: int,
    listen_address: str,
    scenario: str | None,
    speed: float,
    start_after: float,
    incident_for: float | None,
    simulate: bool,
    with_prometheus: bool | None,
    prometheus_listen: str | None,
    thresholds: str,
    with_alertmanager: bool | None,
    routing: str,
) -> None:
    """Serve live demo sales: a throwaway PostgreSQL (unless --dsn/BOXOFFICE_DSN), seeded, a
    sales simulator writing to it, and the exporter; --scenario plays an incident.

    Ctrl-C stops everything and removes the throwaway data.
    """
    from exporter.demo.run import DemoOptions, run_demo

    options = DemoOptions(
        config_path=config_path,
        dsn=dsn,
        orders=orders,
        seed=seed_value,
        listen_address=listen_address,
        scenario=scenario,
        speed=speed,
        start_after=start_after,
        incident_for=incident_for,
        simulate=simulate,
        with_prometheus=with_prometheus,
        prometheus_listen=prometheus_listen,
        thresholds=thresholds,
        with_alertmanager=with_alertmanager,
        routing=routing,
    )
    run_demo(options, load=functools.partial(load, config_path), echo=echo_err)
