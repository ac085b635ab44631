"""Sales alerts judged against the shop's own seasonal baseline (issue 15): no paid order
although the baseline expected several, and checkout completion far below its normal.

Their promtool scenarios run two weeks of history at half-hour steps (cheap for promtool)
and then change: the baseline (``series.seasonal``) exists from two weeks on.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable

from exporter.generate import series
from exporter.generate.promql import duration_text, num
from exporter.generate.rules.alertkit import describe, ladder, span, variants
from exporter.generate.rules.model import AlertBuild, Scenario, Series
from exporter.generate.rules.promtool_series import Counter, selector
from exporter.generate.rules.recording import Recorder, local_midnight
from exporter.generate.rules.scenarios import EVENT
from exporter.generate.series import COMPLETED, CREATED, LAST_PAID, PAYMENTS, SOLD
from exporter.generate.thresholds import Alert, Baseline, Thresholds

WEEK = 7 * 86400.0
STEP = 1800.0  # scenario step: two weeks of history in 700 evaluations
# A session completes minutes after it opens (Stripe Checkout: about 5 minutes, expiring at
# 30): completion compares the sessions completed in the window with those created in the
# same window this long before, so a surge of new sessions is no dip.
COMPLETION_DELAY = 300.0


def weekly_median(
    value: Callable[[float], float | None], t: float, baseline: Baseline
) -> float | None:
    """What ``series.seasonal`` records at ``t``: the median of ``value`` at the same moment
    of each past week that has one, or None with fewer than ``min_weeks`` of them."""
    past = [value(t - k * WEEK) for k in range(1, baseline.weeks + 1) if t - k * WEEK >= 0]
    known = [v for v in past if v is not None]
    return statistics.median(known) if len(known) >= baseline.min_weeks else None


# Silences NoRecentSales weighs, in multiples of baseline.min_silence (5m: 5m to 1d): the
# longest one without a paid order is compared with the orders the baseline expected in that
# long.
SILENCES = (1, 2, 6, 12, 36, 96, 288)


def no_recent_sales(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    base = th.file.baseline
    lad = ladder(alert, strict=False)
    windows = [float(m * base.min_silence) for m in SILENCES]
    expected = rec.use(series.expected_in_silence(windows, base))
    conditions = lad.conditions(expected)
    build = AlertBuild(
        variants=variants(
            alert,
            conditions,
            lambda sev, t: describe(
                "No paid order for longer than this shop's normal for this time of the week "
                "(the median of past weeks, scaled to today's checkout sessions) needs to "
                f"sell {{value}} orders; alerting at {t:g} expected orders.",
                "number",
            ),
        ),
        source="postgres",
    )
    per_hour = 12.0  # orders an hour at the same time of past weeks
    stop = 2 * WEEK + 6 * 3600  # sales stop, two weeks and six hours in
    orders = Counter(((math.inf, per_hour / 3600),))
    # Checkout sessions: twice the orders; from the third week (the stop's day) 0.75 of that
    # (an event sold out: fewer buyers), or none (the checkout broke before any opened).
    usual = 2 * per_hour / 3600
    fewer = Counter(((2 * WEEK, usual), (math.inf, 0.75 * usual)))
    none = Counter(((2 * WEEK, usual), (math.inf, 0.0)))
    # How long each case runs after the stop, in half hours: the longest silence it reaches
    # (30m, 1h, 3h) expected 6, 12 and 36 orders, held long enough for every tier.
    cases: list[tuple[str, int, float, Counter | None]] = [
        ("near-high", 1, stop, None),
        ("high", 3, stop, None),
        ("critical", 8, stop, None),
        # 0.75 of the buyers: the hour's 12 expected orders are 9 (silent), 3 hours' 36 are
        # 27 (critical); with no session at all, 36 are scaled by at most half (18: high).
        ("fewer buyers, an hour", 3, stop, fewer),
        ("fewer buyers, 3 hours", 8, stop, fewer),
        ("no sessions either", 8, stop, none),
    ]
    # Before any history: a shop selling 12 an hour stops six hours in; the hour before the
    # silence (12 orders) is what it expected.
    early = 6 * 3600.0
    cases.append(("high before any history", 3, early, None))

    def model(t: float, stop: float, created: Counter | None) -> dict[str, float]:
        silence = max(0.0, t - stop)
        values = []
        for w in windows:

            def sold(moment: float, w: float = w) -> float | None:
                return orders.increase(w, moment, STEP)

            normal = weekly_median(sold, t, base)
            if normal is None:  # no history yet: the window just before
                normal = sold(t - w)
            if normal is not None and silence >= w:
                values.append(normal)
        if not values:
            return {}
        value = max(values) * (
            buyers_share(th, t, created, series.LEAST_BUYERS_SHARE) if created else 1.0
        )
        severity = lad.severity(value)
        return {severity: value} if severity else {}

    for name, steps, stopped, created in cases:
        length = stopped + steps * STEP
        inputs: tuple[Series, ...] = (
            orders.series(selector(PAYMENTS, {}), length, STEP),
            _last_paid(stopped, length),
        )
        if created is not None:
            inputs += (created.series(selector(CREATED, {}), length, STEP),)
        build.scenarios.append(
            Scenario(
                name=name,
                series=inputs,
                labels={},
                model=functools.partial(model, stop=stopped, created=created),
                length_seconds=length,
                step_seconds=STEP,
            )
        )
    return build


def buyers_share(th: Thresholds, t: float, created: Counter, least: float = 0.0) -> float:
    """Today's checkout sessions over the median of past weeks' at ``t``, within
    [``least``, 1]; 1 without that history (scenarios: what the recorded share of today's
    buyers is)."""

    def opened(moment: float) -> float:
        return created.at(moment) - created.at(max(0.0, local_midnight(th, moment)))

    usual = weekly_median(opened, t, th.file.baseline)
    if not usual:
        return 1.0
    return min(1.0, max(least, opened(t) / usual))


def _last_paid(stop: float, length: float) -> Series:
    """The last paid order's time: each step until ``stop``, then frozen."""
    steps = int(stop // STEP)
    rest = int(length // STEP) - steps
    return Series(selector(LAST_PAID, {}), f"0+{num(STEP)}x{steps} {num(stop)}x{rest - 1}")


def checkout_conversion_low(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    base = th.file.baseline
    window = alert.window
    lad = ladder(alert)
    ratio_series = series.completion_ratio(window, COMPLETION_DELAY)
    ratio = rec.use(ratio_series)
    normal = rec.use(series.seasonal(ratio_series, base, valid=" >= 0"))
    created = rec.use(series.created_before(window, COMPLETION_DELAY))
    band = _band(normal, created, base)
    guard = f"{created} >= {num(alert.min_traffic or 0.0)}"
    floor = f"{ratio} < {num(base.completion_floor)}"
    small = _small_shop(alert, th, rec, guard)
    # An on-sale surge (tickets selling at SURGE times their seasonal normal) dips completion
    # by itself: open checkouts hold the seats, tiers sell out under buyers mid-checkout.
    # Only the worst band judges a surge; a checkout broken then also stops the paid orders
    # that NoRecentSales watches.
    sold_series = series.tickets_sold_all(SURGE_WINDOW)
    sold = rec.use(sold_series)
    sold_normal = rec.use(series.seasonal(sold_series, base))
    surge = f"on() {sold} > {num(SURGE)} * {sold_normal}"
    conditions: dict[str, str] = {}
    worse = ""
    for severity, share in alert.thresholds:
        below = f"({ratio} < {normal} * {num(share)} and {ratio} < {band}"
        if not worse:
            below += f" or {floor}"
        cond = f"{normal} and ({below}) and {guard})"
        if severity == alert.thresholds[-1][0]:
            cond = f"({cond}\nor {small(share)})"
        conditions[severity] = cond + (f"\nunless ({worse})\nunless {surge}" if worse else "")
        worse = cond
    w = duration_text(window)
    least = alert.thresholds[-1][0]

    def small_note(severity: str) -> str:
        if severity != least:
            return ""
        minimum = num(alert.min_traffic or 0.0)
        day = duration_text(SMALL_SHOP_WINDOW)
        return f" (a shop of fewer than {minimum} sessions in it: {day})"

    build = AlertBuild(
        variants=variants(
            alert,
            conditions,
            lambda sev, t: describe(
                f"Checkout completion over the last {w}{small_note(sev)} fell below {t:g}x "
                "this shop's normal "
                "for this hour of the week, beyond its usual spread; normally {value} of "
                "sessions complete (the median of past weeks).",
                "percent",
            ),
        ),
        source="postgres",
    )
    build.scenarios = _conversion_scenarios(alert, th, lad.severity)
    build.scenarios.append(_small_shop_drift(alert, th))
    return build


def _band(normal: str, created: str, base: Baseline) -> str:
    """The lower edge of the normal's spread: ``baseline.z`` deviations of the difference
    between the window's completion and the normal, the normal (a median of a few past
    windows) counted as noisy as one window of the same size, hence the 2."""
    return f"{normal} - {num(base.z)} * sqrt(2 * {normal} * (1 - {normal}) / {created})"


# Tickets over this window at this many times their seasonal normal are an on-sale surge.
SURGE_WINDOW = 3600.0
SURGE = 2.0


# A shop with fewer than min_traffic sessions in the alert's window is judged over a day.
SMALL_SHOP_WINDOW = 86400.0


def _small_shop(alert: Alert, th: Thresholds, rec: Recorder, guard: str) -> Callable[[float], str]:
    """The condition for a shop too small for the alert's window (``guard`` fails): the
    completion over a day below ``share`` of its normal and beyond its spread, on at least
    ``min_traffic`` sessions. A day-long drift at a shop of a few sessions an hour is then
    seen; a big shop is judged by the window alone."""
    base = th.file.baseline
    ratio_series = series.completion_ratio(SMALL_SHOP_WINDOW, COMPLETION_DELAY)
    ratio = rec.use(ratio_series)
    # A past week counts only if its day was whole (the ratio existed a day before it): the
    # first day of history holds a few hours of sessions, not a day's completion.
    normal = rec.use(series.seasonal(ratio_series, base, valid=" >= 0", whole=SMALL_SHOP_WINDOW))
    created = rec.use(series.created_before(SMALL_SHOP_WINDOW, COMPLETION_DELAY))
    band = _band(normal, created, base)
    minimum = num(alert.min_traffic or 0.0)

    def condition(share: float) -> str:
        return (
            f"({normal} and ({ratio} < {normal} * {num(share)} and {ratio} < {band})"
            f" and {created} >= {minimum}\nunless {guard})"
        )

    return condition


def _conversion_scenarios(
    alert: Alert, th: Thresholds, band: Callable[[float | None], str | None]
) -> list[Scenario]:
    base = th.file.baseline
    window = alert.window
    usual = 0.5  # completion in past weeks
    per_second = max(4 * (alert.min_traffic or 0.0), 400.0) / window  # sessions created
    change = 2 * WEEK + 6 * 3600
    length = change + span(alert, th.file.escalation.tier3_after, 3 * 3600)
    out = []
    least, least_share = alert.thresholds[-1]
    shares = [(sev, share * 0.8, False) for sev, share in alert.thresholds]
    shares.append((f"near-{least}", 0.97, False))
    # The least band's dip while tickets sell at three times their normal since an hour
    # before: an on-sale, silent.
    shares.append((f"{least} during an on-sale surge", least_share * 0.8, True))
    for name, share, surging in shares:
        created = Counter.linear(per_second)
        done = Counter(((change, per_second * usual), (math.inf, per_second * usual * share)))

        def completion(t: float, done: Counter = done, created: Counter = created) -> float | None:
            if t < 4 * 3600:  # the first hours: the created window is not full yet
                return None
            n = created.at(t - COMPLETION_DELAY) - created.at(t - COMPLETION_DELAY - window)
            return (done.at(t) - done.at(t - window)) / n

        def model(
            t: float,
            completion: Callable[[float], float | None] = completion,
            surging: bool = surging,
        ) -> dict[str, float]:
            normal, now = weekly_median(completion, t, base), completion(t)
            if normal is None or now is None:
                return {}
            n = per_second * window
            spread = base.z * math.sqrt(2 * normal * (1 - normal) / n)
            beyond = now < normal - spread
            severity = band(now / normal) if beyond else None
            if now < base.completion_floor:
                severity = alert.thresholds[0][0]
            if surging and severity != alert.thresholds[0][0]:
                return {}  # tickets at 3x their normal all along: a surge
            return {severity: normal} if severity else {}

        inputs: tuple[Series, ...] = (
            created.series(selector(CREATED, {}), length, STEP),
            done.series(selector(COMPLETED, {}), length, STEP),
        )
        if surging:
            tickets = Counter(((change - SURGE_WINDOW, 100 / 3600), (math.inf, 300 / 3600)))
            labels = {**EVENT, "tier": "ga"}
            inputs += (tickets.series(selector(SOLD, labels), length, STEP),)
        out.append(
            Scenario(
                name=name,
                series=inputs,
                labels={},
                model=model,
                length_seconds=length,
                step_seconds=STEP,
            )
        )
    return out


def _small_shop_drift(alert: Alert, th: Thresholds) -> Scenario:
    """A shop of 10 sessions an hour (under ``min_traffic`` in the window) whose completion
    falls from half to a fifth: only the day-long completion can tell."""
    base = th.file.baseline
    least, share = alert.thresholds[-1]
    minimum = alert.min_traffic or 0.0
    per_second = max(minimum / 2, 1.0) / alert.window
    change = 2 * WEEK + 6 * 3600
    length = change + SMALL_SHOP_WINDOW + span(alert, th.file.escalation.tier3_after)
    created = Counter.linear(per_second)
    done = Counter(((change, per_second * 0.5), (math.inf, per_second * 0.2)))

    def completion(t: float) -> float | None:
        if t < SMALL_SHOP_WINDOW + 3600:
            return None
        start = t - COMPLETION_DELAY
        n = created.at(start) - created.at(start - SMALL_SHOP_WINDOW)
        return (done.at(t) - done.at(t - SMALL_SHOP_WINDOW)) / n

    def model(t: float) -> dict[str, float]:
        normal, now = weekly_median(completion, t, base), completion(t)
        if normal is None or now is None:
            return {}
        n = created.at(t - COMPLETION_DELAY) - created.at(t - COMPLETION_DELAY - SMALL_SHOP_WINDOW)
        spread = base.z * math.sqrt(2 * normal * (1 - normal) / n)
        if n >= minimum and now < normal * share and now < normal - spread:
            return {least: normal}
        return {}

    return Scenario(
        name=f"{least} at a small shop, over a day",
        series=(
            created.series(selector(CREATED, {}), length, STEP),
            done.series(selector(COMPLETED, {}), length, STEP),
        ),
        labels={},
        model=model,
        length_seconds=length,
        step_seconds=STEP,
    )
