"""Scope labels (issue 20), pure: every aggregation and join of every generated rule keeps
the shop's scope labels, and without scope labels nothing changes.

The checks read the generated PromQL with their own small scanner (not the rewriter in
``exporter/generate/scope.py``), so a rule the rewriter misses fails here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast

import pytest
import yaml

from exporter.generate.rules.reports import report_groups
from exporter.generate.rules.ruleset import RuleSet, build_ruleset
from exporter.generate.scope import CLOCK_SERIES, scoped
from exporter.generate.thresholds import load_thresholds

ROOT = Path(__file__).resolve().parent.parent
AGGREGATION = re.compile(
    r"(?<![\w:])(sum|min|max|avg|group|stddev|stdvar|count|count_values|bottomk|topk|quantile)"
    r"\s*(?:(by|without)\s*\(([^()]*)\)\s*)?\("
)
JOIN = re.compile(r"(?<![\w:])(on|ignoring)\s*\(([^()]*)\)")


def scoped_ruleset(tmp_path: Path, labels: list[str]) -> RuleSet:
    data = yaml.safe_load((ROOT / "rules" / "thresholds.yaml").read_text())
    data["scope"] = {"labels": labels}
    data["ticker"] = {"enabled": True}  # the reports too (the digest is on by default)
    path = tmp_path / "thresholds.yaml"
    path.write_text(yaml.safe_dump(data))
    return build_ruleset(load_thresholds(str(path), "rules/thresholds.yaml"))


def _plain(expr: str) -> str:
    """The expression without strings, label matchers and range brackets."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^{}]*\}", "", expr)
    return re.sub(r"\[[^\[\]]*\]", "", expr)


def _exprs(ruleset: RuleSet) -> list[tuple[str, str]]:
    out = [(f"record {r.record}", r.expr) for r in ruleset.rate_rules]
    out += [(f"alert {r.alert}", r.expr) for b in ruleset.alerts for r in b.rules]
    for group in report_groups(ruleset.thresholds):
        rules = cast(list[dict[str, str]], group["rules"])
        out += [(f"report {r.get('record') or r.get('alert')}", r["expr"]) for r in rules]
    return out


def scope_problems(where: str, expr: str, labels: tuple[str, ...]) -> list[str]:
    """Every aggregation that drops a scope label, every join that ignores one."""
    text, problems = _plain(expr), []
    for match in AGGREGATION.finditer(text):
        op, clause, listed = match.groups()
        names = {n.strip() for n in (listed or "").split(",")}
        if clause == "by" and not set(labels) <= names:
            problems.append(f"{where}: {op} by ({listed}) drops a scope label")
        elif clause == "without" and names & set(labels):
            problems.append(f"{where}: {op} without ({listed}) drops a scope label")
        elif clause is None:
            problems.append(f"{where}: bare {op}(...) merges shops")
    for match in JOIN.finditer(text):
        kind, listed = match.groups()
        names = {n.strip() for n in listed.split(",")}
        if kind == "ignoring" and names & set(labels):
            problems.append(f"{where}: ignoring({listed}) ignores a scope label")
        if kind == "on" and not set(labels) <= names:
            rest = text[match.end() :].lstrip()
            rest = re.sub(r"^group_(left|right)\s*(\([^()]*\))?", "", rest).lstrip(" (\n")
            first = re.match(r"[A-Za-z_:][\w:]*", rest)
            if first is None or first.group() not in CLOCK_SERIES:
                problems.append(f"{where}: on({listed}) joins two shops")
    if re.search(r"vector\(\s*0\s*\)", text):
        problems.append(f"{where}: vector(0) has no scope label")
    return problems


@pytest.mark.parametrize("labels", [["seller"], ["seller", "region"]])
def test_every_generated_rule_keeps_scope_labels(tmp_path: Path, labels: list[str]) -> None:
    ruleset = scoped_ruleset(tmp_path, labels)
    exprs = _exprs(ruleset)
    assert len(exprs) > 100
    problems = [p for where, expr in exprs for p in scope_problems(where, expr, tuple(labels))]
    assert problems == []


def test_the_checker_finds_what_a_one_shop_rule_set_merges(tmp_path: Path) -> None:
    """Without scope labels the same checks flag the shop-merging aggregations: the test
    above is not vacuous."""
    ruleset = build_ruleset(load_thresholds(str(ROOT / "rules" / "thresholds.yaml")))
    problems = [
        p for where, expr in _exprs(ruleset) for p in scope_problems(where, expr, ("seller",))
    ]
    assert len(problems) > 50


def test_alert_descriptions_query_the_alerts_own_shop(tmp_path: Path) -> None:
    ruleset = scoped_ruleset(tmp_path, ["seller"])
    queried = [
        r.annotations["description"]
        for b in ruleset.alerts
        for r in b.rules
        if "| query" in r.annotations["description"]
    ]
    assert queried
    for text in queried:
        for query in re.findall(r'printf "[^"]*" [^|]*\| query', text):
            assert 'seller=%q}"' in query and query.count("$labels.seller") == 1, query


def test_without_scope_labels_expressions_are_unchanged() -> None:
    ruleset = build_ruleset(load_thresholds(str(ROOT / "rules" / "thresholds.yaml")))
    for _where, expr in _exprs(ruleset):
        assert scoped(expr, ()) == expr


# (expression, scope labels, expected)
REWRITES = [
    ("max (x)", ("seller",), "max by (seller) (x)"),
    ("sum(x)", ("seller",), "sum by (seller) (x)"),
    ("max by (event, tier) (x)", ("seller",), "max by (event, tier, seller) (x)"),
    ("max by (seller) (x)", ("seller",), "max by (seller) (x)"),
    ("sum(x) by (a)", ("s", "r"), "sum(x) by (a, s, r)"),
    ("max without (baseline_week) (x)", ("seller",), "max without (baseline_week) (x)"),
    ("a / on() group_left() b", ("seller",), "a / on(seller) group_left() b"),
    ("a and on (job) b", ("seller",), "a and on (job, seller) b"),
    (
        "a and on() boxoffice:business_hours == 1",
        ("seller",),
        "a and on() boxoffice:business_hours == 1",
    ),
    ("a and on() (boxoffice:local_day == 1)", ("seller",), "a and on() (boxoffice:local_day == 1)"),
    (
        "a * on() group_left() (boxoffice:local_minute_of_day / 1440)",
        ("s",),
        "a * on() group_left() (boxoffice:local_minute_of_day / 1440)",
    ),
    ("a and on() (time() - max (b)) > 1", ("s",), "a and on(s) (time() - max by (s) (b)) > 1"),
    ('a{l="sum(x)"} ignoring(l) b', ("s",), 'a{l="sum(x)"} ignoring(l) b'),
    (
        "(sum(a) or vector(0))",
        ("s",),
        "(sum by (s) (a) or (0 * group by (s) (boxoffice_source_up)))",
    ),
    ("vector(1)", ("s",), "vector(1)"),
    ("increase(x[1d] offset 1d1h)", ("s",), "increase(x[1d] offset 1d1h)"),
    ("boxoffice:sum:max", ("s",), "boxoffice:sum:max"),
]


@pytest.mark.parametrize(("expr", "labels", "expected"), REWRITES)
def test_scoped_rewrites(expr: str, labels: tuple[str, ...], expected: str) -> None:
    assert scoped(expr, labels) == expected
