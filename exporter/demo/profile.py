"""The demo profile of thresholds.yaml: the same rules with every alerting duration compressed.

The simulator plays the seller's day ``speed`` times faster, so a rule that waits 2 minutes
or reads a 5-minute window must wait and read ``speed`` times less to see the same sales.
Compressed: each alert's ``for`` and ``window``, thresholds that are durations (no sale for
2h) and the escalation delays. Not compressed: latency targets (they are request durations,
not waiting times), business hours and "same time last week" offsets (wall-clock facts).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from exporter.config.loader import read_yaml
from exporter.config.typed import parse_duration
from exporter.generate.alertdefs import ALERT_DEFS
from exporter.generate.render import rule_files
from exporter.generate.rules import duration_text
from exporter.generate.ruleset import build_ruleset
from exporter.generate.thresholds import load_thresholds

# Seconds. A ratio over a shorter window counts too few payments at demo rates: a healthy
# shop's 2% of declines would cross the 5% threshold by chance.
MIN_WINDOW = 30.0
MIN_WAIT = 1.0  # seconds: for escalation delays and duration thresholds


def _compressed(text: Any, speed: float, floor: float) -> Any:
    if not isinstance(text, str):
        return text
    try:
        seconds = parse_duration(text)
    except ValueError:
        return text  # not a duration: a number threshold written as text stays as it is
    if seconds == 0:
        return text
    return duration_text(max(floor, round(seconds / speed)))


def compress(data: dict[str, Any], speed: float, min_window: float = MIN_WINDOW) -> dict[str, Any]:
    """A copy of thresholds.yaml's mapping with its waiting times divided by ``speed``."""
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed:g}")
    out = dict(data)
    escalation = dict(out.get("escalation") or {})
    for key, value in escalation.items():
        escalation[key] = _compressed(value, speed, MIN_WAIT)
    if escalation:
        out["escalation"] = escalation
    given = out.get("alerts") or {}
    alerts: dict[str, Any] = {}
    for spec in ALERT_DEFS:  # every alert: one left to its defaults waits too
        settings = dict(given.get(spec.name) or {})
        waits = settings.get("for", duration_text(spec.for_seconds))
        settings["for"] = _compressed(waits, speed, 0.0)
        if spec.window_seconds is not None:
            window = settings.get("window", duration_text(spec.window_seconds))
            settings["window"] = _compressed(window, speed, min_window)
        if isinstance(settings.get("thresholds"), dict):
            settings["thresholds"] = {
                k: _compressed(v, speed, MIN_WAIT) for k, v in settings["thresholds"].items()
            }
        alerts[spec.name] = settings
    out["alerts"] = alerts
    return out


def write_demo_rules(
    thresholds: Path, speed: float, directory: Path, *, min_window: float = MIN_WINDOW
) -> list[Path]:
    """Write the demo profile and the rule files generated from it; return the rule files."""
    data = read_yaml(str(thresholds))
    if not isinstance(data, dict):
        raise ValueError(f"{thresholds}: must be a mapping at the top level")
    directory.mkdir(parents=True, exist_ok=True)
    profile = directory / "thresholds.demo.yaml"
    _write(profile, yaml.safe_dump(compress(data, speed, min_window), sort_keys=False))
    source = f"{thresholds.name} compressed {speed:g}x for the demo"
    ruleset = build_ruleset(load_thresholds(str(profile), source))
    paths = []
    for name, text in rule_files(ruleset, source).items():
        path = directory / name
        _write(path, text)
        paths.append(path)
    return sorted(paths)


def _write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
