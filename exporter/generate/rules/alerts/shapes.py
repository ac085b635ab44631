"""Alert shapes several categories share: a severity ladder over a gauge, and a 0/1 gauge
that alerts at 0. Both read the gauge max over exporter replicas."""

from __future__ import annotations

from exporter.generate.rules.alertkit import ladder, variants
from exporter.generate.rules.model import AlertBuild, Format, Text, Variant
from exporter.generate.rules.scenarios import gauge_cases
from exporter.generate.series import latest
from exporter.generate.thresholds import Alert, Thresholds


def gauge_ladder(
    alert: Alert,
    th: Thresholds,
    *,
    metric: str,
    labels: dict[str, str],
    text: str,
    fmt: Format,
    source: str,
) -> AlertBuild:
    """The gauge against the alert's ladder; ``{t}`` in ``text`` is the band's threshold."""
    lad = ladder(alert)
    build = AlertBuild(
        variants=variants(
            alert,
            lad.conditions(latest(metric)),
            lambda sev, t: Text(text.replace("{t}", f"{t:g}"), fmt),
        ),
        source=source,
    )
    cases = []
    for target, value in lad.targets():
        severity = lad.severity(value)
        cases.append((target, value, {severity: value} if severity else {}))
    build.scenarios = gauge_cases(alert, th, metric, labels, cases)
    return build


def down_alert(
    alert: Alert,
    th: Thresholds,
    *,
    metric: str,
    labels: dict[str, str],
    text: str,
    source: str,
) -> AlertBuild:
    """A 0/1 gauge that alerts at 0, max over replicas."""
    severity: str = alert.severity or "high"
    expr = f"{latest(metric)} == 0"
    variant = Variant(
        severity=severity, expr=expr, summary=alert.spec.summary, description=Text(text, "number")
    )
    build = AlertBuild(variants=[variant], source=source)
    build.scenarios = gauge_cases(
        alert, th, metric, labels, [("firing", 0.0, {severity: 0.0}), ("near", 1.0, {})]
    )
    return build
