"""The exporter process: sources in the background, the HTTP server in front of them."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from exporter import __version__
from exporter.collect.exposition import ExporterCollector
from exporter.collect.scheduler import Snapshot, SourceRunner
from exporter.config import Config, ConfigError
from exporter.lifecycle import serve_until_signal
from exporter.logs import Redactor, setup_logging
from exporter.sources.base import Source
from exporter.sources.guard import CardinalityGuard
from exporter.sources.postgres import IncrementalOptions, PostgresSource, QueryBounds
from exporter.web.landing import render_landing_page
from exporter.web.server import ExporterHTTPServer
from exporter.web.status_page import StatusPage
from exporter.web.webconfig import WebConfig, load_web_config

log = logging.getLogger(__name__)


def build_sources(config: Config) -> list[Source]:
    """The configured sources; creating them opens no connection and blocks on nothing."""
    sources: list[Source] = []
    postgres = config.settings.sources.postgres
    if postgres.enabled:
        sources.append(
            PostgresSource(
                databases=config.databases,
                metrics=config.metrics,
                interval=float(postgres.interval),
                timeout=postgres.effective_timeout,
                guard=CardinalityGuard(postgres.max_series_per_metric),
                bounds=QueryBounds(
                    max_rows=postgres.max_rows_per_query,
                    max_label_length=postgres.max_label_length,
                ),
                incremental=IncrementalOptions(
                    overlap=float(postgres.incremental.overlap),
                    track_for=float(postgres.incremental.track_for),
                    reconcile_interval=float(postgres.incremental.reconcile_interval),
                    full_timeout=float(postgres.incremental.full_timeout),
                    state_dir=postgres.incremental.state_dir,
                    state_max_age=float(postgres.incremental.state_max_age),
                )
                if postgres.incremental.enabled
                else None,
                parallelism=postgres.parallelism,
            )
        )
    sources += _api_sources(config)
    return sources


def _api_sources(config: Config) -> list[Source]:
    """The Stripe, Twilio and HTTP sources that are enabled, each on its own HTTP session.

    Each SDK, and requests itself, is imported only when a source that uses it is enabled:
    the Stripe SDK alone (with the aiohttp it loads) costs a restart about a second, requests
    tens of milliseconds (docs/benchmarks.md, restarts).
    """
    found: list[Source] = []
    settings = config.settings.sources
    if settings.stripe.enabled:
        from exporter.sources import stripe, stripe_api
        from exporter.sources.pacing import BudgetedSession

        s, session = settings.stripe, BudgetedSession()
        key = config.credentials["sources.stripe.api_key"]
        client = stripe_api.make_client(
            key, api_base=s.api_base, session=session, timeout=float(s.timeout)
        )
        found.append(
            _leased(
                config,
                stripe.StripeSource(
                    client=client,
                    session=session,
                    interval=float(s.interval),
                    timeout=float(s.timeout),
                    overlap=float(s.overlap),
                    max_pages=s.max_pages,
                    events_window=float(s.events_window),
                    max_watched=s.max_watched,
                ),
                s.api_base,
            )
        )
    if settings.twilio.enabled and (sid := settings.twilio.account_sid):
        from exporter.sources import twilio, twilio_api
        from exporter.sources.pacing import BudgetedSession

        t, session = settings.twilio, BudgetedSession()
        token = config.credentials["sources.twilio.auth_token"]
        twilio_client = twilio_api.make_client(
            sid, token, api_base=t.api_base, session=session, timeout=float(t.timeout)
        )
        found.append(
            _leased(
                config,
                twilio.TwilioSource(
                    client=twilio_client,
                    account_sid=sid,
                    session=session,
                    interval=float(t.interval),
                    timeout=float(t.timeout),
                    window=float(t.window),
                    page_size=t.page_size,
                    max_pages=t.max_pages,
                    max_in_flight=t.max_in_flight,
                ),
                t.api_base,
                sid,
            )
        )
    if settings.http.targets:
        import requests

        from exporter.sources.http import HttpSource, Target

        targets = []
        for i, target in enumerate(settings.http.targets):
            base = f"sources.http.targets[{i}]"
            headers = dict(target.headers)
            for name in target.header_files:
                headers[name] = config.credentials[f"{base}.header_files.{name}"]
            targets.append(
                Target(
                    name=target.name,
                    url=target.url,
                    method=target.method,
                    expected_status=target.expected_status,
                    timeout=float(target.timeout),
                    headers=headers,
                    components_path=target.components_path,
                )
            )
        found.append(
            HttpSource(
                targets=targets, session=requests.Session(), interval=float(settings.http.interval)
            )
        )
    return found


def _leased(config: Config, source: Source, *identity: str) -> Source:
    """The API source under a lease when ``ha.lease_database`` is set (sources/lease.py):
    keyed by its name, the account it reads and ``ha.lease_scope``, never a secret."""
    ha = config.settings.ha
    if ha.lease_database is None:
        return source
    from exporter.sources.lease import AdvisoryLease, LeasedSource, lease_key

    key = lease_key(source.name, *identity, ha.lease_scope)
    return LeasedSource(source, AdvisoryLease(config.databases[ha.lease_database], key))


def check_queries(config: Config, source: PostgresSource) -> list[str]:
    """Refuse SQL that does not fit its metric, on every database reachable now.

    A database that cannot be reached is not an error at start (the exporter must come up
    and report ``source_up 0``); its queries are checked on every collection instead.
    Returns the names of the databases that could not be reached.
    """
    problems, unreachable = source.check_queries()
    for name in unreachable:
        log.warning("database %r not reachable at start; its queries are checked once it is", name)
    if problems:
        first = problems[0]
        path = f"metrics.{first.metric.spec.name}.sql"
        hint = "" if first.metric.overridden else "; run `boxoffice db init`, or override the SQL"
        raise ConfigError(
            config.source, path, f"{first.reason} (database {first.metric.database!r}){hint}"
        )
    return unreachable


@dataclass
class Exporter:
    """A running exporter: start it, then stop it once."""

    runners: list[SourceRunner]
    server: ExporterHTTPServer
    sources: list[Source]

    def start(self) -> None:
        """Serve HTTP first, then begin collecting."""
        self.server.start()
        for source in self.sources:
            if isinstance(source, PostgresSource):
                source.start()  # the background reconciliations
        for runner in self.runners:
            runner.start()
        log.info("serving on %s", self.server.url)

    def stop(self) -> None:
        """Stop serving, stop the collectors and close their connections."""
        self.server.shutdown()
        for runner in self.runners:
            runner.stop()
        for source in self.sources:
            source.close()
        log.info("stopped")


def build_exporter(
    config: Config,
    web_config: WebConfig | None,
    sources: list[Source],
    *,
    listen_address: str | None = None,
) -> Exporter:
    """Wire sources, registry and HTTP server together (nothing is started)."""
    redact = Redactor(config.secrets)
    runners = [SourceRunner(source, redact=redact) for source in sources]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ExporterCollector(lambda: [r.snapshot() for r in runners], __version__))
    web = config.settings.web

    def snapshots() -> list[Snapshot]:
        return [r.snapshot() for r in runners]

    status = config.settings.status_page
    status_page = StatusPage(status, snapshots) if status.enabled else None

    def landing() -> str:
        return render_landing_page(
            snapshots(),
            version=__version__,
            telemetry_path=web.telemetry_path,
            status_path="/status" if status_page else None,
        )

    def version() -> tuple[tuple[str, int, bool], ...]:
        # Snapshots are immutable and swapped whole: the exposition changes only when a
        # source finishes a cycle or its freshness flips.
        now = time.monotonic()
        return tuple((s.source, s.cycles, s.fresh(now)) for s in (r.snapshot() for r in runners))

    server = ExporterHTTPServer(
        registry=registry,
        listen_address=listen_address or web.listen_address,
        web_config=web_config,
        landing_page=landing,
        telemetry_path=web.telemetry_path,
        version=version,
        status_page=status_page.render if status_page else None,
    )
    return Exporter(runners, server, sources)


# Objects allocated between two young-generation collections. Every cycle builds a dict and
# a tuple per series (about 1,000 per database): at CPython's default of 700 the collector
# ran dozens of times per cycle and took about a third of the exporter's CPU
# (scripts/bench_shards.py, docs/benchmarks.md). Garbage here is almost never cyclic.
GC_YOUNG_THRESHOLD = 20_000


def tune_gc() -> None:
    """Collect less often, and never again scan what startup built (modules, config)."""
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, max(middle, 20), max(old, 10))


def run_exporter(config: Config, on_started: Callable[[], None] = lambda: None) -> None:
    """Check everything, then serve until SIGTERM or SIGINT (Failure, ConfigError)."""
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
    tune_gc()
    serve_until_signal(exporter, address=settings.web.listen_address, on_started=on_started)
