"""`boxoffice check`: the configuration, its queries against the databases reachable now, and
the alerting bundle under a repository root, each reported in one line per finding."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from exporter import bundle
from exporter.config import Config
from exporter.logs import setup_logging

if TYPE_CHECKING:
    from exporter.sources.explain import SeqScan

Echo = Callable[[str], None]


@dataclass(frozen=True)
class DatabaseReport:
    """Which sources are enabled, which databases were not reachable, what reads sequentially."""

    enabled: list[str]
    unchecked: list[str]
    scans: dict[str, list[SeqScan]]


def check_all(config: Config, *, seqscan_rows: int, root: Path, out: Echo, err: Echo) -> bool:
    """Run every check; False when one found a problem (bad configuration raises ConfigError)."""
    groups = config.settings.sms_bridge.groups
    bundle_problems = bundle.verify(
        root, (config.source, set(groups)) if groups else None, out=out, err=err
    )
    check_web_config(config)
    setup_logging(config.settings.log.level, config.settings.log.format, config.secrets)
    report = check_databases(config, seqscan_rows)
    metrics = len({m.spec.name for m in config.metrics})
    read = len({m.database for m in config.metrics})
    over = f" over {read} databases" if read > 1 else ""
    postgres = f", {metrics} PostgreSQL metrics{over}" if "postgres" in report.enabled else ""
    out(f"{config.source}: ok (sources: {', '.join(report.enabled) or 'none'}{postgres})")
    for name in report.unchecked:
        err(f"boxoffice: database {name!r} not reachable: its queries were not checked")
    found = [(name, scan) for name, found in report.scans.items() for scan in found]
    for name, scan in found:
        err(
            f"boxoffice: database {name!r}: {scan.statement} reads table {scan.table} "
            f"(~{scan.rows:,} rows) sequentially every cycle; fix: {scan.fix or 'none known'}"
        )
    for problem in bundle_problems:
        err(f"boxoffice: {problem}")
    return not (found or bundle_problems)


def check_web_config(config: Config) -> None:
    """The web configuration file loads (ConfigError otherwise)."""
    from exporter.web.webconfig import load_web_config

    if config.settings.web.config_file:
        load_web_config(config.settings.web.config_file)


def check_databases(config: Config, seqscan_rows: int) -> DatabaseReport:
    """Every query fits its metric on the databases reachable now (ConfigError otherwise);
    statements that would scan at least ``seqscan_rows`` rows sequentially are listed."""
    from exporter.app import build_sources, check_queries
    from exporter.sources.postgres import PostgresSource

    unchecked: list[str] = []
    scans: dict[str, list[SeqScan]] = {}
    sources = build_sources(config)
    for source in sources:
        try:
            if isinstance(source, PostgresSource):
                unchecked += check_queries(config, source)
                scans, _unreachable = source.find_seq_scans(seqscan_rows)
        finally:
            source.close()
    return DatabaseReport([source.name for source in sources], unchecked, scans)
