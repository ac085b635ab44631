"""YAML text of the rule files: recording.yml, one file per alert category and reports.yml."""

from __future__ import annotations

from typing import Any

from exporter.generate.promql import duration_text
from exporter.generate.rules.model import AlertRule, RecordingRule
from exporter.generate.rules.recording import TIME_GROUP
from exporter.generate.rules.reports import report_groups
from exporter.generate.rules.ruleset import RuleGroup, RuleSet
from exporter.generate.yaml_text import dump, header


def _recording(rule: RecordingRule) -> dict[str, Any]:
    return {"record": rule.record, "expr": rule.expr}


def _alerting(rule: AlertRule) -> dict[str, Any]:
    out: dict[str, Any] = {
        "alert": rule.alert,
        "expr": rule.expr,
        "for": duration_text(rule.for_seconds),
    }
    if rule.keep_firing_for:
        out["keep_firing_for"] = duration_text(rule.keep_firing_for)
    out["labels"] = rule.labels
    out["annotations"] = rule.annotations
    return out


def _group(group: RuleGroup) -> dict[str, Any]:
    out: dict[str, Any] = {"name": group.name}
    if group.interval:
        out["interval"] = duration_text(group.interval)
    out["rules"] = [_recording(r) for r in group.records] + [_alerting(r) for r in group.alerts]
    return out


def rule_files(ruleset: RuleSet, source: str) -> dict[str, str]:
    """``<file name>.yml`` -> text: recording.yml and one file per alert category."""
    groups: list[dict[str, Any]] = [
        {"name": TIME_GROUP, "rules": [_recording(r) for r in ruleset.time_rules]}
    ]
    for shared in ruleset.shared_groups():
        groups.append({"name": shared.name, "rules": [_recording(r) for r in shared.records]})
    files: dict[str, dict[str, Any]] = {"recording": {"groups": groups}}
    for category in dict.fromkeys(built.alert.spec.category for built in ruleset.alerts):
        files[category] = {"groups": [_group(group) for group in ruleset.category_groups(category)]}
    reports = report_groups(ruleset.thresholds)
    if reports:
        files["reports"] = {"groups": reports}
    what = {
        "recording": "Recording rules: the local clock, and rates and per-tier series read by"
        " several categories.",
        "reports": "The owner's reports: the daily digest and the sales ticker (docs/digest.md).",
    }
    return {
        f"{name}.yml": header(source, what.get(name, f"Alerting rules, category {name}."))
        + dump(body)
        for name, body in files.items()
    }
