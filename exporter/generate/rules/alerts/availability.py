"""Builders of the availability alerts: endpoint latency from the app's histogram, and SLO
error-budget burn with the Google SRE workbook's multiwindow, multi-burn-rate conditions."""

from __future__ import annotations

from exporter.config.errors import ConfigError
from exporter.generate.rules.alertkit import span
from exporter.generate.rules.alerts.messaging import histogram_series, selector_labels
from exporter.generate.rules.alerts.payments import _sel
from exporter.generate.rules.model import (
    AlertBuild,
    Scenario,
    Text,
    Variant,
    constant,
    duration_text,
)
from exporter.generate.rules.promtool_series import Counter
from exporter.generate.rules.recording import Recorder
from exporter.generate.selectors import SelectorError, matches, parse_selector, satisfying
from exporter.generate.thresholds import Alert, Thresholds

# (short window, long window, burn factor): page on the first two, ticket on the last two.
PAGE = ((300.0, 3600.0, 14.4), (1800.0, 21600.0, 6.0))
TICKET = ((7200.0, 86400.0, 3.0), (21600.0, 259200.0, 1.0))
WINDOWS = (300.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0, 259200.0)


def endpoint_latency_high(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    latency = th.file.latency
    build = AlertBuild()
    if latency is None or not latency.endpoints:
        return build
    window = alert.window_seconds or 300.0
    w = duration_text(window)
    bucket = f"{latency.histogram}_bucket"
    extra = f"{latency.selector}, " if latency.selector else ""
    clauses = []
    for name, endpoint in sorted(latency.endpoints.items()):
        matcher = f'{extra}{latency.endpoint_label}="{endpoint.route}"'
        rate = f"sum by (le) (rate({bucket}{{{matcher}}}[{w}]))"
        clauses.append(
            f'label_replace(histogram_quantile(0.95, {rate}), "endpoint", "{name}", "", "")'
        )
    p95 = rec.record(f"boxoffice:endpoint_latency_seconds:p95_rate{w}", "\nor ".join(clauses))
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
        build.variants.append(
            Variant(severity, "\nor ".join(parts), alert.spec.summary,
                    Text(text.replace("{t}", "its " + severity + " limit in rules/thresholds.yaml"),
                         "seconds"))
        )  # fmt: skip
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
            series = histogram_series(bucket, labels, value, length)
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
                Scenario(f"{name}-{target}", series, {"endpoint": name},
                         constant(result, 60), length, merge=target)
            )  # fmt: skip
    return build


def slo_error_budget_burn(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    build = AlertBuild()
    slos = sorted(th.file.slos.items())
    if not slos:
        return build
    for window in WINDOWS:
        w = duration_text(window)
        clauses = [
            f"label_replace(sum(rate({slo.errors}[{w}])) / sum(rate({slo.total}[{w}]))"
            f', "slo", "{name}", "", "")'
            for name, slo in slos
        ]
        rec.record(f"boxoffice:slo_errors:ratio_rate{w}", "\nor ".join(clauses))
    pages, tickets = [], []
    for name, slo in slos:
        budget = 1 - slo.objective / 100

        def pair(short: float, long: float, factor: float, name: str = name,
                 budget: float = budget) -> str:  # fmt: skip
            burns = [
                f'boxoffice:slo_errors:ratio_rate{duration_text(w)}{{slo="{name}"}} / {budget!r}'
                f" > {factor:g}"
                for w in (short, long)
            ]
            return f"({burns[0]} and {burns[1]})"

        page = " or ".join(pair(*p) for p in PAGE)
        pages.append(page)
        tickets.append(f"(({' or '.join(pair(*p) for p in TICKET)})\n  unless on(slo) ({page}))")
    for severity, clauses, what in (
        ("critical", pages, "5m and 1h above 14.4x, or 30m and 6h above 6x"),
        ("high", tickets, "2h and 1d above 3x, or 6h and 3d above 1x"),
    ):
        build.variants.append(
            Variant(severity, "\nor ".join(clauses), alert.spec.summary,
                    Text(f"SLO {{slo}} burns its error budget at {{value}} the sustainable "
                         f"rate ({what}).", "factor"))
        )  # fmt: skip
    build.scenarios = _slo_scenarios(alert, th)
    return build


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
    test_labels = {name: _test_labels(th, name, *parsed[name][:2]) for name in parsed}
    out = []
    for target, factor in (("critical", 20.0), ("near-critical", 5.5), ("high", 4.0),
                           ("near-high", 0.9)):  # fmt: skip
        rates: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for name, ((total_name, total_m), (error_name, _), budget) in parsed.items():
            requests, bad_share = 10.0, budget * factor
            bad, good = test_labels[name]
            in_total = total_name == error_name and matches(bad, total_m)
            for key, rate in (
                ((error_name, tuple(bad.items())), requests * bad_share),
                ((total_name, tuple(good.items())),
                 requests * (1 - bad_share) if in_total else requests),
            ):  # fmt: skip
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
            severity = (
                "critical" if any(burn > f for *_, f in PAGE)
                else "high" if any(burn > f for *_, f in TICKET) else None
            )  # fmt: skip
            result = {severity: burn} if severity else {}
            results.append(({"slo": name}, constant(result, 60)))
        series = tuple(
            Counter.linear(rate).series(_sel(metric, dict(labels)), length, 60)
            for (metric, labels), rate in sorted(rates.items())
        )
        (labels, model), *also = results
        out.append(Scenario(target, series, labels, model, length, also=tuple(also)))
    return out


Matchers = list[tuple[str, str, str]]


def _test_labels(
    th: Thresholds, name: str, total: tuple[str, Matchers], errors: tuple[str, Matchers]
) -> tuple[dict[str, str], dict[str, str]]:
    """Labels of a failed event (matching ``errors``) and of a good one (``total`` only)."""
    try:
        bad = satisfying(errors[1])
    except SelectorError as exc:
        raise ConfigError(th.source, f"slos.{name}.errors", _UNTESTABLE.format(exc)) from None
    try:
        good = satisfying(total[1], errors[1] if total[0] == errors[0] else None)
    except SelectorError as exc:
        raise ConfigError(th.source, f"slos.{name}.total", _UNTESTABLE.format(exc)) from None
    return bad, good


_UNTESTABLE = "cannot make test series for it ({}); use = matchers or simpler regexes"
