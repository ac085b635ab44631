"""Inventory alerts (SPEC 5): tickets running low per tier (relative to the tier's
capacity), sold out (a success: notified once), oversold, and the sell-out prediction from
the recent sales rate. All but oversold describe a standing state and never escalate.

A shop has hundreds of tiers and a platform hosts many shops, so these alerts do not each
read every tier again: the tiers at or under the largest low-stock cap and their capacity
are recorded once per evaluation ahead of the alerts in their group, the tiers sold out now
in the ``-tiers`` group, and each alert compares those few series. SelloutPredicted's
prediction, which must read every tier's stock and sales, is recorded in a group of its own
(``-sellout``), from every tier's stock recorded in another (``-stock``). The two notices
that fire for many tiers at once on a busy platform (InventorySoldOut, SelloutPredicted) are
each alone in a group (``-soldout``, ``-predicted``): every firing alert's labels and
annotations are templated at every evaluation, which costs more than their queries
(docs/benchmarks.md, "Rules at 50 shops").
"""

from __future__ import annotations

import math
from collections.abc import Callable

from exporter.generate import series
from exporter.generate.promql import duration_text, num
from exporter.generate.rules.alertkit import Builder, describe, ladder, pct, span, variants
from exporter.generate.rules.model import AlertBuild, Scenario, Text, Variant, constant
from exporter.generate.rules.promtool_series import Counter, gauge, selector
from exporter.generate.rules.recording import Recorder
from exporter.generate.rules.scenarios import EVENT
from exporter.generate.series import AVAILABLE, CAPACITY, SOLD
from exporter.generate.thresholds import Alert, Thresholds


def _tier_selector(tier: str, listed: list[str]) -> str:
    if tier != "default":
        return f'{{tier="{tier}"}}'
    others = "|".join(t for t in listed if t != "default")
    return f'{{tier!~"{others}"}}' if others else ""


def _limit(alert: Alert, tier: str, capacity: str) -> tuple[float, float, str]:
    """The tier's cap, the alert's share of capacity and the PromQL limit: the smaller.
    ``capacity`` is the tier's capacity series, its tier selector included."""
    caps = dict(alert.thresholds)
    cap = caps.get(tier, caps.get("default", 0.0))
    share = alert.relative["capacity_share"]
    return cap, share, f"clamp_max({capacity} * {num(share)}, {num(cap)})"


def _running_low(th: Thresholds) -> series.NamedSeries:
    """Tickets left in the tiers that can be low, critical, sold out or oversold: at most
    the largest cap of InventoryLow and InventoryCritical left (each tier's limit is the
    smaller of its cap and a share of its capacity)."""
    caps = [
        cap
        for name in ("InventoryLow", "InventoryCritical")
        if th.alerts[name].enabled
        for _tier, cap in th.alerts[name].thresholds
    ]
    return series.tiers_running_low(max([0.0, *caps]))


def running_low(th: Thresholds, rec: Recorder) -> str:
    """The recorded tickets left of those tiers, beside the alerts reading them."""
    return rec.use(_running_low(th), beside=True)


def capacity_running_low(th: Thresholds, rec: Recorder) -> str:
    """The recorded capacity of those tiers, beside the alerts reading it; every tier's
    capacity is recorded in the ``-capacity`` group, read up to an evaluation late."""
    every = series.capacity()
    rec.use(every, group="capacity")
    return rec.use(series.capacity_running_low(_running_low(th), every), beside=True)


def sold_out_lately(th: Thresholds, rec: Recorder) -> str:
    """Tiers that were sold out in the last hour: expiring checkouts hand a few seats back
    after a sell-out, which is InventorySoldOut's business (it keeps firing), not news.
    Read from the tiers recorded sold out at each evaluation of the hour, not from an hour
    of every tier's samples: a sell-out shorter than one evaluation interval may pass
    unseen, and the record (``-tiers`` group) is read up to an evaluation late."""
    return f"max_over_time({rec.use(series.sold_out_now(_running_low(th)))}[1h])"


