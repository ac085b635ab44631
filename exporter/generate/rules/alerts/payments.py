"""Builders of the payments, inventory and sales alerts: conditions and test scenarios."""

from __future__ import annotations

from exporter.generate.rules.alertkit import Ladder, describe, ladder, pct, span, variants
from exporter.generate.rules.model import (
    AlertBuild,
    Scenario,
    Text,
    Variant,
    constant,
    duration_text,
)
from exporter.generate.rules.promtool_series import Counter, gauge
from exporter.generate.rules.recording import Recorder, by
from exporter.generate.thresholds import Alert, Thresholds

AVAILABLE = "boxoffice_inventory_available_tickets"
SOLD = "boxoffice_tickets_sold_total"
EVENT = {"event": "lisbon-workshop", "city": "lisbon"}


def _sel(metric: str, labels: dict[str, str]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{metric}{{{inner}}}" if inner else metric


def ratio_scenario(
    name: str,
    alert: Alert,
    th: Thresholds,
    lad: Ladder,
    *,
    part: tuple[str, dict[str, str]],
    whole: tuple[str, dict[str, str]],
    share: float,
    labels: dict[str, str],
    shown: str = "share",
    merge: str = "",
) -> Scenario:
    """``part`` grows at ``share`` of ``whole``'s rate; the alert reads part/whole (or 1 - it)."""
    window = alert.window_seconds or 300.0
    guard = alert.min_traffic or 0.0
    per_second = max(1.0, 4 * guard / window)
    total, failed = Counter.linear(per_second), Counter.linear(per_second * share)
    length = span(alert, th.file.escalation.tier3_after)

    def model(t: float) -> dict[str, float]:
        num, den = failed.increase(window, t, 60), total.increase(window, t, 60)
        if num is None or den is None or den < guard:
            return {}
        value = num / den if shown == "share" else 1 - num / den
        severity = lad.severity(value)
        return {severity: value} if severity else {}

    return Scenario(
        name,
        (
            total.series(_sel(whole[0], whole[1]), length, 60),
            failed.series(_sel(part[0], part[1]), length, 60),
        ),
        labels,
        model,
        length,
        merge=merge,
    )


def payment_success_rate_low(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    window = alert.window_seconds or 300.0
    lad = ladder(alert)
    per_source: dict[str, dict[str, str]] = {}
    for source, failed, total in (
        ("postgres", "boxoffice_payments_failed_total", "boxoffice_payments_total"),
        ("stripe", "boxoffice_stripe_charges_failed_total", "boxoffice_stripe_charges_total"),
    ):
        ratio = rec.ratio(failed, total, window)
        volume = rec.increase(total, window)
        success = f'label_replace(1 - {ratio}, "source", "{source}", "", "")'
        per_source[source] = {
            sev: f"{cond} and on() {volume} >= {alert.min_traffic:g}"
            for sev, cond in lad.conditions(success).items()
        }
    conditions = {
        sev: "\n  or ".join(f"({c[sev]})" for c in per_source.values())
        for sev in per_source["postgres"]
    }
    w = duration_text(window)
    build = AlertBuild(
        variants(
            alert,
            conditions,
            lambda sev, t: describe(
                f"Payment success rate ({{source}}) is {{value}} over the last {w}, "
                f"below {pct(t)}, with at least {alert.min_traffic:g} payments.",
                "percent",
            ),
        )
    )
    for target, success_rate in lad.targets(ceiling=1.0):
        build.scenarios.append(
            ratio_scenario(
                target, alert, th, lad,
                part=("boxoffice_payments_failed_total", {"failure_code": "card_declined"}),
                whole=("boxoffice_payments_total", {}),
                share=1 - success_rate, labels={"source": "postgres"}, shown="success",
            )
        )  # fmt: skip
    return build


def payment_failures_burst(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    window = alert.window_seconds or 600.0
    lad = ladder(alert, strict=False)
    failed = rec.increase("boxoffice_payments_failed_total", window, keep=())
    w = duration_text(window)
    build = AlertBuild(
        variants(
            alert,
            lad.conditions(failed),
            lambda sev, t: describe(
                f"{{value}} payments failed in the last {w} (threshold {t:g}).", "number"
            ),
        ),
        source="postgres",
    )
    for target, count in lad.targets():
        counter = Counter.linear(count / window)
        length = span(alert, th.file.escalation.tier3_after, window)

        def model(t: float, counter: Counter = counter) -> dict[str, float]:
            value = counter.increase(window, t, 60)
            severity = lad.severity(value)
            return {severity: value} if severity and value is not None else {}

        series = counter.series(
            _sel("boxoffice_payments_failed_total", {"failure_code": "card_declined"}), length, 60
        )
        build.scenarios.append(Scenario(target, (series,), {}, model, length))
    return build


def money_ratio_alert(
    alert: Alert,
    th: Thresholds,
    rec: Recorder,
    *,
    part: str,
    whole: str,
    keep: tuple[str, ...],
    text: str,
    labels: dict[str, str],
    source: str,
) -> AlertBuild:
    """part / whole over the window, above the ladder, with ``whole`` at least min_traffic."""
    window = alert.window_seconds or 86400.0
    lad = ladder(alert)
    ratio = rec.ratio(part, whole, window, keep=keep)
    volume = rec.increase(whole, window, keep=keep)
    on = f"on({', '.join(keep)})" if keep else "on()"
    conditions = {
        sev: f"{cond} and {on} {volume} >= {alert.min_traffic:g}"
        for sev, cond in lad.conditions(ratio).items()
    }
    w = duration_text(window)
    build = AlertBuild(
        variants(
            alert,
            conditions,
            lambda sev, t: describe(text.replace("{w}", w).replace("{t}", pct(t)), "percent"),
        ),
        source=source,
    )
    for i, (target, share) in enumerate(lad.targets(ceiling=1.0)):
        distinct = {k: f"{v}{i}" if i else v for k, v in labels.items()}
        build.scenarios.append(
            ratio_scenario(
                target, alert, th, lad, part=(part, distinct), whole=(whole, distinct),
                share=share, labels=distinct, merge="all" if labels else "",
            )
        )  # fmt: skip
    return build


def refund_rate_high(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    return money_ratio_alert(
        alert, th, rec, part="boxoffice_refunds_total", whole="boxoffice_revenue_total",
        keep=("currency",), labels={"currency": "usd"}, source="postgres",
        text="Refunds are {value} of {currency} revenue over the last {w} (threshold {t}).",
    )  # fmt: skip


def dispute_rate_high(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    return money_ratio_alert(
        alert, th, rec, part="boxoffice_stripe_disputes_total",
        whole="boxoffice_stripe_charges_total", keep=(), labels={}, source="stripe",
        text="Disputes are {value} of Stripe charges over the last {w} (threshold {t}).",
    )  # fmt: skip


def _tier_selector(tier: str, listed: list[str]) -> str:
    if tier != "default":
        return f'{{tier="{tier}"}}'
    others = "|".join(t for t in listed if t != "default")
    return f'{{tier!~"{others}"}}' if others else ""


def inventory_level(
    alert: Alert, th: Thresholds, rec: Recorder, floor_alert: Alert | None
) -> AlertBuild:
    """InventoryLow / InventoryCritical: per tier, at or below the threshold and above the next."""
    severity = alert.severity or "medium"
    floors = dict(floor_alert.thresholds) if floor_alert and floor_alert.enabled else {}
    listed = [tier for tier, _ in alert.thresholds]
    clauses, bands = [], []
    for tier, threshold in alert.thresholds:
        floor = floors.get(tier, floors.get("default", 0.0))
        selector = _tier_selector(tier, listed)
        clauses.append(f"{by(AVAILABLE)} ({AVAILABLE}{selector}) <= {threshold:g} > {floor:g}")
        bands.append((tier, threshold, floor))
    text = Text(
        "{value} {tier} tickets left for {event} in {city} "
        "(alerting at " + ", ".join(f"{t} <= {v:g}" for t, v, _ in bands) + ").",
        "number",
    )
    build = AlertBuild(
        [Variant(severity, "\nor ".join(clauses), alert.spec.summary, text)], source="postgres"
    )
    for tier, threshold, floor in bands:
        label_tier = tier if tier != "default" else "general"
        for name, value in ((tier, threshold), (f"near-{tier}", threshold + 1)):
            fires = floor < value <= threshold
            build.scenarios.append(
                _gauge_scenario(name, alert, th, label_tier, value, fires, severity)
            )
    return build


def _gauge_scenario(
    name: str, alert: Alert, th: Thresholds, tier: str, value: float, fires: bool, severity: str
) -> Scenario:
    labels = {**EVENT, "event": f"{EVENT['event']}-{name}", "tier": tier}
    length = span(alert, th.file.escalation.tier3_after)
    result = {severity: value} if fires else {}
    return Scenario(
        name,
        (gauge(_sel(AVAILABLE, labels), value, length, 60),),
        labels,
        constant(result),
        length,
        merge="all",
    )


def inventory_fixed(alert: Alert, th: Thresholds, rec: Recorder, *, oversold: bool) -> AlertBuild:
    severity: str = alert.severity or "critical"
    op = "< 0" if oversold else "== 0"
    text = (
        Text("{tier} for {event} in {city} is oversold by {value} tickets.", "number")
        if oversold
        else Text("{tier} for {event} in {city} is sold out ({value} left).", "number")
    )
    expr = f"{by(AVAILABLE)} ({AVAILABLE}) {op}"
    if oversold:  # shown as how many tickets too many were sold
        expr = f"-({expr})"
    build = AlertBuild([Variant(severity, expr, alert.spec.summary, text)], source="postgres")
    cases = ((-2.0, True), (0.0, False)) if oversold else ((0.0, True), (1.0, False))
    for (value, fires), name in zip(cases, ("firing", "near"), strict=True):
        shown = -value if oversold else value
        scenario = _gauge_scenario(name, alert, th, "ga", value, fires, severity)
        result = {severity: shown} if fires else {}
        build.scenarios.append(
            Scenario(scenario.name, scenario.series, scenario.labels, constant(result),
                     scenario.length_seconds, merge="all")
        )  # fmt: skip
    return build
