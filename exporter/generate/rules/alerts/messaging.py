"""Builders of the webhook, messaging, availability and exporter alerts, with scenarios."""

from __future__ import annotations

import re

from exporter.generate.rules.alertkit import describe, ladder, num, pct, span, variants
from exporter.generate.rules.alerts.payments import _sel, ratio_scenario
from exporter.generate.rules.model import (
    AlertBuild,
    Scenario,
    Series,
    Text,
    Variant,
    constant,
    duration_text,
)
from exporter.generate.rules.promtool_series import Counter, gauge
from exporter.generate.rules.recording import Recorder, by
from exporter.generate.selectors import parse_selector, satisfying
from exporter.generate.thresholds import Alert, Thresholds


def _gauge_cases(
    alert: Alert,
    th: Thresholds,
    metric: str,
    labels: dict[str, str],
    cases: list[tuple[str, float, dict[str, float]]],
) -> list[Scenario]:
    length = span(alert, th.file.escalation.tier3_after)
    out = []
    for i, (name, value, result) in enumerate(cases):
        # One promtool group for all cases when the series carry a label to tell them apart.
        distinct = {k: f"{v}{i}" if i else v for k, v in labels.items()}
        out.append(
            Scenario(name, (gauge(_sel(metric, distinct), value, length, 60),), distinct,
                     constant(result), length, merge="all" if labels else "")
        )  # fmt: skip
    return out


def gauge_ladder(
    alert: Alert, th: Thresholds, metric: str, labels: dict[str, str], text: str, fmt: str,
    *, source: str,
) -> AlertBuild:  # fmt: skip
    lad = ladder(alert)
    build = AlertBuild(
        variants(
            alert,
            lad.conditions(f"{by(metric)} ({metric})"),
            lambda sev, t: Text(text.replace("{t}", f"{t:g}"), fmt),  # type: ignore[arg-type]
        ),
        source=source,
    )
    cases = []
    for target, value in lad.targets():
        severity = lad.severity(value)
        cases.append((target, value, {severity: value} if severity else {}))
    build.scenarios = _gauge_cases(alert, th, metric, labels, cases)
    return build


