"""Test scenarios several alert categories build the same way: a ratio of two counters,
constant gauges, a latency histogram with a chosen p95."""

from __future__ import annotations

from exporter.generate.rules.alertkit import Ladder, span
from exporter.generate.rules.model import Scenario, Series, constant
from exporter.generate.rules.promtool_series import Counter, gauge, selector
from exporter.generate.selectors import parse_selector, satisfying
from exporter.generate.thresholds import Alert, Thresholds

# Labels of an event's series in test data (tier added per scenario).
EVENT = {"event": "lisbon-workshop", "city": "lisbon"}


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
    window = alert.window
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
        name=name,
        series=(
            total.series(selector(whole[0], whole[1]), length, 60),
            failed.series(selector(part[0], part[1]), length, 60),
        ),
        labels=labels,
        model=model,
        length_seconds=length,
        merge=merge,
    )


def gauge_cases(
    alert: Alert,
    th: Thresholds,
    metric: str,
    labels: dict[str, str],
    cases: list[tuple[str, float, dict[str, float]]],
) -> list[Scenario]:
    """One constant gauge per case: (name, value, what the conditions evaluate to)."""
    length = span(alert, th.file.escalation.tier3_after)
    out = []
    for i, (name, value, result) in enumerate(cases):
        # One promtool group for all cases when the series carry a label to tell them apart.
        distinct = {k: f"{v}{i}" if i else v for k, v in labels.items()}
        out.append(
            Scenario(
                name=name,
                series=(gauge(selector(metric, distinct), value, length, 60),),
                labels=distinct,
                model=constant(result),
                length_seconds=length,
                merge="all" if labels else "",
            )
        )
    return out


def histogram_series(
    metric: str, labels: dict[str, str], p95: float, length: float
) -> tuple[Series, ...]:
    """Buckets whose interpolated 95th percentile is ``p95``: every request under ``p95/0.95``."""
    upper = round(p95 / 0.95, 6)
    counter = Counter.linear(1.0)
    return tuple(
        counter.series(selector(metric, {**labels, "le": le}), length, 60)
        for le in (repr(upper), "+Inf")
    )


def selector_labels(matchers: str) -> dict[str, str]:
    """Labels satisfying extra matchers like ``job="app"`` (empty: none)."""
    return satisfying(parse_selector("x{" + matchers + "}")[1]) if matchers else {}
