"""Availability alerts (SPEC 5): the ticket app's health and probes, endpoint latency from
its histogram, and SLO error-budget burn with the Google SRE workbook's multiwindow,
multi-burn-rate conditions."""

from __future__ import annotations

from typing import Any

from exporter.generate import class_series, series
from exporter.generate.failure_classes import CLASSIFIED
from exporter.generate.promql import duration_text, metric_names
from exporter.generate.rules.alertkit import Builder, span
from exporter.generate.rules.alerts.shapes import down_alert
from exporter.generate.rules.model import AlertBuild, Model, Scenario, Text, Variant, constant
from exporter.generate.rules.promtool_series import Counter, selector
from exporter.generate.rules.recording import Recorder
from exporter.generate.rules.scenarios import histogram_series, selector_labels
from exporter.generate.selectors import failed_and_good, matches, parse_selector
from exporter.generate.thresholds import Alert, Slo, Thresholds

# (short window, long window, burn factor): page on the first two, ticket on the last two.
PAGE = ((300.0, 3600.0, 14.4), (1800.0, 21600.0, 6.0))
TICKET = ((7200.0, 86400.0, 3.0), (21600.0, 259200.0, 1.0))
# Burn rates the test scenarios run at: in and just short of each severity.
_BURN_CASES = (("critical", 20.0), ("near-critical", 5.5), ("high", 4.0), ("near-high", 0.9))


