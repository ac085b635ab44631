"""Webhook alerts (SPEC 5): Stripe's undelivered backlog (relative to the shop's webhook
volume), a Stripe endpoint disabled, and webhooks our app failed to process far above the
provider's own normal (a failure share with a traffic guard, or a count, the seeds' numbers
as floors)."""

from __future__ import annotations

import math

from exporter.generate import series
from exporter.generate.promql import duration_text, num
from exporter.generate.rules.alertkit import Builder, ladder, pct, span, variants
from exporter.generate.rules.alerts.seasonal import STEP, WEEK, weekly_median
from exporter.generate.rules.model import AlertBuild, Scenario, Text, Variant
from exporter.generate.rules.promtool_series import Counter, gauge, selector
from exporter.generate.rules.recording import Recorder
from exporter.generate.rules.scenarios import gauge_cases
from exporter.generate.series import WEBHOOKS, WEBHOOKS_FAILED
from exporter.generate.thresholds import Alert, Thresholds

PENDING = "boxoffice_stripe_events_pending_webhooks"
ENDPOINTS = "boxoffice_stripe_webhook_endpoints"
_HOUR = 3600.0


def stripe_webhook_backlog(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    """Pending Stripe events above the threshold (a floor) and above ``relative.backlog_of``
    of the shop's Stripe webhook volume (the last hour's rate, events our app logged whether
    it processed them or not), so a shop that receives hundreds of webhooks a minute is not
    "backlogged" by its own traffic, and a quiet night does not hide a stall."""
    lad = ladder(alert)
    backlog_of = alert.relative["backlog_of"]
    hourly = rec.use(series.increase(WEBHOOKS, _HOUR))
    pending = series.latest(PENDING)
    normal = f'({num(backlog_of / _HOUR)} * sum({hourly}{{provider="stripe"}}) or vector(0))'
    conditions = {
        sev: f"{cond} and {pending} > {normal}" for sev, cond in lad.conditions(pending).items()
    }
    text = (
        "{value} recent Stripe events still have webhooks to deliver (alerting above {t} and "
        f"above {duration_text(backlog_of)} of the last hour's Stripe webhook volume)."
    )
    build = AlertBuild(
        variants=variants(
            alert, conditions, lambda sev, t: Text(text.replace("{t}", f"{t:g}"), "number")
        ),
        source="stripe",
    )
    length = span(alert, th.file.escalation.tier3_after)
    floor = lad.thresholds[-1][1]
    # (name, pending, Stripe webhooks per second): the floor binds, then the volume does.
    cases = (
        ("floor", floor * 1.5, 0.0),
        ("near-floor", floor, 0.0),
        ("busy", 900.0, 2.0),
        ("near-busy", 300.0, 2.0),
    )
    for i, (name, value, per_second) in enumerate(cases):
        labels = {"provider": "stripe", "instance": f"shop{i}"}
        hooks = Counter.linear(per_second)

        def model(t: float, value: float = value, hooks: Counter = hooks) -> dict[str, float]:
            volume = (hooks.increase(_HOUR, t, 60) or 0.0) * backlog_of / _HOUR
            severity = lad.severity(value)
            return {severity: value} if severity and value > volume else {}

        build.scenarios.append(
            Scenario(
                name=name,
                series=(
                    gauge(selector(PENDING, {"instance": f"shop{i}"}), value, length, 60),
                    hooks.series(selector(WEBHOOKS, labels), length, 60),
                ),
                labels={},
                model=model,
                length_seconds=length,
            )
        )
    return build


def stripe_webhook_endpoint_disabled(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    """A webhook endpoint Stripe disabled (after failing deliveries for days, or by hand):
    Stripe sends it nothing until someone enables it again."""
    severity: str = alert.severity or "critical"
    expr = f'max by (status) ({ENDPOINTS}{{status="disabled"}}) > 0'
    text = Text(
        "{value} Stripe webhook endpoint(s) disabled: Stripe sends them no events until they "
        "are enabled again in the Stripe Dashboard.",
        "number",
    )
    variant = Variant(severity=severity, expr=expr, summary=alert.spec.summary, description=text)
    build = AlertBuild(variants=[variant], source="stripe")
    build.scenarios = gauge_cases(
        alert,
        th,
        ENDPOINTS,
        {"status": "disabled"},
        [("firing", 1.0, {severity: 1.0}), ("near", 0.0, {})],
    )
    return build


def webhook_processing_errors(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    """Errors far above the provider's own normal share (seed 003's band: the median of the
    share over the same day of past weeks, and ``baseline.z`` deviations beyond it on the
    square-root scale of counts), with the seeds' numbers as floors: a share above
    ``critical`` pages critical, more than ``high`` errors in the window high."""
    window = alert.window
    w = duration_text(window)
    base = th.file.baseline
    ratio = rec.use(series.webhook_failure_ratio(window))
    # The normal share from whole days (the same day of past weeks): an hour holds too few
    # errors at a healthy 0.1-0.2% for its median to be a steady normal.
    daily = series.webhook_failure_ratio(86400.0)
    normal = rec.use(series.seasonal(daily, base, valid=" >= 0"))
    volume = rec.use(series.increase(WEBHOOKS, window))
    errors = rec.use(series.webhook_failures(window))
    # Beyond chance on the square-root scale, where a count's spread is the same whatever
    # its mean: errors above (sqrt(expected) + z/2)^2. The usual mean + z deviations is too
    # tight for a few expected errors (at 1 expected, 6 errors in an hour happen about once
    # in 1,700 hours by chance; this asks for 9, about once in a million).
    band = f"(sqrt({normal}) + {num(base.z / 2)} / sqrt({volume}))^2"
    beyond = f"{ratio} > {band}"
    # Before min_weeks of history there is no normal: the seeds' share alone pages critical.
    unknown = f"({ratio} unless on(provider) {normal})"
    limits = dict(alert.thresholds)
    guard = alert.min_traffic or 0.0
    build = AlertBuild(source="postgres")
    normally = "far above this provider's normal (the median of the same day in past weeks)"
    critical = None
    if "critical" in limits:
        critical = (
            f"{ratio} > {num(limits['critical'])} and ({beyond} or {unknown})"
            f" and {volume} >= {num(guard)}"
        )
        text = (
            f"{{value}} of {{provider}} webhooks failed in the last {w}, {normally} "
            f"(alerting above {pct(limits['critical'])}; before two weeks of history, above "
            "that alone)."
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
        high = f"{errors} > {num(limits['high'])} and {beyond}"
        if critical:
            high += f"\nunless on(provider) ({critical})"
        text = (
            f"{{value}} {{provider}} webhooks failed in the last {w}, {normally} "
            f"(alerting above {limits['high']:g})."
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
    """Two weeks at a normal share of errors, then a change at each provider; and a stall
    before any history exists."""
    window, base = alert.window, th.file.baseline
    guard = alert.min_traffic or 0.0
    change = 2 * WEEK + 6 * 3600
    length = change + span(alert, th.file.escalation.tier3_after, window)
    usual = 0.002
    # name, webhooks per window, failed share after the change, when it changes
    cases = [
        ("critical", 1000.0, 0.5, change),
        ("high", 1000.0, 0.03, change),
        ("near-high", 1000.0, 0.004, change),
        # A quiet hour: 6 errors of 600 when 1.2 are expected, which chance makes.
        ("chance at a quiet hour", 600.0, 0.01, change),
        ("healthy at volume", 20000.0, usual, change),
        ("critical before any history", 1000.0, 0.5, 6 * 3600.0),
    ]
    out = []
    for i, (name, per_window, share, at) in enumerate(cases):
        labels = {"provider": f"provider{i}"}
        rate = per_window / window
        total = Counter.linear(rate)
        bad = Counter(((at, rate * usual), (float("inf"), rate * share)))

        def model(t: float, total: Counter = total, bad: Counter = bad) -> dict[str, float]:
            def share_at(moment: float) -> float | None:
                n, f = total.increase(86400, moment, STEP), bad.increase(86400, moment, STEP)
                return None if n is None or f is None or n == 0 else f / n

            n, f = total.increase(window, t, STEP), bad.increase(window, t, STEP)
            normal = weekly_median(share_at, t, base)
            if n is None or f is None or n == 0:
                return {}
            critical = "critical" in limits and f / n > limits["critical"] and n >= guard
            if normal is None:  # no history yet: the seeds' critical share alone
                return {"critical": f / n} if critical else {}
            if f / n <= (math.sqrt(normal) + base.z / 2 / math.sqrt(n)) ** 2:
                return {}
            if critical:
                return {"critical": f / n}
            return {"high": f} if "high" in limits and f > limits["high"] else {}

        input_series = (
            total.series(selector(WEBHOOKS, labels), length, STEP),
            bad.series(selector(WEBHOOKS_FAILED, labels), length, STEP),
        )
        out.append(
            Scenario(
                name=name,
                series=input_series,
                labels=labels,
                model=model,
                length_seconds=length,
                step_seconds=STEP,
                merge="all",
            )
        )
    return out


BUILDERS: dict[str, Builder] = {
    "StripeWebhookBacklog": stripe_webhook_backlog,
    "StripeWebhookEndpointDisabled": stripe_webhook_endpoint_disabled,
    "WebhookProcessingErrors": webhook_processing_errors,
}
