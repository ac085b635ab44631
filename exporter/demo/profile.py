"""The demo profile of thresholds.yaml: the same rules with every alerting duration compressed.

The simulator plays the seller's day ``speed`` times faster, so a rule that waits 2 minutes
or reads a 5-minute window must wait and read ``speed`` times less to see the same sales.
Compressed: each alert's ``for``, ``keep_firing_for`` and ``window``, thresholds and
``relative`` settings that are durations (no sale for 2h, a 2h runway) and the escalation
delays, and NoRecentSales' shortest silence (``baseline.min_silence``). A window is never
shorter than ``min_window``; when one is raised to it, the counts that go with it
(``min_traffic``, count and money thresholds) grow by the same factor, so the rule still
asks for the same rate of the seller's day.
Not compressed: latency targets (they are request durations, not waiting times) and "same
time last week" offsets (wall-clock facts). Business hours become the whole week: the demo's
seller lives on a compressed clock, so the wall clock's business hours would gate its rules
and mute its alerts at random (the muting is tested on its own, in the routing tests).
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from exporter.config.typed import parse_duration
from exporter.config.yamlfile import read_mapping
from exporter.generate.alertdefs import ALERT_DEFS, AlertDef
from exporter.generate.promql import duration_text
from exporter.generate.rules.rule_files import rule_files
from exporter.generate.rules.ruleset import RuleSet, build_ruleset
from exporter.generate.thresholds import DAYS, Baseline, load_thresholds

# Seconds. A ratio over a shorter window counts too few payments at demo rates: a healthy
# shop's 2% of declines would cross the 5% threshold by chance.
MIN_WINDOW = 30.0
MIN_WAIT = 1.0  # seconds: for escalation delays and duration thresholds
# Thresholds that watch the exporter itself, not the seller's day: an exporter collecting
# every second is not stale after a few seconds, whatever the demo's speed.
FLOORS = {"ExporterDataStale": 10.0}
ALL_WEEK = {"start": "00:00", "end": "24:00", "days": list(DAYS)}


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


def _scaled(value: float, stretch: float) -> float:
    scaled = value * stretch
    return int(scaled) if scaled == int(scaled) else round(scaled, 3)


def _thresholds(spec: AlertDef, given: Any, speed: float, stretch: float) -> dict[str, Any]:
    """Duration thresholds compressed; counts and money over a window raised to the floor
    grow with it, so they still mean the same rate of the seller's day."""
    values: dict[str, Any] = dict(spec.thresholds)
    if isinstance(given, dict):
        values.update(given)
    out: dict[str, Any] = {}
    for key, value in values.items():
        measure = spec.measure.get(key, spec.measure.get("*"))
        if measure in ("count", "money") and isinstance(value, int | float):
            out[key] = _scaled(value, stretch)
        else:
            out[key] = _compressed(value, speed, FLOORS.get(spec.name, MIN_WAIT))
    return out


def compress(data: dict[str, Any], speed: float, min_window: float = MIN_WINDOW) -> dict[str, Any]:
    """A copy of thresholds.yaml's mapping with its waiting times divided by ``speed``."""
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed:g}")
    out = dict(data)
    out["business_hours"] = ALL_WEEK
    escalation = dict(out.get("escalation") or {})
    for key, value in escalation.items():
        escalation[key] = _compressed(value, speed, MIN_WAIT)
    if escalation:
        out["escalation"] = escalation
    # NoRecentSales' silences are multiples of min_silence: they shrink with the day.
    baseline = dict(out.get("baseline") or {})
    silence = baseline.get("min_silence", duration_text(Baseline().min_silence))
    baseline["min_silence"] = _compressed(silence, speed, min_window)
    out["baseline"] = baseline
    given = out.get("alerts") or {}
    alerts: dict[str, Any] = {}
    for spec in ALERT_DEFS:  # every alert: one left to its defaults waits too
        settings = dict(given.get(spec.name) or {})
        waits = settings.get("for", duration_text(spec.for_seconds))
        settings["for"] = _compressed(waits, speed, 0.0)
        stretch = 1.0
        if spec.window_seconds is not None:
            window = settings.get("window", duration_text(spec.window_seconds))
            settings["window"] = _compressed(window, speed, min_window)
            stretch = parse_duration(settings["window"]) / (parse_duration(window) / speed)
        thresholds = _thresholds(spec, settings.get("thresholds"), speed, stretch)
        if thresholds:
            settings["thresholds"] = thresholds
        if spec.min_traffic is not None:
            settings["min_traffic"] = _scaled(
                settings.get("min_traffic", spec.min_traffic), stretch
            )
        keep = settings.get("keep_firing_for", duration_text(spec.keep_firing_for))
        settings["keep_firing_for"] = _compressed(keep, speed, 0.0)
        relative = dict(settings.get("relative") or {})
        for name, default, measure in spec.relative:
            if measure == "duration":
                given_value = relative.get(name, duration_text(default))
                relative[name] = _compressed(given_value, speed, MIN_WAIT)
        if relative:
            settings["relative"] = relative
        alerts[spec.name] = settings
    out["alerts"] = alerts
    return out


def reports_soon(data: dict[str, Any], after: float, now: float | None = None) -> dict[str, Any]:
    """``data`` with the evening digest at the seller's local minute ``after`` seconds from
    ``now`` (rounded up to a whole minute), no morning slot and the sales ticker on: the
    demo's owner sees a digest arrive minutes after starting, and the ticker tick."""
    zone = ZoneInfo(str(data.get("timezone") or "UTC"))
    moment = datetime.fromtimestamp((time.time() if now is None else now) + after, zone)
    slot = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if slot.hour == 23 and slot.minute >= 50:  # the digest must end by midnight
        slot = slot.replace(hour=0, minute=0) + timedelta(days=1)
    digest = dict(data.get("digest") or {})
    digest.update({"enabled": True, "morning": None, "evening": slot.strftime("%H:%M")})
    digest["active_for"] = "5m"
    ticker = {**dict(data.get("ticker") or {}), "enabled": True}
    return {**data, "digest": digest, "ticker": ticker}


def demo_profile(
    thresholds: Path,
    speed: float,
    directory: Path,
    *,
    min_window: float = MIN_WINDOW,
    reports_after: float | None = None,
) -> tuple[RuleSet, list[Path]]:
    """Write the demo profile and its rule files; return its rule set and the rule files.
    ``reports_after``: seconds from now to the digest's slot (``reports_soon``); None: no
    reports at all (their wall-clock slots would fire at random in a scripted run)."""
    data = read_mapping(str(thresholds))
    if reports_after is not None:
        data = reports_soon(data, reports_after)
    else:
        data = {**data, "digest": {"enabled": False}, "ticker": {"enabled": False}}
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
    return ruleset, sorted(paths)


def _write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