def inventory_level(
    alert: Alert, th: Thresholds, rec: Recorder, floor_alert: Alert | None
) -> AlertBuild:
    """InventoryLow / InventoryCritical: per tier, tickets left at or below the smaller of
    the tier's cap (thresholds) and a share of its capacity (``relative.capacity_share``),
    above the next alert's limit (``floor_alert``) so one tier is in one band at a time,
    and only while some are left (sold out is InventorySoldOut's)."""
    severity: str = alert.severity or "medium"
    floor = floor_alert if floor_alert is not None and floor_alert.enabled else None
    listed = [tier for tier, _ in alert.thresholds]
    left, low_capacity = running_low(th, rec), capacity_running_low(th, rec)
    lately = sold_out_lately(th, rec)
    clauses = []
    for tier, _threshold in alert.thresholds:
        tiers = _tier_selector(tier, listed)
        _cap, _share, limit_expr = _limit(alert, tier, f"{low_capacity}{tiers}")
        clause = f"({left}{tiers} > 0) <= {limit_expr}"
        if floor is not None:
            clause += f" > {_limit(floor, tier, f'{low_capacity}{tiers}')[2]}"
        clauses.append(f"({clause}\nunless {lately})")
    share = alert.relative["capacity_share"]
    text = Text(
        "{value} {tier} tickets left for {event} in {city} (alerting at "
        + pct(share)
        + " of capacity, at most "
        + ", ".join(f"{t} {v:g}" for t, v in alert.thresholds)
        + ").",
        "number",
    )
    variant = Variant(
        severity=severity, expr="\nor ".join(clauses), summary=alert.spec.summary, description=text
    )
    build = AlertBuild(variants=[variant], source="postgres")
    for tier, cap in alert.thresholds:
        label_tier = tier if tier != "default" else "general"
        # A big tier (the cap binds), a small one (the share binds), a tiny one (never).
        for size, raw in (("big", 2 * cap / share), ("small", cap / share / 2), ("tiny", 8)):
            capacity = float(math.ceil(raw))
            limit = min(cap, share * capacity)
            low = 0.0
            if floor is not None:
                f_caps = dict(floor.thresholds)
                f_cap = f_caps.get(tier, f_caps.get("default", 0.0))
                low = min(f_cap, floor.relative["capacity_share"] * capacity)
            # At the limit, one above it; a tiny tier: its last ticket, and sold out.
            values = (1, 0) if size == "tiny" else (math.floor(limit), math.floor(limit) + 1)
            for name, value in zip((size, f"near-{size}"), values, strict=True):
                result = {severity: float(value)} if value > 0 and low < value <= limit else {}
                scenario = _gauge_scenario(
                    f"{tier}-{name}", alert, th, label_tier, float(value), result, capacity
                )
                build.scenarios.append(scenario)
    return build


