"""Webhook alerts (SPEC 5): Stripe's undelivered backlog, and webhooks our app failed to
process (a failure share with a traffic guard, or a plain count)."""

from __future__ import annotations

from exporter.generate import series
from exporter.generate.promql import duration_text
from exporter.generate.rules.alertkit import Builder, num, pct, span
from exporter.generate.rules.alerts.shapes import gauge_ladder
from exporter.generate.rules.model import AlertBuild, Scenario, Text, Variant
from exporter.generate.rules.promtool_series import Counter, selector
from exporter.generate.rules.recording import Recorder
from exporter.generate.series import WEBHOOKS, WEBHOOKS_FAILED
from exporter.generate.thresholds import Alert, Thresholds


def stripe_webhook_backlog(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    return gauge_ladder(
        alert,
        th,
        metric="boxoffice_stripe_events_pending_webhooks",
        labels={},
        text="{value} recent Stripe events still have webhooks to deliver (threshold {t}).",
        fmt="number",
        source="stripe",
    )


def webhook_processing_errors(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    window = alert.window
    w = duration_text(window)
    ratio = rec.use(series.webhook_failure_ratio(window))
    volume = rec.use(series.increase(WEBHOOKS, window))
    errors = rec.use(series.webhook_failures(window))
    limits = dict(alert.thresholds)
    guard = alert.min_traffic or 0.0
    build = AlertBuild(source="postgres")
    critical = None
    if "critical" in limits:
        critical = f"{ratio} > {num(limits['critical'])} and {volume} >= {num(guard)}"
        text = (
            f"{{value}} of {{provider}} webhooks failed in the last {w} "
            f"(threshold {pct(limits['critical'])})."
        )
        build.variants.append(
            Variant(
                severity="critical",
                expr=critical,
                summary=alert.spec.summary,
                description=Text(text, "percent"),
            )
        )
    if "high" in limits:
        high = f"{errors} > {num(limits['high'])}"
        if critical:
            high += f"\nunless on(provider) ({critical})"
        text = (
            f"{{value}} {{provider}} webhooks failed in the last {w} "
            f"(threshold {limits['high']:g})."
        )
        build.variants.append(
            Variant(
                severity="high",
                expr=high,
                summary=alert.spec.summary,
                description=Text(text, "number"),
            )
        )
    build.scenarios = _scenarios(alert, th, limits)
    return build


def _scenarios(alert: Alert, th: Thresholds, limits: dict[str, float]) -> list[Scenario]:
    window = alert.window
    guard = alert.min_traffic or 0.0
    length = span(alert, th.file.escalation.tier3_after, window)
    crit, high_limit = limits.get("critical", 2.0), limits.get("high", float("inf"))
    cases: list[tuple[str, float, float]] = []  # name, failed share, failed per window
    if "critical" in limits:
        cases.append(("critical", min(crit * 2, 0.9), max(guard, 50) * crit * 2))
        cases.append(("near-critical", crit * 0.9, max(guard * crit, 50 * crit)))
    if "high" in limits:
        share = crit / 2 if "critical" in limits else 0.05
        cases += [("high", share, high_limit * 1.5), ("near-high", share, high_limit * 0.9)]
    out = []
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

        input_series = (
            ok_total.series(selector(WEBHOOKS, labels), length, 60),
            bad.series(selector(WEBHOOKS_FAILED, labels), length, 60),
        )
        out.append(
            Scenario(
                name=name,
                series=input_series,
                labels=labels,
                model=model,
                length_seconds=length,
                merge="all",
            )
        )
    return out


BUILDERS: dict[str, Builder] = {
    "StripeWebhookBacklog": stripe_webhook_backlog,
    "WebhookProcessingErrors": webhook_processing_errors,
}
