"""The `boxoffice` command line."""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click

from exporter import __version__
from exporter.config import Config, ConfigError, load_config
from exporter.logs import setup_logging

if TYPE_CHECKING:
    from exporter.demo.stack import PrometheusStack

P = ParamSpec("P")
R = TypeVar("R")

EXIT_BAD_INPUT = 2


def _bad_input_exits_2(func: Callable[P, R]) -> Callable[P, R]:
    """Print a ConfigError as one line and exit 2, starting and writing nothing."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"boxoffice: {exc}", err=True)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper


def _config_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--dsn",
        metavar="URI",
        help="libpq URI of the default database [env: BOXOFFICE_DSN, or BOXOFFICE_DSN_FILE].",
    )(func)
    return click.option(
        "--config",
        "config_path",
        envvar="BOXOFFICE_CONFIG",
        show_envvar=True,
        type=click.Path(dir_okay=False),
        help="YAML configuration file (see boxoffice.example.yml).",
    )(func)


def _log_options(func: Callable[..., Any]) -> Callable[..., Any]:
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


def _load(config_path: str | None, flags: dict[str, tuple[Any, str]]) -> Config:
    return load_config(config_path, env=os.environ, flags={k: v for k, v in flags.items() if v[0]})


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="boxoffice")
def main() -> None:
    """boxoffice: Prometheus exporter and alerting bundle for ticket sellers.

    Every option also reads an environment variable (BOXOFFICE_...); settings in the
    config file can be overridden the same way, e.g. BOXOFFICE_SOURCES_POSTGRES_INTERVAL=15s.
    """


@main.command()
@_config_options
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
@_log_options
@_bad_input_exits_2
def serve(
    config_path: str | None,
    dsn: str | None,
    listen_address: str | None,
    web_config_file: str | None,
    log_level: str | None,
    log_format: str | None,
) -> None:
    """Run the exporter: /metrics, /healthz and a landing page at /."""
    config = _load(
        config_path,
        {
            "databases.default.dsn": (dsn, "--dsn"),
            "web.listen_address": (listen_address, "--web.listen-address"),
            "web.config_file": (web_config_file, "--web.config.file"),
            "log.level": (log_level, "--log.level"),
            "log.format": (log_format, "--log.format"),
        },
    )
    run_exporter(config)


def run_exporter(config: Config, on_started: Callable[[], None] = lambda: None) -> None:
    """Check everything, then serve until SIGTERM or SIGINT."""
    from exporter.app import build_exporter, build_sources, check_queries, run_until
    from exporter.sources.postgres import PostgresSource
    from exporter.web.webconfig import load_web_config

    settings = config.settings
    setup_logging(settings.log.level, settings.log.format, config.secrets)
    web_config = load_web_config(settings.web.config_file) if settings.web.config_file else None
    sources = build_sources(config)
    try:
        for source in sources:
            if isinstance(source, PostgresSource):
                check_queries(config, source)
        exporter = build_exporter(config, web_config, sources)
    except BaseException:
        for source in sources:
            source.close()
        raise
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        run_until(stop, exporter, on_started)
    except OSError as exc:  # the listen address is taken or not ours
        click.echo(
            f"boxoffice: cannot serve on {settings.web.listen_address}: {exc.strerror}", err=True
        )
        sys.exit(1)


@main.command()
@_config_options
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
@_bad_input_exits_2
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
    config = _load(config_path, {"databases.default.dsn": (dsn, "--dsn")})
    groups = config.settings.sms_bridge.groups
    bundle_problems = _check_bundle(
        Path(root).resolve(), (config.source, set(groups)) if groups else None
    )
    from exporter.app import build_sources, check_queries
    from exporter.sources.explain import SeqScan
    from exporter.sources.postgres import PostgresSource
    from exporter.web.webconfig import load_web_config

    if config.settings.web.config_file:
        load_web_config(config.settings.web.config_file)
    setup_logging(config.settings.log.level, config.settings.log.format, config.secrets)
    unchecked: list[str] = []
    scans: dict[str, list[SeqScan]] = {}
    sources = build_sources(config)
    enabled = [source.name for source in sources]
    for source in sources:
        try:
            if isinstance(source, PostgresSource):
                unchecked += check_queries(config, source)
                scans, _unreachable = source.find_seq_scans(seqscan_rows)
        finally:
            source.close()
    postgres = f", {len(config.metrics)} PostgreSQL metrics" if "postgres" in enabled else ""
    click.echo(f"{config.source}: ok (sources: {', '.join(enabled) or 'none'}{postgres})")
    for name in unchecked:
        click.echo(
            f"boxoffice: database {name!r} not reachable: its queries were not checked", err=True
        )
    found = [(name, scan) for name, found in scans.items() for scan in found]
    for name, scan in found:
        click.echo(
            f"boxoffice: database {name!r}: {scan.statement} reads table {scan.table} "
            f"(~{scan.rows:,} rows) sequentially every cycle; fix: {scan.fix or 'none known'}",
            err=True,
        )
    for problem in bundle_problems:
        click.echo(f"boxoffice: {problem}", err=True)
    if found or bundle_problems:
        sys.exit(1)


def _check_bundle(root: Path, bridge_groups: tuple[str, set[str]] | None) -> list[str]:
    from exporter.generate.output import ROUTING, THRESHOLDS
    from exporter.generate.verify import verify_bundle

    if not (root / THRESHOLDS).is_file():
        return []
    report = verify_bundle(root, THRESHOLDS, bridge_groups=bridge_groups)
    click.echo(f"{THRESHOLDS}: ok ({report.checked} generated files compared)")
    if (root / ROUTING).is_file():
        click.echo(f"{ROUTING}: ok")
    for tool in report.skipped:
        click.echo(f"boxoffice: {tool} not installed: its check was skipped", err=True)
    return list(report.problems)


@main.group()
def db() -> None:
    """Create the reference schema and fill it with demo sales."""


@db.command("init")
@_config_options
@_bad_input_exits_2
def db_init(config_path: str | None, dsn: str | None) -> None:
    """Create the reference schema (tables and indexes) in the default database."""
    from exporter.db.schema import create_schema

    config = _load(config_path, {"databases.default.dsn": (dsn, "--dsn")})
    with _connect(config) as conn:
        create_schema(conn)
    click.echo("reference schema ready")


@db.command("seed")
@_config_options
@click.option("--orders", default=200_000, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", "seed_value", default=1, show_default=True, help="Same seed, same data.")
@click.option("--replace", is_flag=True, help="Empty the reference tables first.")
@_bad_input_exits_2
def db_seed(
    config_path: str | None, dsn: str | None, orders: int, seed_value: int, replace: bool
) -> None:
    """Fill the reference schema with a year of realistic sales."""
    config = _load(config_path, {"databases.default.dsn": (dsn, "--dsn")})
    with _connect(config):  # a clear error when the database cannot be reached
        pass
    _seed(config, orders=orders, seed=seed_value, replace=replace)


def _connect(config: Config) -> Any:
    import psycopg

    database = config.databases.get("default")
    if database is None:
        raise ConfigError(config.source, "databases.default", "is required for this command")
    try:
        return psycopg.connect(
            database.dsn, autocommit=True, connect_timeout=max(1, round(database.connect_timeout))
        )
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0]
        click.echo(f"boxoffice: cannot connect to the default database: {first}", err=True)
        sys.exit(1)


def _seed(
    config: Config, *, orders: int, seed: int, replace: bool, inventory_incidents: bool = True
) -> None:
    from exporter.db.seed import SeedError, seed_database

    try:
        with click.progressbar(length=orders, label="seeding orders", file=sys.stderr) as bar:
            summary = seed_database(
                config.databases["default"].dsn,
                orders=orders,
                seed=seed,
                replace=replace,
                progress=bar.update,
                inventory_incidents=inventory_incidents,
            )
    except SeedError as exc:
        click.echo(f"boxoffice: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    click.echo(
        f"seeded {summary.orders} orders, {summary.events} events in {summary.cities} cities, "
        f"{summary.checkout_sessions} checkout sessions, {summary.webhook_logs} webhook logs"
    )


# Names only: importing the simulator would slow every other command's start.
_DEMO_SCENARIOS = (
    "payment-outage",
    "oversell",
    "webhook-stall",
    "sms-failure",
    "quiet-day",
    "flash-sale",
)


def _demo_stack(
    target: str,
    speed: float,
    echo: Callable[[str], None],
    *,
    prometheus: tuple[bool | None, str, str | None],
    alertmanager: tuple[bool | None, str],
) -> PrometheusStack | None:
    """Prometheus (with Alertmanager and the receivers) when wanted and installed."""
    from exporter.demo.stack import PrometheusStack, alertmanager_wanted, prometheus_wanted

    asked, thresholds, listen = prometheus
    if not prometheus_wanted(asked, Path(thresholds), echo):
        return None
    notify, routing = alertmanager
    routed = alertmanager_wanted(notify, Path(routing), echo)
    return PrometheusStack(
        Path(thresholds), speed, target, echo, listen=listen,
        routing=Path(routing) if routed else None,
    )  # fmt: skip


@main.command()
@_config_options
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
    type=click.Choice(list(_DEMO_SCENARIOS)),
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
@_bad_input_exits_2
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
    from exporter.db.schema import create_schema
    from exporter.db.throwaway import ThrowawayPostgres, ThrowawayUnavailableError
    from exporter.demo.live import LiveOptions, LiveSimulator
    from exporter.demo.stack import Companions

    if scenario and not simulate:
        raise ConfigError(
            "boxoffice demo", "--scenario", "needs the simulator (drop --no-simulate)"
        )
    echo = functools.partial(click.echo, err=True)
    companions = Companions()
    given = dsn or os.environ.get("BOXOFFICE_DSN") or os.environ.get("BOXOFFICE_DSN_FILE")
    throwaway: ThrowawayPostgres | None = None
    if not given and not config_path:
        throwaway = ThrowawayPostgres()
        click.echo(f"starting a throwaway PostgreSQL in {throwaway.directory}", err=True)
        try:
            dsn = throwaway.start()
        except ThrowawayUnavailableError as exc:
            click.echo(f"boxoffice: {exc}", err=True)
            sys.exit(1)
    try:
        flags = {
            "databases.default.dsn": (dsn, "--dsn"),
            "web.listen_address": (listen_address, "--web.listen-address"),
        }
        if not config_path and "BOXOFFICE_SOURCES_POSTGRES_INTERVAL" not in os.environ:
            # The demo's Prometheus scrapes every second: collect as often.
            flags["sources.postgres.interval"] = ("1s", "the demo's default")
        config = companions.twilio.configure(functools.partial(_load, config_path), flags)
        with _connect(config) as conn:
            create_schema(conn)
            empty = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM orders)").fetchone()[0]
            if not empty:
                click.echo("the database already has orders; serving them as they are", err=True)
        if empty:
            # A scenario's alerts should stand out: no sold-out or oversold tiers to start with.
            calm = scenario is not None
            _seed(
                config, orders=orders, seed=seed_value, replace=False, inventory_incidents=not calm
            )
        host = listen_address.rpartition(":")[0] or "localhost"
        port = listen_address.rpartition(":")[2]
        target = f"{listen_address.rpartition(':')[0] or '127.0.0.1'}:{port}"
        companions.stack = _demo_stack(
            target, speed, echo, prometheus=(with_prometheus, thresholds, prometheus_listen),
            alertmanager=(with_alertmanager, routing),
        )  # fmt: skip
        if simulate:
            lasts = incident_for or (180.0 if scenario == "quiet-day" else 120.0)
            options = LiveOptions(scenario, speed, start_after, lasts, seed=seed_value)
            companions.live = LiveSimulator(
                config.databases["default"].dsn, options, echo, sms=companions.twilio.gateway
            )

        def started() -> None:
            echo(f"exporter ready: http://{host}:{port}/metrics (Ctrl-C to stop)")
            companions.start()

        run_exporter(config, on_started=started)
    finally:
        companions.stop()
        if throwaway is not None:
            throwaway.stop()
            click.echo("throwaway PostgreSQL removed", err=True)


# --- boxoffice generate (rules, tests, runbooks; alertmanager and dashboards add producers) ---
@main.command()
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
@_bad_input_exits_2
def generate(check: bool, root: str, thresholds: str) -> None:
    """Generate rules, their promtool tests, runbooks and dashboards from rules/thresholds.yaml."""
    from exporter.generate.output import load_inputs, render_all, stale, write_all

    base = Path(root).resolve()
    outputs = render_all(load_inputs(base, thresholds))
    if check:
        problems = stale(base, outputs)
        for rel in problems:
            click.echo(f"boxoffice: {rel}: stale, run `boxoffice generate`", err=True)
        if problems:
            sys.exit(1)
        click.echo(f"{len(outputs)} generated files up to date")
        return
    changed = write_all(base, outputs)
    click.echo(f"{len(outputs)} files generated, {len(changed)} changed")


# --- boxoffice sms-bridge -------------------------------------------------------------------


@main.command("sms-bridge")
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
@_log_options
@_bad_input_exits_2
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
    from exporter.smsbridge.service import build_bridge, run_until
    from exporter.smsbridge.store import StoreError

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
    setup_logging(config.log_level, config.log_format, config.secrets)
    try:
        parts = build_bridge(config)
    except StoreError as exc:
        click.echo(f"boxoffice: {exc}", err=True)
        sys.exit(1)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        run_until(
            stop,
            parts,
            lambda: click.echo(f"sms-bridge ready: {parts.server.url}/alerts/<group>", err=True),
        )
    except OSError as exc:
        address = listen_address or config.settings.listen_address
        click.echo(f"boxoffice: cannot serve on {address}: {exc.strerror}", err=True)
        sys.exit(1)
