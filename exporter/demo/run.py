"""`boxoffice demo`: a database (throwaway unless one is given), seeded; the exporter serving it;
and beside it the live sales, the local Twilio API, Prometheus and Alertmanager when wanted.

Everything started here is stopped again on the way out, whatever ends the demo.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exporter.app import run_exporter
from exporter.config import Config, ConfigError
from exporter.config.listen import parse_listen_address
from exporter.db.commands import connect, seed_with_progress
from exporter.db.schema import create_schema
from exporter.db.throwaway import ThrowawayPostgres
from exporter.demo.live import LiveOptions, LiveSimulator
from exporter.demo.local_twilio import Flags
from exporter.demo.stack import Companions, PrometheusStack, alertmanager_wanted, prometheus_wanted

# Seconds from the demo's start to its digest slot: the owner sees one arrive (docs/demo.md).
REPORTS_AFTER = 120.0

Echo = Callable[[str], None]
Load = Callable[[Flags], Config]  # the configuration with these command-line overrides


@dataclass(frozen=True, kw_only=True)
class DemoOptions:
    """What `boxoffice demo` was asked for (its options, by the same names)."""

    config_path: str | None
    dsn: str | None
    orders: int
    seed: int
    listen_address: str
    scenario: str | None
    speed: float
    start_after: float
    incident_for: float | None
    simulate: bool
    with_prometheus: bool | None
    prometheus_listen: str | None
    thresholds: str
    with_alertmanager: bool | None
    routing: str


def run_demo(options: DemoOptions, *, load: Load, echo: Echo) -> None:
    """Run the demo until SIGTERM or SIGINT; the throwaway database is removed afterwards."""
    if options.scenario and not options.simulate:
        raise ConfigError(
            "boxoffice demo", "--scenario", "needs the simulator (drop --no-simulate)"
        )
    dsn = options.dsn
    given = dsn or os.environ.get("BOXOFFICE_DSN") or os.environ.get("BOXOFFICE_DSN_FILE")
    throwaway: ThrowawayPostgres | None = None
    if not given and not options.config_path:
        throwaway = ThrowawayPostgres()
        echo(f"starting a throwaway PostgreSQL in {throwaway.directory}")
        dsn = throwaway.start()
    companions = Companions()
    try:
        _run(options, dsn, companions, load=load, echo=echo)
    finally:
        companions.stop()
        if throwaway is not None:
            throwaway.stop()
            echo("throwaway PostgreSQL removed")


def _run(
    options: DemoOptions, dsn: str | None, companions: Companions, *, load: Load, echo: Echo
) -> None:
    flags: Flags = {
        "databases.default.dsn": (dsn, "--dsn"),
        "web.listen_address": (options.listen_address, "--web.listen-address"),
    }
    if not options.config_path and "BOXOFFICE_SOURCES_POSTGRES_INTERVAL" not in os.environ:
        # The demo's Prometheus scrapes every second: collect as often.
        flags["sources.postgres.interval"] = ("1s", "the demo's default")
    try:
        host, port = parse_listen_address(options.listen_address)
    except ValueError:
        companions.twilio.configure(load, flags)  # refuses it in the configuration's words
        raise
    shown = f"[{host}]" if ":" in host else host
    target = f"{shown or '127.0.0.1'}:{port}"
    companions.stack = _prometheus_stack(options, target, echo)
    if companions.stack is not None:
        # The status page reads today's figures and the firing alerts from the demo's own.
        flags["status_page.prometheus_url"] = (companions.stack.prometheus_url, "the demo")
        if companions.stack.alertmanager_url is not None:
            flags["status_page.alertmanager_url"] = (companions.stack.alertmanager_url, "the demo")
    config = companions.twilio.configure(load, flags)
    with connect(config) as conn:
        create_schema(conn)
        row = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM orders)").fetchone()
        empty = bool(row and row[0])
        if not empty:
            echo("the database already has orders; serving them as they are")
    if empty:
        # A scenario's alerts should stand out: no sold-out or oversold tiers to start with.
        calm = options.scenario is not None
        seed_with_progress(
            config,
            orders=options.orders,
            seed=options.seed,
            replace=False,
            inventory_incidents=not calm,
        )
    if companions.stack is not None:
        companions.stack.replies = companions.twilio.api  # None: the config's own Twilio
    if options.simulate:
        lasts = options.incident_for or (180.0 if options.scenario == "quiet-day" else 120.0)
        live = LiveOptions(
            scenario=options.scenario,
            speed=options.speed,
            start_after=options.start_after,
            incident_for=lasts,
            seed=options.seed,
        )
        companions.live = LiveSimulator(
            config.databases["default"].dsn, live, echo, sms=companions.twilio.gateway
        )

    def started() -> None:
        base = f"http://{shown or 'localhost'}:{port}"
        echo(f"exporter ready: {base}/metrics (Ctrl-C to stop)")
        if config.settings.status_page.enabled:
            echo(f"status page: {base}/status")
        companions.start()

    run_exporter(config, on_started=started)


def _prometheus_stack(options: DemoOptions, target: str, echo: Echo) -> PrometheusStack | None:
    """Prometheus (with Alertmanager and the receivers) when wanted and installed."""
    thresholds, routing = Path(options.thresholds), Path(options.routing)
    if not prometheus_wanted(options.with_prometheus, thresholds, echo):
        return None
    routed = alertmanager_wanted(options.with_alertmanager, routing, echo)
    return PrometheusStack(
        thresholds,
        options.speed,
        target,
        echo,
        listen=options.prometheus_listen,
        routing=routing if routed else None,
        reports_after=REPORTS_AFTER,
    )