def inventory_low(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    return inventory_level(alert, th, rec, th.alerts["InventoryCritical"])


def inventory_critical(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    return inventory_level(alert, th, rec, None)


def _gauge_scenario(
    name: str,
    alert: Alert,
    th: Thresholds,
    tier: str,
    value: float,
    result: dict[str, float],
    capacity: float = 100.0,
) -> Scenario:
    labels = {**EVENT, "event": f"{EVENT['event']}-{name}", "tier": tier}
    length = span(alert, th.file.escalation.tier3_after)
    return Scenario(
        name=name,
        series=(
            gauge(selector(AVAILABLE, labels), value, length, 60),
            gauge(selector(CAPACITY, labels), capacity, length, 60),
        ),
        labels=labels,
        model=constant(result),
        length_seconds=length,
        merge="all",
    )


def inventory_fixed(alert: Alert, th: Thresholds, rec: Recorder, *, oversold: bool) -> AlertBuild:
    """InventorySoldOut / InventoryOversold: no ticket left, or fewer than none (a tier
    running low holds every such tier: its limit is never below 0)."""
    severity: str = alert.severity or "critical"
    op = "< 0" if oversold else "== 0"
    text = (
        Text("{tier} for {event} in {city} is oversold by {value} tickets.", "number")
        if oversold
        else Text("{tier} for {event} in {city} is sold out ({value} left).", "number")
    )
    expr = f"{running_low(th, rec)} {op}"
    if oversold:  # shown as how many tickets too many were sold
        expr = f"-({expr})"
    variant = Variant(severity=severity, expr=expr, summary=alert.spec.summary, description=text)
    # Sold out is news for the business, read an evaluation late from the alert group; oversold
    # stays beside the tiers it compares, alone with its cheap queries (detected at once).
    build = AlertBuild(variants=[variant], source="postgres", group="" if oversold else "soldout")
    cases = ((-2.0, True), (0.0, False)) if oversold else ((0.0, True), (1.0, False))
    for (value, fires), name in zip(cases, ("firing", "near"), strict=True):
        shown = -value if oversold else value
        result = {severity: shown} if fires else {}
        build.scenarios.append(_gauge_scenario(name, alert, th, "ga", value, result))
    return build


def inventory_sold_out(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    return inventory_fixed(alert, th, rec, oversold=False)


def inventory_oversold(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    return inventory_fixed(alert, th, rec, oversold=True)


def sellout_predicted(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    """SelloutPredicted: tickets left / the sales rate of ``window`` (summed from the hourly
    record: see ``series.increase_by_hours``) under the ladder's horizon. The prediction is
    recorded in the ``-sellout`` group, the alert in ``-predicted`` reads it an evaluation
    late."""
    window = alert.window
    lad = ladder(alert)
    horizon = max(value for _severity, value in lad.thresholds)
    left = series.stock()
    rec.use(left, group="stock")  # every tier's stock, folded once for the forecast
    forecast = series.sellout_seconds(window, horizon, left, _running_low(th))
    predicted = rec.use(forecast, group="sellout")
    # A forecast hours ahead, held before it notifies (15 minutes): evaluated 15 times in
    # that hold, at most every minute, it costs its share of the cores less often; so is
    # the stock it reads (up to an interval late: a minute on a day's forecast).
    every = min(60.0, alert.for_seconds / 15)
    if every >= 1:
        for group in ("stock", "sellout", "predicted"):
            rec.evaluate_every(group, every)
    w = duration_text(window)
    build = AlertBuild(
        variants=variants(
            alert,
            lad.conditions(predicted),
            lambda sev, t: describe(
                f"At the sales rate of the last {w}, {{tier}} for {{event}} in {{city}} "
                f"sells out in {{value}} (alerting under {duration_text(t)}).",
                "duration",
            ),
        ),
        source="postgres",
        group="predicted",  # its many notices' templating apart from the per-tier reads
    )
    sales = Counter.linear(1 / 60)  # one ticket a minute
    sold = _sold(sales, window)
    first = series.HOUR if series.by_hours(window) else 60.0  # the first prediction
    # Long enough for the first prediction to hold ``for`` and tier 3 with margin.
    length = span(alert, th.file.escalation.tier3_after, first)
    # Prediction = available * window / sold: a day's hours fill one by one, so it falls.
    for name, available in (
        ("firing", math.ceil(0.5 * horizon * (sold(first) or 0) / window)),  # under it at once
        ("near", math.ceil(1.1 * horizon * (sold(length) or 0) / window)),  # above to the end
    ):
        labels = {**EVENT, "event": f"{EVENT['event']}-{name}", "tier": "ga"}

        def model(t: float, available: float = available) -> dict[str, float]:
            sold_in_window = sold(t)
            if not sold_in_window:
                return {}
            value = available / (sold_in_window / window)
            severity = lad.severity(value)
            return {severity: value} if severity else {}

        input_series = (
            gauge(selector(AVAILABLE, labels), available, length, 60),
            sales.series(selector(SOLD, labels), length, 60),
        )
        build.scenarios.append(
            Scenario(
                name=name,
                series=input_series,
                labels=labels,
                model=model,
                length_seconds=length,
                merge="all",
            )
        )
    return build


def _sold(counter: Counter, window: float) -> Callable[[float], float | None]:
    """What ``series.increase_by_hours`` gives at ``t`` in a promtool test (every group
    evaluated at each step, the hourly record before the sum): the hourly increase at each
    whole hour in ``(t - window, t]``, None before the first one (no series); or the
    counter's increase over ``window`` when that is not whole hours."""
    hour = series.HOUR

    def at(t: float) -> float | None:
        if not series.by_hours(window):
            return counter.increase(window, t, 60)
        hours = [h * hour for h in range(int(t // hour), -1, -1) if h * hour > t - window]
        points = [p for p in (counter.increase(hour, h, 60) for h in hours) if p is not None]
        return sum(points) if points else None

    return at


BUILDERS: dict[str, Builder] = {
    "InventoryLow": inventory_low,
    "InventoryCritical": inventory_critical,
    "InventorySoldOut": inventory_sold_out,
    "InventoryOversold": inventory_oversold,
    "SelloutPredicted": sellout_predicted,
}
