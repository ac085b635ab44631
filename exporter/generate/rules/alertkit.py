"""Shared pieces of alert builders: severity bands, scenario values, common descriptions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exporter.generate.promql import num
from exporter.generate.rules.model import AlertBuild, Format, Text, Variant
from exporter.generate.rules.recording import Recorder
from exporter.generate.thresholds import Alert, Thresholds

# (upward, strict) -> (operator entering a band, operator staying below the worse band)
_OPERATORS = {
    (True, True): (">", "<="),
    (True, False): (">=", "<"),
    (False, True): ("<", ">="),
    (False, False): ("<=", ">"),
}


@dataclass(frozen=True)
class Ladder:
    """Thresholds most severe first, and which way is worse.

    ``upward``: larger values are worse (failures); otherwise smaller are (success rates).
    ``strict``: the comparison excludes the threshold itself (``>``/``<``).
    """

    thresholds: tuple[tuple[str, float], ...]
    upward: bool
    strict: bool

    def conditions(self, expr: str) -> dict[str, str]:
        """PromQL per severity, each band excluding the more severe ones."""
        enter, below_worse = _OPERATORS[(self.upward, self.strict)]
        out: dict[str, str] = {}
        worse: float | None = None
        for severity, value in self.thresholds:
            cond = f"({expr}) {enter} {num(value)}"
            if worse is not None:
                cond += f" {below_worse} {num(worse)}"
            out[severity] = cond
            worse = value
        return out

    def severity(self, value: float | None) -> str | None:
        """Which band ``value`` falls in, as Prometheus decides it."""
        if value is None:
            return None
        for severity, threshold in self.thresholds:
            if self.upward and (value > threshold if self.strict else value >= threshold):
                return severity
            if not self.upward and (value < threshold if self.strict else value <= threshold):
                return severity
        return None

    def targets(self, *, ceiling: float | None = None) -> list[tuple[str, float]]:
        """Values for test scenarios: one inside each band, one just short of each threshold."""
        out: list[tuple[str, float]] = []
        values = [v for _, v in self.thresholds]
        for i, (severity, threshold) in enumerate(self.thresholds):
            worse = values[i - 1] if i else None
            if self.upward:
                firing = threshold * 1.5 if worse is None else (threshold + worse) / 2
                if ceiling is not None and worse is None:
                    firing = min(firing, (threshold + ceiling) / 2)
                near = threshold * 0.9
            else:
                firing = threshold * 0.8 if worse is None else (threshold + worse) / 2
                room = (ceiling - threshold) if ceiling is not None else threshold
                near = threshold + min(0.02, room / 4) if ceiling is not None else threshold * 1.1
            out.append((severity, firing))
            out.append((f"near-{severity}", near))
        return out


Builder = Callable[[Alert, Thresholds, Recorder], AlertBuild]
"""Builds one alert from its checked settings, recording the named series it reads."""


def ladder(alert: Alert, *, strict: bool = True) -> Ladder:
    """The alert's thresholds as a ladder, in the direction its definition says is worse."""
    return Ladder(alert.thresholds, alert.spec.upward, strict)


def variants(
    alert: Alert,
    conditions: dict[str, str],
    description: Callable[[str, float], Text],
    summary: str | None = None,
) -> list[Variant]:
    """One variant per severity band; ``description(severity, threshold)``."""
    thresholds = dict(alert.thresholds)
    return [
        Variant(
            severity=severity,
            expr=expr,
            summary=summary or alert.spec.summary,
            description=description(severity, thresholds.get(severity, 0.0)),
        )
        for severity, expr in conditions.items()
    ]


def pct(value: float) -> str:
    return f"{value * 100:g}%"


def describe(template: str, fmt: Format) -> Text:
    return Text(template, fmt)


def span(alert: Alert, tier3: float, extra: float = 0.0) -> float:
    """How long a scenario runs: long enough for tier 3 to fire after the condition holds."""
    return alert.for_seconds + tier3 + extra + 1800.0
