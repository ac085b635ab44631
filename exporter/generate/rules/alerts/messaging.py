"""Messaging alerts (SPEC 5): SMS failing to deliver, SMS spend far above what the shop's
orders explain, and the Twilio balance's runway at the current spend."""

from __future__ import annotations

import math
from dataclasses import replace

from exporter.generate import class_series, series
from exporter.generate.promql import duration_text, num
from exporter.generate.rules.alertkit import (
    Builder,
    Ladder,
    describe,
    ladder,
    pct,
    span,
    variants,
)
from exporter.generate.rules.model import AlertBuild, Scenario, constant
from exporter.generate.rules.promtool_series import Counter, sampled, selector
from exporter.generate.rules.recording import Recorder
from exporter.generate.rules.scenarios import ratio_scenario
from exporter.generate.series import COMPLETED, SMS, SMS_COST, SMS_FAILED
from exporter.generate.thresholds import Alert, Thresholds

BALANCE = "boxoffice_twilio_balance"


_WEEK = 7 * 86400.0
_HOUR = 3600.0
# A small sender's texts are judged over this window, on evidence rather than volume.
SMALL_SENDER_WINDOW = 3600.0


def sms_delivery_failure_rate_high(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    """System failures above the threshold's share of the window's texts, with
    ``min_traffic`` texts in the window; or, for a sender too small for that, the same share
    over an hour on at least ``relative.min_failures`` failures that the shop's normal rate
    (its last week's system failures per text) makes beyond chance: more than the expected
    count plus ``baseline.z`` Poisson standard deviations."""
    window = alert.window
    lad = ladder(alert)
    ratio = rec.use(class_series.sms_failure_ratio(window, th))
    volume = rec.use(series.increase(SMS, window))
    long_ratio = rec.use(class_series.sms_failure_ratio(SMALL_SENDER_WINDOW, th))
    failed = rec.use(class_series.sms_failed(SMALL_SENDER_WINDOW, th))
    texts = rec.use(series.increase(SMS, SMALL_SENDER_WINDOW))
    normal = rec.use(class_series.sms_failure_ratio(_WEEK, th))
    expected = f"({texts} * on() {normal})"
    small = (
        f"{failed} >= {num(alert.relative['min_failures'])}"
        f" and on() {failed} > {expected} + {num(th.file.baseline.z)} * sqrt({expected})"
    )
    long_conditions = lad.conditions(long_ratio)
    conditions = {
        sev: f"({cond} and on() {volume} >= {alert.min_traffic:g})"
        f"\nor ({long_conditions[sev]} and on() {small})"
        for sev, cond in lad.conditions(ratio).items()
    }
    w = duration_text(window)
    build = AlertBuild(
        variants=variants(
            alert,
            conditions,
            lambda sev, t: describe(
                f"{{value}} of SMS that reached a final status in the last {w} (a small "
                f"sender: {duration_text(SMALL_SENDER_WINDOW)}) failed for a reason on our "
                f"side (provider or account; the recipient's bad numbers and carrier "
                f"filtering not counted) (threshold {pct(t)}).",
                "percent",
            ),
        ),
        source="twilio",
    )
    for target, share in lad.targets(ceiling=1.0):
        build.scenarios.append(
            ratio_scenario(
                target,
                alert,
                th,
                lad,
                part=(SMS_FAILED, {"error_code": "30008"}),
                whole=(SMS, {}),
                share=share,
                labels={},
            )
        )
    # Landlines and invalid numbers are the recipient's problem: never a delivery outage.
    recipient = ratio_scenario(
        "recipient-failures-only",
        alert,
        th,
        lad,
        part=(SMS_FAILED, {"error_code": "30006"}),
        whole=(SMS, {}),
        share=0.5,
        labels={},
    )
    build.scenarios.append(replace(recipient, model=constant({})))
    top = lad.thresholds[0][1]
    # A sender of 12 texts an hour whose provider starts failing half of them (6 an hour),
    # and one failing 2 an hour: over the share, but too few failures to be evidence.
    for name, failing in (("small sender", 6.0), ("small sender, few failures", 2.0)):
        build.scenarios.append(_small_sender(alert, th, lad, name, failing / 3600, top))
    return build


def _small_sender(
    alert: Alert, th: Thresholds, lad: Ladder, name: str, failing: float, top: float
) -> Scenario:
    """12 texts an hour, no system failure for six hours, then ``failing`` a second."""
    change = 6 * _HOUR
    length = change + span(alert, th.file.escalation.tier3_after, SMALL_SENDER_WINDOW)
    total = Counter.linear(12 / 3600)
    failed = Counter(((change, 0.0), (math.inf, failing)))
    z = th.file.baseline.z

    def model(t: float) -> dict[str, float]:
        n, f = total.increase(alert.window, t, 60), failed.increase(alert.window, t, 60)
        if n is None or f is None:
            return {}
        if n >= (alert.min_traffic or 0.0) and lad.severity(f / n):
            return {str(lad.severity(f / n)): f / n}
        n = total.increase(SMALL_SENDER_WINDOW, t, 60) or 0.0
        f = failed.increase(SMALL_SENDER_WINDOW, t, 60) or 0.0
        week_n, week_f = total.increase(_WEEK, t, 60) or 0.0, failed.increase(_WEEK, t, 60) or 0.0
        expected = n * week_f / week_n if week_n else 0.0
        beyond = f >= alert.relative["min_failures"] and f > expected + z * math.sqrt(expected)
        severity = lad.severity(f / n) if n and beyond else None
        return {severity: f / n} if severity else {}

    return Scenario(
        name=name,
        series=(
            total.series(selector(SMS, {}), length, 60),
            failed.series(selector(SMS_FAILED, {"error_code": "30008"}), length, 60),
        ),
        labels={},
        model=model,
        length_seconds=length,
    )


def _usual_spend(rec: Recorder, window: float) -> str:
    """What SMS for the last ``window``'s paid orders usually cost: the last week's spend per
    paid order (SMS follow orders, so an on-sale is normal spend) times those orders."""
    week = rec.use(series.sms_cost(_WEEK))
    orders_week = rec.use(series.increase(COMPLETED, _WEEK))
    orders = rec.use(series.increase(COMPLETED, window))
    return f"({week} / on() group_left clamp_min({orders_week}, 1) * on() group_left {orders})"


def sms_cost_high(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    """SMS spend over the window above the ladder's amount (a floor) and above
    ``relative.spend_factor`` times what the window's paid orders usually cost in SMS:
    pumping and loops, not a busy day."""
    window = alert.window
    lad = ladder(alert)
    factor = alert.relative["spend_factor"]
    spend = rec.use(series.sms_cost(window))
    usual = f"({num(factor)} * {_usual_spend(rec, window)} or {spend} * 0)"
    conditions = {
        sev: f"{cond} and {spend} > {usual}" for sev, cond in lad.conditions(spend).items()
    }
    w = duration_text(window)
    build = AlertBuild(
        variants=variants(
            alert,
            conditions,
            lambda sev, t: describe(
                f"SMS spend was {{value}} {{currency}} in the last {w}, over {factor:g}x what "
                f"SMS for its paid orders usually cost (and over {t:g}).",
                "money",
            ),
        ),
        source="twilio",
    )
    length = span(alert, th.file.escalation.tier3_after, window)
    floor = lad.thresholds[-1][1]
    # (name, spend per window, paid orders per window): orders explain the spend or not.
    cases = [(name, amount, 0.0) for name, amount in lad.targets()]
    cases += [("busy", floor * 4, floor * 4 / 0.02), ("pumping", floor * 4, 10.0)]
    for i, (name, amount, orders_per_window) in enumerate(cases):
        labels = {"currency": f"c{i}"}
        counter = Counter.linear(amount / window)
        paid = Counter.linear(orders_per_window / window)

        def model(t: float, counter: Counter = counter, paid: Counter = paid) -> dict[str, float]:
            value = counter.increase(window, t, 60)
            if value is None:
                return {}
            orders = paid.increase(window, t, 60) or 0.0
            per_order = (counter.increase(_WEEK, t, 60) or 0.0) / max(
                paid.increase(_WEEK, t, 60) or 0.0, 1.0
            )
            severity = lad.severity(value)
            if not severity or not value > factor * per_order * orders:
                return {}
            return {severity: value}

        build.scenarios.append(
            Scenario(
                name=name,
                series=(
                    counter.series(selector(SMS_COST, labels), length, 60),
                    paid.series(selector(COMPLETED, {"instance": f"shop{i}"}), length, 60),
                ),
                labels=labels,
                model=model,
                length_seconds=length,
            )
        )
    return build


# The balance's usual low: its lowest point over this window, ending this long ago.
USUAL_LOW_WINDOW = "1w"
USUAL_LOW_OFFSET = 3600.0


def twilio_balance_low(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    """The runway: how long the balance lasts at the last hour's SMS spend, under
    ``relative.runway``, while the balance is lower than it has been in the past week (up
    to an hour ago); or the balance under the ladder's amount (a floor) whatever the spend.
    The value is the runway in seconds either way.

    The usual low is what tells a shop whose balance is refilled (Twilio's auto-recharge
    below a set amount, or a person topping up at a habitual level) from one whose refill
    did not happen: a refilled balance dips to the same low every cycle, and at a busy
    on-sale's spend its runway there is short, which is no incident. Auto-recharge failing
    (a declined card) or no refill at all takes the balance below any recent low."""
    lad = ladder(alert)
    runway = alert.relative["runway"]
    spend = rec.use(series.sms_cost(_HOUR))
    balance = series.latest(BALANCE)
    left = f"({balance} / ({spend} / {num(_HOUR)}))"
    usual_low = (
        f"{series.by(BALANCE)} (min_over_time({BALANCE}[{USUAL_LOW_WINDOW}]"
        f" offset {duration_text(USUAL_LOW_OFFSET)}))"
    )
    conditions = {sev: f"{left} and {cond}" for sev, cond in lad.conditions(balance).items()}
    worst = lad.thresholds[0][0]
    conditions[worst] = (
        f"({left} < {num(runway)}\n  unless on(currency) ({usual_low} <= {balance}))"
        f"\nor {conditions[worst]}"
    )
    build = AlertBuild(
        variants=variants(
            alert,
            conditions,
            lambda sev, t: describe(
                "The Twilio balance lasts {value} at the last hour's SMS spend (alerting under "
                f"{duration_text(runway)} of runway once the balance is below its lowest point "
                f"of the past week, which a refill such as auto-recharge normally stops at, or "
                f"under {t:g} {{currency}} of balance).",
                "duration",
            ),
        ),
        source="twilio",
    )
    length = span(alert, th.file.escalation.tier3_after, 2 * _HOUR)
    steps = int(length // 60)
    floor = lad.thresholds[-1][1]
    busy = 100.0 * _HOUR / runway * 2.37  # spend an hour: 100 lasts under the runway

    def draining(amount: float) -> list[float]:
        return [amount - 0.05 * i for i in range(steps + 1)]

    # Refilled to 100 whenever it reaches 40 (auto-recharge), from the first sample on.
    refilled = [40.0] + [100.0 - 2.0 * (i % 31) for i in range(steps)]
    spike = Counter(((_HOUR, 1.0 / _HOUR), (math.inf, busy / _HOUR)))
    # (name, balance per step, spend): the runway binds, then the floor; a refilled balance
    # is not low however short its runway at an on-sale's spend.
    cases: tuple[tuple[str, list[float], Counter], ...] = (
        ("runway", draining(100.0), Counter.linear(busy / _HOUR)),
        ("near-runway", draining(100.0), Counter.linear(busy * 0.37 / 2.37 / _HOUR)),
        ("floor", [floor * 0.63] * (steps + 1), Counter.linear(floor * 0.13 / runway)),
        ("near-floor", [floor * 2.1] * (steps + 1), Counter.linear(floor * 0.13 / runway)),
        ("refilled at its usual low", refilled, spike),
    )
    low_lag = int(USUAL_LOW_OFFSET // 60)
    for i, (name, values, counter) in enumerate(cases):
        labels = {"currency": f"c{i}"}

        def model(
            t: float, values: list[float] = values, counter: Counter = counter
        ) -> dict[str, float]:
            spent = counter.increase(_HOUR, t, 60)
            if not spent:
                return {}
            step = int(t // 60)
            amount = values[step]
            value = amount / (spent / _HOUR)
            severity = lad.severity(amount)
            out = {severity: value} if severity else {}
            past = values[: step - low_lag + 1] if step >= low_lag else []
            if value < runway and not (past and min(past) <= amount):
                out[lad.thresholds[0][0]] = value
            return out

        build.scenarios.append(
            Scenario(
                name=name,
                series=(
                    sampled(selector(BALANCE, labels), values),
                    counter.series(selector(SMS_COST, labels), length, 60),
                ),
                labels=labels,
                model=model,
                length_seconds=length,
                merge="all",
            )
        )
    return build


BUILDERS: dict[str, Builder] = {
    "SmsDeliveryFailureRateHigh": sms_delivery_failure_rate_high,
    "SmsCostHigh": sms_cost_high,
    "TwilioBalanceLow": twilio_balance_low,
}
