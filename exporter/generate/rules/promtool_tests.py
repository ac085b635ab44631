"""promtool tests of each alert: scenarios stepped through as promtool will evaluate them,
checked where each escalation tier starts to fire. Deterministic byte for byte."""

from __future__ import annotations

import itertools
from typing import Any

from exporter.generate.promql import duration_text
from exporter.generate.rules.model import AlertRule, Model, Scenario
from exporter.generate.rules.recording import TIME_GROUP
from exporter.generate.rules.ruleset import BuiltAlert, RuleSet
from exporter.generate.yaml_text import dump, header


def test_file(built: BuiltAlert, ruleset: RuleSet, source: str) -> str:
    """promtool tests of one alert: each scenario evaluated where its tiers start to fire."""
    category = built.alert.spec.category
    step = min(s.step_seconds for s in built.scenarios)
    body: dict[str, Any] = {
        "rule_files": ["../generated/recording.yml", f"../generated/{category}.yml"],
        "evaluation_interval": duration_text(step),
        "group_eval_order": [
            TIME_GROUP,
            *(group.name for group in ruleset.shared_groups()),
            *(group.name for group in ruleset.category_groups(category)),
        ],
        "tests": [_test_group(built, s) for s in merged(built.scenarios)],
    }
    what = f"promtool tests of {built.alert.spec.name}: every severity and escalation tier."
    return header(source, what) + dump(body)


def merged(scenarios: tuple[Scenario, ...]) -> list[Scenario]:
    """Scenarios marked ``merge`` (same step and length) become one test group: far fewer
    evaluation steps for promtool, the same checks."""
    out: list[Scenario] = [s for s in scenarios if not s.merge]
    keys = sorted({s.merge for s in scenarios if s.merge})
    for key in keys:
        out.append(_combine([s for s in scenarios if s.merge == key]))
    return out


def _combine(mergeable: list[Scenario]) -> Scenario:
    shapes = {(s.step_seconds, s.length_seconds) for s in mergeable}
    if len(shapes) != 1:
        raise ValueError("scenarios merged into one test group must share step and length")
    first = mergeable[0]
    pairs = [pair for s in mergeable for pair in s.results()]
    return Scenario(
        name=" + ".join(s.name for s in mergeable),
        series=tuple(series for s in mergeable for series in s.series),
        labels=pairs[0][0],
        model=pairs[0][1],
        length_seconds=first.length_seconds,
        step_seconds=first.step_seconds,
        also=tuple(pairs[1:]),
    )


def _test_group(built: BuiltAlert, scenario: Scenario) -> dict[str, Any]:
    firing = simulate(built, scenario)
    gaps = [d2 - d1 for ds in built.tier_delays.values() for d1, d2 in itertools.pairwise(ds)]
    margin = scenario.step_seconds if all(g > scenario.step_seconds for g in gaps) else 0.0
    last = _last_step(scenario)
    times = {last} | {min(start + margin, last) for start in firing.starts.values()}
    tests: list[dict[str, Any]] = []
    for t in sorted(times):
        expected: list[dict[str, Any]] = [
            _expected(scenario, rule, labels, value, t) for labels, rule, value in firing.at(t)
        ]
        tests.append(
            {
                "eval_time": duration_text(t),
                "alertname": built.alert.spec.name,
                "exp_alerts": sorted(expected, key=lambda e: sorted(e["exp_labels"].items())),
            }
        )
    return {
        "name": f"{built.alert.spec.name} {scenario.name}",
        "interval": duration_text(scenario.step_seconds),
        "input_series": [{"series": s.selector, "values": s.values} for s in scenario.series],
        "alert_rule_test": tests,
    }


def _last_step(scenario: Scenario) -> float:
    return (scenario.length_seconds // scenario.step_seconds) * scenario.step_seconds


Key = tuple[int, int]  # (result index in the scenario, rule index)


class Firing:
    """When each rule fires for each result series of a scenario, following ``for`` and
    ``keep_firing_for``, with the value its annotations show."""

    def __init__(self, rules: list[AlertRule], results: list[tuple[dict[str, str], Model]]) -> None:
        self.rules = rules
        self.results = results
        self.timeline: dict[float, dict[Key, float]] = {}
        self.starts: dict[Key, float] = {}  # start of each run that lasts to the end

    def at(self, t: float) -> list[tuple[dict[str, str], AlertRule, float]]:
        return [
            (self.results[r][0], self.rules[i], value)
            for (r, i), value in self.timeline.get(t, {}).items()
        ]


def simulate(built: BuiltAlert, scenario: Scenario) -> Firing:
    """Step through the scenario as promtool will, tracking each rule's active run."""
    results = scenario.results()
    firing = Firing(list(built.rules), results)
    active: list[dict[str, float]] = [{} for _ in results]
    kept: dict[Key, tuple[float, float]] = {}  # firing, condition gone: since, last value
    shown: dict[Key, float] = {}
    times: list[float] = []
    t, last = 0.0, _last_step(scenario)
    while t <= last:
        now: dict[Key, float] = {}
        for r, (_labels, model) in enumerate(results):
            holding = model(t)
            active[r] = {s: active[r].get(s, t) for s in holding}
            for i, rule in enumerate(built.rules):
                key = (r, i)
                since = active[r].get(rule.severity)
                if since is not None and (key in shown or t - since >= rule.for_seconds):
                    now[key] = shown[key] = holding[rule.severity]
                    kept.pop(key, None)
                elif key in shown and rule.keep_firing_for:
                    off, value = kept.setdefault(key, (t, shown[key]))
                    if t - off < rule.keep_firing_for:
                        now[key] = value
                    else:
                        del shown[key], kept[key]
                else:
                    shown.pop(key, None)
        firing.timeline[t] = now
        times.append(t)
        t += scenario.step_seconds
    for key in firing.timeline[times[-1]]:
        start = times[-1]
        for moment in reversed(times):
            if key not in firing.timeline[moment]:
                break
            start = moment
        firing.starts[key] = start
    return firing


def _expected(
    scenario: Scenario, rule: AlertRule, labels: dict[str, str], value: float, t: float
) -> dict[str, Any]:
    return {
        "exp_labels": {**labels, **rule.labels},
        "exp_annotations": {
            **rule.annotations,
            "description": rule.text.expand(
                labels, value, scenario.queried(t) if scenario.queried else None
            ),
        },
    }
