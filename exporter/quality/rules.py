"""The generated rule files as plain data: recording rules in dependency order, alerts.

Read from disk with PyYAML, the way Prometheus reads them, so that the benchmark judges the
files a user deploys rather than the generator's objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


def seconds(duration: str | None) -> float:
    """A Prometheus duration (``1h30m``, ``0s``) in seconds; ``None`` is zero."""
    if not duration:
        return 0.0
    parts = _DURATION.findall(duration)
    if "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return float(sum(int(n) * _UNITS[u] for n, u in parts))


@dataclass(frozen=True)
class RecordingRule:
    """A recording rule and the recording rules it reads."""

    record: str
    expr: str
    reads: frozenset[str]


@dataclass(frozen=True, kw_only=True)
class AlertRule:
    """One alerting rule as Prometheus evaluates it."""

    alert: str
    expr: str
    for_s: float
    keep_firing_for_s: float
    labels: dict[str, str]

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "none")

    @property
    def escalation(self) -> str:
        return self.labels.get("escalation", "1")

    @property
    def holds_while_blind(self) -> bool:
        """True when the rule keeps itself firing through ``ALERTS`` while its source is down."""
        return f'ALERTS{{alertname="{self.alert}"' in self.expr


@dataclass(frozen=True)
class RuleSet:
    """Every rule of the files read, recording and alerting, in file order."""

    recording: tuple[RecordingRule, ...]
    alerts: tuple[AlertRule, ...]

    def levels(self) -> list[list[RecordingRule]]:
        """Recording rules in passes: each pass reads only raw series or earlier passes."""
        level: dict[str, int] = {}
        by_name = {r.record: r for r in self.recording}

        def depth(name: str, seen: frozenset[str]) -> int:
            if name in level:
                return level[name]
            if name in seen:
                raise ValueError(f"recording rules read each other in a cycle: {name}")
            rule = by_name[name]
            deps = [depth(d, seen | {name}) for d in rule.reads if d in by_name and d != name]
            level[name] = 1 + max(deps, default=0)
            return level[name]

        for rule in self.recording:
            depth(rule.record, frozenset())
        passes: list[list[RecordingRule]] = [[] for _ in range(max(level.values(), default=0))]
        for rule in self.recording:
            passes[level[rule.record] - 1].append(rule)
        return passes


def _reads(expr: str, names: Iterable[str]) -> frozenset[str]:
    return frozenset(n for n in names if re.search(rf"(?<![\w:]){re.escape(n)}(?![\w:])", expr))


def parse(documents: Iterable[dict[str, Any]]) -> RuleSet:
    """Rules of Prometheus rule-file documents (``{"groups": [...]}``), in file order."""
    raw_recording: list[tuple[str, str]] = []
    alerts: list[AlertRule] = []
    for document in documents:
        for group in document.get("groups") or []:
            for rule in group.get("rules") or []:
                if "record" in rule:
                    raw_recording.append((str(rule["record"]), str(rule["expr"])))
                    continue
                if (rule.get("labels") or {}).get("notify") == "heartbeat":
                    continue  # the Watchdog: always firing, heard by a machine, never people
                alerts.append(
                    AlertRule(
                        alert=str(rule["alert"]),
                        expr=str(rule["expr"]),
                        for_s=seconds(rule.get("for")),
                        keep_firing_for_s=seconds(rule.get("keep_firing_for")),
                        labels={str(k): str(v) for k, v in (rule.get("labels") or {}).items()},
                    )
                )
    names = [name for name, _ in raw_recording]
    recording = tuple(
        RecordingRule(name, expr, _reads(expr, names)) for name, expr in raw_recording
    )
    return RuleSet(recording=recording, alerts=tuple(alerts))


def load(paths: Iterable[Path]) -> RuleSet:
    """Rules of the given rule files (e.g. ``sorted(Path("rules/generated").glob("*.yml"))``)."""
    return parse(yaml.safe_load(path.read_text()) or {} for path in paths)