def app_health_degraded(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    return down_alert(
        alert,
        th,
        metric="boxoffice_app_component_up",
        labels={"component": "database", "target": "app"},
        text="Component {component} of {target} reports unhealthy (up: {value}).",
        source="http",
    )


def probe_failing(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    return down_alert(
        alert,
        th,
        metric="boxoffice_probe_success",
        labels={"target": "app"},
        text="The HTTP probe of {target} fails (success: {value}).",
        source="http",
    )


def endpoint_latency_high(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    latency = th.file.latency
    build = AlertBuild()
    if latency is None or not latency.endpoints:
        return build
    w = duration_text(alert.window)
    p95 = rec.use(series.endpoint_p95(latency, alert.window))
    text = "p95 latency of {{endpoint}} is {{value}} over the last {} (threshold {}).".format(
        w, "{t}"
    )
    for severity in ("critical", "high"):
        parts = []
        for name, endpoint in sorted(latency.endpoints.items()):
            cond = f'{p95}{{endpoint="{name}"}} > {endpoint.critical:g}'
            if severity == "high":
                cond = f'{p95}{{endpoint="{name}"}} > {endpoint.high:g} <= {endpoint.critical:g}'
            parts.append(cond)
        limit = "its " + severity + " limit in rules/thresholds.yaml"
        build.variants.append(
            Variant(
                severity=severity,
                expr="\nor ".join(parts),
                summary=alert.spec.summary,
                description=Text(text.replace("{t}", limit), "seconds"),
            )
        )
    bucket = f"{latency.histogram}_bucket"
    base = selector_labels(latency.selector)
    length = span(alert, th.file.escalation.tier3_after)
    for name, endpoint in sorted(latency.endpoints.items()):
        labels = {**base, latency.endpoint_label: endpoint.route}
        for target, value in (
            ("critical", endpoint.critical * 1.5),
            ("near-critical", endpoint.critical * 0.95),
            ("high", (endpoint.high + endpoint.critical) / 2),
            ("near-high", endpoint.high * 0.9),
        ):
            shown = 0.95 * round(value / 0.95, 6)
            level: str | None = (
                "critical"
                if shown > endpoint.critical
                else "high"
                if shown > endpoint.high
                else None
            )
            result = {level: shown} if level else {}
            build.scenarios.append(
                Scenario(
                    name=f"{name}-{target}",
                    series=histogram_series(bucket, labels, value, length),
                    labels={"endpoint": name},
                    model=constant(result, 60),
                    length_seconds=length,
                    merge=target,
                )
            )
    return build


def classified_in(slos: list[tuple[str, Slo]]) -> list[str]:
    """Classified failure counters (recording rules) the SLO selectors read."""
    names = {m for _, slo in slos for sel in (slo.total, slo.errors) for m in metric_names(sel)}
    return [name for name in CLASSIFIED if name in names]


def slo_error_budget_burn(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    build = AlertBuild()
    slos = sorted(th.file.slos.items())
    if not slos:
        return build
    for name in classified_in(slos):
        rec.use(class_series.classified_named(name, th))  # before the ratios that read it
    for window in series.SLO_WINDOWS:
        rec.use(series.slo_error_ratio(th.file.slos, window))
    for window in series.SLO_WINDOWS:
        rec.use(series.slo_error_count(th.file.slos, window))
    pages, tickets = [], []
    for name, slo in slos:
        budget = 1 - slo.objective / 100
        page = " or ".join(_burning(name, budget, slo.min_errors, *p) for p in PAGE)
        pages.append(page)
        ticket = " or ".join(_burning(name, budget, slo.min_errors, *p) for p in TICKET)
        # A page's long window still over its factor: the burn that paged may be over, but
        # its failures stay in the ticket's windows for hours, and a ticket then would be a
        # second notification about the same incident, after it ended.
        echo = " or ".join(_burning(name, budget, slo.min_errors, *p, long_only=True) for p in PAGE)
        tickets.append(f"(({ticket})\n  unless on(slo) ({echo}))")
    for severity, clauses, what in (
        ("critical", pages, "5m and 1h above 14.4x, or 30m and 6h above 6x"),
        ("high", tickets, "2h and 1d above 3x, or 6h and 3d above 1x"),
    ):
        text = f"SLO {{slo}} burns its error budget at {{value}} the sustainable rate ({what})."
        build.variants.append(
            Variant(
                severity=severity,
                expr="\nor ".join(clauses),
                summary=alert.spec.summary,
                description=Text(text, "factor"),
            )
        )
    build.scenarios = _slo_scenarios(alert, th)
    return build


def _burning(
    name: str,
    budget: float,
    min_errors: float,
    short: float,
    long: float,
    factor: float,
    *,
    long_only: bool = False,
) -> str:
    """Both windows of one SLO burn its budget faster than ``factor``, each on at least
    ``min_errors`` failures (a few failures more or less is chance, not a burn); with
    ``long_only``, the long window alone (a page-level burn, ongoing or within it)."""
    burns = [
        f'{series.slo_error_ratio_name(w)}{{slo="{name}"}} / {budget!r} > {factor:g}'
        f' and on(slo) {series.slo_error_count_name(w)}{{slo="{name}"}} >= {min_errors:g}'
        for w in ((long,) if long_only else (short, long))
    ]
    return f"({' and '.join(burns)})"


def _burn_severity(burn: float) -> str | None:
    if any(burn > f for *_, f in PAGE):
        return "critical"
    if any(burn > f for *_, f in TICKET):
        return "high"
    return None


def _slo_scenarios(alert: Alert, th: Thresholds) -> list[Scenario]:
    """One group per burn level; every SLO gets a bad and a good series in it.

    Selectors may overlap (web requests include inventory requests), so what each SLO
    sees is computed from all series of the group, as Prometheus will.
    """
    slos = sorted(th.file.slos.items())
    length = span(alert, th.file.escalation.tier3_after)
    parsed = {
        name: (parse_selector(slo.total), parse_selector(slo.errors), 1 - slo.objective / 100)
        for name, slo in slos
    }
    # Loading checked every SLO's selectors can be satisfied (thresholds.py).
    test_labels = {name: failed_and_good(slo.total, slo.errors) for name, slo in slos}
    out = []
    for target, factor in _BURN_CASES:
        rates: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for name, ((total_name, total_m), (error_name, _), budget) in parsed.items():
            # Busy enough that every long window holds min_errors failures from the start.
            requests, bad_share = 1000.0, budget * factor
            bad, good = test_labels[name]
            in_total = total_name == error_name and matches(bad, total_m)
            good_rate = requests * (1 - bad_share) if in_total else requests
            for key, rate in (
                ((error_name, tuple(bad.items())), requests * bad_share),
                ((total_name, tuple(good.items())), good_rate),
            ):
                rates[key] = rates.get(key, 0.0) + rate
        results = []
        for name, ((total_name, total_m), (error_name, error_m), budget) in parsed.items():
            seen_total = sum(
                r for (m, lb), r in rates.items() if m == total_name and matches(dict(lb), total_m)
            )
            seen_bad = sum(
                r for (m, lb), r in rates.items() if m == error_name and matches(dict(lb), error_m)
            )
            burn = seen_bad / seen_total / budget if seen_total else 0.0
            severity = _burn_severity(burn)
            result = {severity: burn} if severity else {}
            results.append(({"slo": name}, constant(result, 60)))
        counters = {key: Counter.linear(rate) for key, rate in rates.items()}
        out.append(_slo_group(target, counters, results, length))
    out.append(_few_failures(parsed, test_labels, length))
    return out


Rates = dict[tuple[str, tuple[tuple[str, str], ...]], Counter]


def _slo_group(
    target: str,
    counters: Rates,
    results: list[tuple[dict[str, str], Model]],
    length: float,
) -> Scenario:
    input_series = tuple(
        counter.series(selector(metric, dict(labels)), length, 60)
        for (metric, labels), counter in sorted(counters.items(), key=lambda kv: kv[0])
    )
    (labels, model), *also = results
    return Scenario(
        name=target,
        series=input_series,
        labels=labels,
        model=model,
        length_seconds=length,
        also=tuple(also),
    )


def _few_failures(
    parsed: dict[str, tuple[Any, Any, float]],
    test_labels: dict[str, tuple[dict[str, str], dict[str, str]]],
    length: float,
) -> Scenario:
    """A small shop (36 events an hour) failing 3 an hour: a huge share of every window, but
    fewer failures than min_errors in the scenario, so no burn."""
    counters: Rates = {}
    for name, ((total_name, _), (error_name, _), _budget) in parsed.items():
        bad, good = test_labels[name]
        counters[(error_name, tuple(bad.items()))] = Counter.linear(1 / 1200)
        counters[(total_name, tuple(good.items()))] = Counter.linear(0.01)
    results = [({"slo": name}, constant({}, 60)) for name in parsed]
    return _slo_group("few-failures-at-a-small-shop", counters, results, length)


BUILDERS: dict[str, Builder] = {
    "AppHealthDegraded": app_health_degraded,
    "ProbeFailing": probe_failing,
    "EndpointLatencyHigh": endpoint_latency_high,
    "SLOErrorBudgetBurn": slo_error_budget_burn,
}
