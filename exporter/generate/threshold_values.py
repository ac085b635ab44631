"""Threshold values of one alert: keys, kinds (ratio, count, money, duration) and order."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

from exporter.config.errors import ConfigError
from exporter.config.typed import join, parse_duration
from exporter.generate.alertdefs import AlertDef

ErrorAt = Callable[[str, str], ConfigError]
"""Makes the error for a dotted path and a reason, naming the thresholds file."""

_NAME = re.compile(r"[a-z0-9_]+")


def alert_thresholds(
    spec: AlertDef, given: dict[str, Any], path: str, error: ErrorAt
) -> tuple[tuple[str, float], ...]:
    """An alert's thresholds from thresholds.yaml (defaults when absent), checked, most
    severe first for ladders."""
    if spec.keys in ("fixed", "table"):
        if given:
            where = "latency and slos" if spec.keys == "table" else "its condition"
            raise error(path, f"{spec.name} takes no thresholds (see {where})")
        return ()
    if not given:
        return spec.thresholds
    values: dict[str, float] = {}
    defaults = dict(spec.thresholds)
    for key, raw in given.items():
        where = join(path, key)
        if spec.keys == "ladder" and key not in defaults:
            raise error(where, f"unknown key (known keys: {', '.join(sorted(defaults))})")
        if spec.keys == "tiers" and not _NAME.fullmatch(key):
            raise error(where, "ticket tier names are lowercase letters, digits and _")
        measure = spec.measure.get(key) or spec.measure["*"]
        values[key] = _threshold_value(measure, raw, where, error)
    if spec.keys == "ladder":
        ordered = [(k, values[k]) for k, _ in spec.thresholds if k in values]
        _check_ladder(spec, ordered, path, error)
        return tuple(ordered)
    return tuple(sorted(values.items()))


def relative_settings(
    spec: AlertDef, given: dict[str, Any], path: str, error: ErrorAt
) -> dict[str, float]:
    """The alert's shop-relative settings (alertdefs ``relative``), defaults when absent."""
    known = {name: (default, measure) for name, default, measure in spec.relative}
    values = {name: default for name, (default, _) in known.items()}
    for key, raw in given.items():
        if key not in known:
            names = ", ".join(sorted(known)) or "none"
            raise error(join(path, key), f"unknown setting of {spec.name} (known: {names})")
        values[key] = _threshold_value(known[key][1], raw, join(path, key), error)
    return values


def _threshold_value(measure: str, raw: Any, where: str, error: ErrorAt) -> float:
    if measure == "duration":
        value = _duration(raw, where, error)
        if value <= 0:
            raise error(where, f"must be > 0, got {raw!r}")
        return value
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise error(where, f"must be a number, got {raw!r}")
    value = float(raw)
    if measure == "ratio" and not 0 < value < 1:
        raise error(where, f"must be a ratio between 0 and 1 (0.05 is 5%), got {value:g}")
    if measure == "factor" and value <= 0:
        raise error(where, f"must be > 0, got {value:g}")
    if value < 0:
        raise error(where, f"must be >= 0, got {value:g}")
    return value


def _duration(raw: Any, where: str, error: ErrorAt) -> float:
    if isinstance(raw, str):
        try:
            return parse_duration(raw)
        except ValueError as exc:
            raise error(where, str(exc)) from None
    raise error(where, f"must be a duration like 2h, got {raw!r}")


def _check_ladder(
    spec: AlertDef, ordered: list[tuple[str, float]], path: str, error: ErrorAt
) -> None:
    measures = {spec.measure.get(k) for k, _ in ordered}
    if len(measures) != 1:
        return  # severities measure different things (count and ratio)
    upward = spec.upward
    for (worse, worse_value), (milder, milder_value) in itertools.pairwise(ordered):
        if upward and not milder_value < worse_value:
            raise error(join(path, milder), f"must be below {worse} ({worse_value:g})")
        if not upward and not milder_value > worse_value:
            raise error(join(path, milder), f"must be above {worse} ({worse_value:g})")