def stripe_webhook_backlog(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    return gauge_ladder(
        alert, th, "boxoffice_stripe_events_pending_webhooks", {},
        "{value} recent Stripe events still have webhooks to deliver (threshold {t}).",
        "number", source="stripe",
    )  # fmt: skip


def twilio_balance_low(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    return gauge_ladder(
        alert, th, "boxoffice_twilio_balance", {"currency": "usd"},
        "Twilio balance is {value} {currency} (threshold {t}).",
        "money", source="twilio",
    )  # fmt: skip


def webhook_processing_errors(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    window = alert.window_seconds or 3600.0
    w = duration_text(window)
    failed, total = "boxoffice_webhook_events_failed_total", "boxoffice_webhook_events_total"
    ratio = rec.ratio(failed, total, window, keep=("provider",))
    volume = rec.increase(total, window)
    errors = rec.increase(failed, window)
    limits = dict(alert.thresholds)
    guard = alert.min_traffic or 0.0
    build = AlertBuild(source="postgres")
    critical = None
    if "critical" in limits:
        critical = f"{ratio} > {num(limits['critical'])} and {volume} >= {num(guard)}"
        build.variants.append(
            Variant(
                "critical", critical, alert.spec.summary,
                Text(f"{{value}} of {{provider}} webhooks failed in the last {w} "
                     f"(threshold {pct(limits['critical'])}).", "percent"),
            )
        )  # fmt: skip
    if "high" in limits:
        high = f"{errors} > {num(limits['high'])}"
        if critical:
            high += f"\nunless on(provider) ({critical})"
        build.variants.append(
            Variant(
                "high", high, alert.spec.summary,
                Text(f"{{value}} {{provider}} webhooks failed in the last {w} "
                     f"(threshold {limits['high']:g}).", "number"),
            )
        )  # fmt: skip
    length = span(alert, th.file.escalation.tier3_after, window)
    crit, high_limit = limits.get("critical", 2.0), limits.get("high", float("inf"))
    cases: list[tuple[str, float, float]] = []  # name, failed share, failed per window
    if "critical" in limits:
        cases += [("critical", min(crit * 2, 0.9), max(guard, 50) * crit * 2),
                  ("near-critical", crit * 0.9, max(guard * crit, 50 * crit))]  # fmt: skip
    if "high" in limits:
        share = crit / 2 if "critical" in limits else 0.05
        cases += [("high", share, high_limit * 1.5), ("near-high", share, high_limit * 0.9)]
    for i, (name, share, failed_per_window) in enumerate(cases):
        labels = {"provider": f"provider{i}"}
        fail_rate = failed_per_window / window
        ok_total, bad = Counter.linear(fail_rate / share), Counter.linear(fail_rate)

        def model(t: float, total_c: Counter = ok_total, bad_c: Counter = bad) -> dict[str, float]:
            n, f = total_c.increase(window, t, 60), bad_c.increase(window, t, 60)
            if n is None or f is None or n == 0:
                return {}
            if "critical" in limits and f / n > crit and n >= guard:
                return {"critical": f / n}
            if "high" in limits and f > high_limit:
                return {"high": f}
            return {}

        series = (
            ok_total.series(_sel(total, labels), length, 60),
            bad.series(_sel(failed, labels), length, 60),
        )
        build.scenarios.append(Scenario(name, series, labels, model, length, merge="all"))
    return build


def sms_delivery_failure_rate_high(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    window = alert.window_seconds or 3600.0
    lad = ladder(alert)
    failed, total = "boxoffice_sms_messages_failed_total", "boxoffice_sms_messages_total"
    ratio = rec.ratio(failed, total, window, keep=())
    volume = rec.increase(total, window)
    conditions = {
        sev: f"{cond} and on() {volume} >= {alert.min_traffic:g}"
        for sev, cond in lad.conditions(ratio).items()
    }
    w = duration_text(window)
    build = AlertBuild(
        variants(
            alert, conditions,
            lambda sev, t: describe(
                f"{{value}} of SMS that reached a final status in the last {w} failed or were "
                f"undelivered (threshold {pct(t)}).", "percent"),
        ),
        source="twilio",
    )  # fmt: skip
    for target, share in lad.targets(ceiling=1.0):
        build.scenarios.append(
            ratio_scenario(
                target, alert, th, lad, part=(failed, {"error_code": "30003"}),
                whole=(total, {}), share=share, labels={},
            )
        )  # fmt: skip
    return build


def sms_cost_high(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    window = alert.window_seconds or 3600.0
    lad = ladder(alert)
    spend = rec.increase("boxoffice_sms_cost_total", window)
    w = duration_text(window)
    build = AlertBuild(
        variants(
            alert, lad.conditions(spend),
            lambda sev, t: describe(
                f"SMS spend was {{value}} {{currency}} in the last {w} (threshold {t:g}).",
                "money"),
        ),
        source="twilio",
    )  # fmt: skip
    length = span(alert, th.file.escalation.tier3_after, window)
    for i, (target, amount) in enumerate(lad.targets()):
        labels = {"currency": f"c{i}"}
        counter = Counter.linear(amount / window)

        def model(t: float, counter: Counter = counter) -> dict[str, float]:
            value = counter.increase(window, t, 60)
            severity = lad.severity(value)
            return {severity: value} if severity and value is not None else {}

        series = (counter.series(_sel("boxoffice_sms_cost_total", labels), length, 60),)
        build.scenarios.append(Scenario(target, series, labels, model, length, merge="all"))
    return build


def down_alert(
    alert: Alert, th: Thresholds, metric: str, labels: dict[str, str], text: str, source: str
) -> AlertBuild:
    """A 0/1 gauge that alerts at 0, max over replicas."""
    severity: str = alert.severity or "high"
    expr = f"{by(metric)} ({metric}) == 0"
    build = AlertBuild(
        [Variant(severity, expr, alert.spec.summary, Text(text, "number"))], source=source
    )
    build.scenarios = _gauge_cases(
        alert, th, metric, labels, [("firing", 0.0, {severity: 0.0}), ("near", 1.0, {})]
    )
    return build


def exporter_down(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    severity: str = alert.severity or "critical"
    job = th.file.exporter_job
    expr = f'up{{job=~"{job}"}} == 0'
    text = Text("Prometheus cannot scrape {instance} of job {job} (up: {value}).", "number")
    build = AlertBuild([Variant(severity, expr, alert.spec.summary, text)])
    name = next(c for c in ("boxoffice", "boxoffice-exporter", job) if re.fullmatch(job, c))
    length = span(alert, th.file.escalation.tier3_after)
    for i, (case, value, result) in enumerate(
        (("firing", 0.0, {severity: 0.0}), ("near", 1.0, {}))
    ):
        labels = {"instance": f"exporter-{i + 1}:9798", "job": name}
        build.scenarios.append(
            Scenario(case, (gauge(_sel("up", labels), value, length, 60),), labels,
                     constant(result), length, merge="all")
        )  # fmt: skip
    return build


def exporter_data_stale(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    metric = "boxoffice_source_last_success_timestamp_seconds"
    lad = ladder(alert)
    age = f"time() - {by(metric)} ({metric})"
    build = AlertBuild(
        variants(
            alert, lad.conditions(age),
            lambda sev, t: describe(
                f"Source {{source}} last collected {{value}} ago (threshold {duration_text(t)}).",
                "duration"),
        ),
    )  # fmt: skip
    length = span(alert, th.file.escalation.tier3_after)
    for i, (target, age_value) in enumerate(lad.targets()):
        labels = {"source": f"source{i}"}
        last = -age_value if not target.startswith("near") else length - age_value

        def model(t: float, last: float = last) -> dict[str, float]:
            severity = lad.severity(t - last)
            return {severity: t - last} if severity else {}

        series = (gauge(_sel(metric, labels), last, length, 60),)
        build.scenarios.append(Scenario(target, series, labels, model, length, merge="all"))
    return build


def histogram_series(
    metric: str, labels: dict[str, str], p95: float, length: float
) -> tuple[Series, ...]:
    """Buckets whose interpolated 95th percentile is ``p95``: every request under ``p95/0.95``."""
    upper = round(p95 / 0.95, 6)
    counter = Counter.linear(1.0)
    return tuple(
        counter.series(_sel(metric, {**labels, "le": le}), length, 60)
        for le in (repr(upper), "+Inf")
    )


def selector_labels(selector: str) -> dict[str, str]:
    return satisfying(parse_selector("x{" + selector + "}")[1]) if selector else {}
