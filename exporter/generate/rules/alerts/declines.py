"""DeclineRateAnomalous (issue 15): declines far above the shop's own normal.

Card testing is a burst of attempts, most of them declined: the decline rate (customer
declines and fraud blocks over attempts) jumps far above what the shop sees normally. A
healthy shop declines 3-10% of attempts, and that rate does not depend on its size, so the
baseline is the shop's own decline rate over the previous day (ending an hour ago, so an
attack does not raise it). The alert needs the rate ``threshold`` times that baseline, at
least ``min_ratio`` in absolute terms and ``min_traffic`` attempts in its window; it stays
silent until the baseline has a full window of history.
"""

from __future__ import annotations

from collections.abc import Callable

from exporter.generate import class_series
from exporter.generate.class_series import BASELINE_GAP, decline_baseline_name
from exporter.generate.promql import duration_text
from exporter.generate.rules.alertkit import Builder, ladder, pct, span, variants
from exporter.generate.rules.model import AlertBuild, Query, Scenario, Text
from exporter.generate.rules.promtool_series import Counter, selector
from exporter.generate.rules.recording import Recorder
from exporter.generate.series import PAYMENTS, PAYMENTS_FAILED
from exporter.generate.thresholds import Alert, Thresholds

_HOUR = 3600.0
Normal = Callable[[float], float | None]


def decline_rate_anomalous(alert: Alert, th: Thresholds, rec: Recorder) -> AlertBuild:
    window, baseline = alert.window, alert.baseline_seconds or 86400.0
    lad = ladder(alert)
    floor, guard = alert.min_ratio or 0.0, alert.min_traffic or 0.0
    ratio = rec.use(class_series.decline_ratio(window, th))
    normal = rec.use(class_series.decline_baseline(baseline, th))
    volume = rec.use(class_series.attempts(window))
    conditions = {
        sev: f"{ratio} >= {floor:g}\nand on(source) ({cond})\nand on(source) {volume} >= {guard:g}"
        for sev, cond in lad.conditions(f"{ratio} / on(source) {normal}").items()
    }
    w, b = duration_text(window), duration_text(baseline)
    query = Query("normal", decline_baseline_name(baseline), "source", "percent")

    def text(sev: str, t: float) -> Text:
        return Text(
            f"{{value}} of {{source}} payment attempts were declined in the last {w}, over "
            f"{t:g}x the shop's normal of {{normal}} (its decline rate over the {b} before the "
            f"last hour) and above {pct(floor)}: card testing looks like this.",
            "percent",
            (query,),
        )

    build = AlertBuild(variants=variants(alert, conditions, text))
    history = baseline + BASELINE_GAP
    start = history + _HOUR  # the attack starts once the baseline exists
    attack = span(alert, th.file.escalation.tier3_after, window)
    cases = [
        # (name, attempts/s before and after `at`, declined share before and after, at)
        ("card-testing", (1.0, 6.0), (0.05, 0.76), start),
        ("healthy-surge", (1.0, 10.0), (0.08, 0.08), start),
        ("near-high", (1.0, 6.0), (0.15, 0.57), start),  # 3.8x a 15% normal
        ("no-history-yet", (1.0, 6.0), (0.05, 0.76), 2 * _HOUR),
    ]
    for name, rates, shares, at in cases:
        length = at + attack
        tried = Counter(((at, rates[0]), (float("inf"), rates[1])))
        declined = Counter(((at, rates[0] * shares[0]), (float("inf"), rates[1] * shares[1])))

        def normal_at(
            t: float, tried: Counter = tried, declined: Counter = declined
        ) -> float | None:
            if t < history:
                return None
            base = tried.increase(baseline, t - BASELINE_GAP, 60)
            bad = declined.increase(baseline, t - BASELINE_GAP, 60)
            return None if not base or bad is None else bad / base

        def model(
            t: float,
            tried: Counter = tried,
            declined: Counter = declined,
            normal_at: Normal = normal_at,
        ) -> dict[str, float]:
            n, d = tried.increase(window, t, 60), declined.increase(window, t, 60)
            base = normal_at(t)
            if not n or d is None or base is None or n < guard or d / n < floor:
                return {}
            severity = lad.severity(d / n / base if base else float("inf"))
            return {severity: d / n} if severity else {}

        def queried(t: float, normal_at: Normal = normal_at) -> dict[str, float]:
            base = normal_at(t)
            return {} if base is None else {"normal": base}

        build.scenarios.append(
            Scenario(
                name=name,
                series=(
                    tried.series(selector(PAYMENTS, {}), length, 60),
                    declined.series(
                        selector(PAYMENTS_FAILED, {"failure_code": "card_declined"}), length, 60
                    ),
                ),
                labels={"source": "postgres"},
                model=model,
                length_seconds=length,
                queried=queried,
            )
        )
    return build


BUILDERS: dict[str, Builder] = {"DeclineRateAnomalous": decline_rate_anomalous}
