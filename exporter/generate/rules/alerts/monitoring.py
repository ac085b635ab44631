"""Monitoring alerts (SPEC 5): boxoffice itself, a source that cannot collect, an exporter
with no replica Prometheus can scrape (or only some of them), data gone stale, and a standby
replaying far behind its primary."""

from __future__ import annotations

import re

from exporter.catalog import REPLICATION_LAG_METRIC
from exporter.generate import series
from exporter.generate.promql import duration_text
from exporter.generate.rules.alertkit import Builder, describe, ladder, span, variants
from exporter.generate.rules.alerts.shapes import down_alert
from exporter.generate.rules.model import AlertBuild, Scenario, Text, Variant, constant
from exporter.generate.rules.promtool_series import gauge, selector
from exporter.generate.rules.recording import Recorder
from exporter.generate.thresholds import Alert, Thresholds


def exporter_source_down(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    return down_alert(
        alert,
        th,
        metric="boxoffice_source_up",
        labels={"source": "postgres"},
        text="boxoffice cannot collect from {source} (up: {value}); its business alerts are blind.",
        source="",
    )


def _replicas_up(th: Thresholds) -> str:
    """How many replicas of each exporter job Prometheus can scrape: ``up`` summed by job."""
    return f'sum by (job) (up{{job=~"{th.file.exporter_job}"}})'


def _job_name(th: Thresholds) -> str:
    """A job name the configured regex matches, for the test data."""
    job = th.file.exporter_job
    return next(c for c in ("boxoffice", "boxoffice-exporter", job) if re.fullmatch(job, c))


Case = tuple[tuple[float, ...], dict[str, str], dict[str, float]]


def _replica_cases(th: Thresholds, alert: Alert, cases: dict[str, Case]) -> list[Scenario]:
    """Replicas of one job: per case the ``up`` of each replica, the result's labels and
    what the alert evaluates to."""
    job = _job_name(th)
    length = span(alert, th.file.escalation.tier3_after)
    out = []
    for case, (ups, labels, result) in cases.items():
        series = tuple(
            gauge(
                selector("up", {"instance": f"exporter-{i + 1}:9798", "job": job}),
                value,
                length,
                60,
            )
            for i, value in enumerate(ups)
        )
        out.append(
            Scenario(
                name=case,
                series=series,
                labels=labels,
                model=constant(result),
                length_seconds=length,
            )
        )
    return out


def exporter_down(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    """No replica of the job is up (SPEC 5): one replica down is ExporterReplicaDown."""
    severity: str = alert.severity or "critical"
    expr = f"{_replicas_up(th)} == 0"
    text = Text(
        "Replicas of job {job} Prometheus can scrape: {value}. The business alerts are blind.",
        "number",
    )
    variant = Variant(severity=severity, expr=expr, summary=alert.spec.summary, description=text)
    build = AlertBuild(variants=[variant])
    job = {"job": _job_name(th)}
    build.scenarios = _replica_cases(
        th,
        alert,
        {
            "firing_none_left": ((0.0, 0.0), job, {severity: 0.0}),
            "near_one_left": ((0.0, 1.0), job, {}),
        },
    )
    return build


def exporter_replica_down(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    """A replica Prometheus cannot scrape while another of its job is up: a warning, since
    the others still serve; with none left it is ExporterDown instead."""
    severity: str = alert.severity or "medium"
    job = th.file.exporter_job
    expr = f'up{{job=~"{job}"}} == 0 unless on (job) ({_replicas_up(th)} == 0)'
    text = Text(
        "Prometheus cannot scrape {instance} of job {job} (up: {value}); another replica "
        "still serves.",
        "number",
    )
    variant = Variant(severity=severity, expr=expr, summary=alert.spec.summary, description=text)
    build = AlertBuild(variants=[variant])
    down = {"instance": "exporter-1:9798", "job": _job_name(th)}
    build.scenarios = _replica_cases(
        th,
        alert,
        {
            "firing_one_down": ((0.0, 1.0), down, {severity: 0.0}),
            "near_all_up": ((1.0, 1.0), down, {}),
            "none_left": ((0.0, 0.0), down, {}),
        },
    )
    return build


def exporter_data_stale(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    metric = series.LAST_SUCCESS
    lad = ladder(alert)
    age = series.age(metric)
    build = AlertBuild(
        variants=variants(
            alert,
            lad.conditions(age),
            lambda sev, t: describe(
                f"Source {{source}} last collected {{value}} ago (threshold {duration_text(t)}).",
                "duration",
            ),
        ),
    )
    length = span(alert, th.file.escalation.tier3_after)
    for i, (target, age_value) in enumerate(lad.targets()):
        labels = {"source": f"source{i}"}
        last = -age_value if not target.startswith("near") else length - age_value

        def model(t: float, last: float = last) -> dict[str, float]:
            severity = lad.severity(t - last)
            return {severity: t - last} if severity else {}

        build.scenarios.append(
            Scenario(
                name=target,
                series=(gauge(selector(metric, labels), last, length, 60),),
                labels=labels,
                model=model,
                length_seconds=length,
                merge="all",
            )
        )
    return build


def postgres_replication_lag_high(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    """The standby boxoffice reads lags its primary: counts stay exact but are that old,
    so the business alerts judge the past (docs/incremental.md)."""
    metric = REPLICATION_LAG_METRIC
    lad = ladder(alert)
    build = AlertBuild(
        variants=variants(
            alert,
            lad.conditions(series.latest(metric)),
            lambda sev, t: describe(
                f"Database {{database}} is {{value}} behind its primary (threshold "
                f"{duration_text(t)}): boxoffice's counts from it are that old.",
                "duration",
            ),
        ),
    )
    length = span(alert, th.file.escalation.tier3_after)
    for i, (target, lag) in enumerate(lad.targets()):
        labels = {"database": f"db{i}"}

        def model(t: float, lag: float = lag) -> dict[str, float]:
            severity = lad.severity(lag)
            return {severity: lag} if severity else {}

        build.scenarios.append(
            Scenario(
                name=target,
                series=(gauge(selector(metric, labels), lag, length, 60),),
                labels=labels,
                model=model,
                length_seconds=length,
                merge="all",
            )
        )
    return build


BUILDERS: dict[str, Builder] = {
    "ExporterSourceDown": exporter_source_down,
    "ExporterDown": exporter_down,
    "ExporterReplicaDown": exporter_replica_down,
    "ExporterDataStale": exporter_data_stale,
    "PostgresReplicationLagHigh": postgres_replication_lag_high,
}
