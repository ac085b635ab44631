"""`boxoffice generate`: run every producer, then write (atomically) or compare.

A producer turns the loaded inputs into ``{relative path: content}``. Rules, their tests and
runbooks are the first; Alertmanager configuration and dashboards add producers here. The
Kubernetes manifests are made last, from the files the producers rendered. All producers run
before anything is written, so bad input writes nothing.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exporter.generate.alertmanager.config import (
    TEMPLATE_FILE,
    alertmanager_config,
    muting_applies,
    top_tiers,
)
from exporter.generate.alertmanager.route_tests import route_cases, route_tests_file
from exporter.generate.alertmanager.routing import Routing
from exporter.generate.alertmanager.routing_load import check_scope_labels, load_routing
from exporter.generate.alertmanager.templates import templates
from exporter.generate.grafana.dashboards import DASHBOARDS_DIR, dashboard_files
from exporter.generate.kubernetes import KUBERNETES_DIR, Sources, kubernetes_files
from exporter.generate.rules.promtool_tests import test_file
from exporter.generate.rules.report_tests import report_tests
from exporter.generate.rules.rule_files import rule_files
from exporter.generate.rules.ruleset import RuleSet, build_ruleset
from exporter.generate.rules.runbooks import runbook
from exporter.generate.thresholds import load_thresholds

THRESHOLDS = "rules/thresholds.yaml"
ROUTING = "alertmanager/routing.yaml"
ALERTMANAGER_CONFIG = "alertmanager/alertmanager.yml"
ROUTE_TESTS = "alertmanager/tests/routes.yml"


@dataclass(frozen=True, kw_only=True)
class Inputs:
    """Everything producers read, loaded and checked."""

    root: Path
    thresholds_path: str
    ruleset: RuleSet
    routing: Routing | None = None  # None: no alertmanager/routing.yaml under the root


Producer = Callable[[Inputs], dict[str, str]]

# Directories whose files generate owns (a file there that no producer writes is stale).
OWNED = (
    ("rules/generated", ".yml"),
    ("rules/tests", ".yml"),
    ("docs/runbooks", ".md"),
    (DASHBOARDS_DIR, ".json"),
    ("alertmanager", ".yml"),
    ("alertmanager/templates", ".tmpl"),
    ("alertmanager/tests", ".yml"),
    (KUBERNETES_DIR, ".yaml"),
)


def produce_rules(inputs: Inputs) -> dict[str, str]:
    return {
        f"rules/generated/{name}": text
        for name, text in rule_files(inputs.ruleset, inputs.thresholds_path).items()
    }


def produce_rule_tests(inputs: Inputs) -> dict[str, str]:
    return {
        f"rules/tests/{built.alert.spec.name}.yml": test_file(
            built, inputs.ruleset, inputs.thresholds_path
        )
        for built in inputs.ruleset.alerts
        if built.scenarios
    }


def produce_report_tests(inputs: Inputs) -> dict[str, str]:
    text = report_tests(inputs.ruleset.thresholds, inputs.thresholds_path)
    return {} if text is None else {"rules/tests/reports.yml": text}


def produce_runbooks(inputs: Inputs) -> dict[str, str]:
    return {
        f"docs/runbooks/{built.alert.spec.name}.md": runbook(built, inputs.ruleset)
        for built in inputs.ruleset.alerts
    }


def produce_dashboards(inputs: Inputs) -> dict[str, str]:
    return dashboard_files(inputs.ruleset, inputs.thresholds_path)


def produce_alertmanager(inputs: Inputs) -> dict[str, str]:
    """alertmanager.yml, its templates and its route tests, when routing.yaml exists."""
    if inputs.routing is None:
        return {}
    sources = f"{inputs.routing.source} and {inputs.thresholds_path}"
    th = inputs.ruleset.thresholds.file
    muted = muting_applies(inputs.routing, th.business_hours)
    return {
        ALERTMANAGER_CONFIG: alertmanager_config(inputs.routing, inputs.ruleset, sources),
        f"alertmanager/templates/{TEMPLATE_FILE}": templates(inputs.routing, inputs.routing.source),
        ROUTE_TESTS: route_tests_file(
            route_cases(inputs.routing, muted, top_tiers(inputs.ruleset)), sources
        ),
    }


PRODUCERS: tuple[Producer, ...] = (
    produce_rules,
    produce_rule_tests,
    produce_report_tests,
    produce_runbooks,
    produce_dashboards,
    produce_alertmanager,
)


# Where the Kubernetes manifests find the plain files they wrap.
KUBERNETES_SOURCES = Sources(
    rules_dir="rules/generated",
    dashboards_dir=DASHBOARDS_DIR,
    alertmanager_config=ALERTMANAGER_CONFIG,
    templates_dir="alertmanager/templates",
)


def load_inputs(root: Path, thresholds: str = THRESHOLDS, routing: str = ROUTING) -> Inputs:
    """Load and check every input; ConfigError on the first problem.

    routing.yaml is optional: without it nothing of alertmanager/ is generated.
    """
    path, shown = _locate(root, thresholds)
    ruleset = build_ruleset(load_thresholds(path, shown))
    routing_path, routing_shown = _locate(root, routing)
    loaded = load_routing(routing_path, routing_shown) if os.path.exists(routing_path) else None
    if loaded is not None:
        check_scope_labels(loaded, ruleset.thresholds.file.scope.labels)
    return Inputs(root=root, thresholds_path=shown, ruleset=ruleset, routing=loaded)


def _locate(root: Path, name: str) -> tuple[str, str]:
    """The path to read and the name errors and headers use (relative to the root)."""
    path = name if os.path.isabs(name) else str(root / name)
    shown = os.path.relpath(path, root) if path.startswith(str(root)) else path
    return path, shown


def render_all(inputs: Inputs, producers: tuple[Producer, ...] = PRODUCERS) -> dict[str, str]:
    out: dict[str, str] = {}
    for producer in producers:
        out.update(producer(inputs))
    # The Kubernetes objects wrap the files just rendered, so they cannot say anything else.
    out.update(kubernetes_files(out, KUBERNETES_SOURCES))
    return dict(sorted(out.items()))


def stale(root: Path, outputs: dict[str, str]) -> list[str]:
    """Paths whose committed content differs from ``outputs``, or that should not exist."""
    problems = []
    for rel, text in outputs.items():
        path = root / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            problems.append(rel)
    problems += [rel for rel in _owned_files(root) if rel not in outputs]
    return sorted(problems)


def write_all(root: Path, outputs: dict[str, str]) -> list[str]:
    """Write changed files atomically, remove owned files no producer wrote; return changes."""
    changed = []
    for rel, text in outputs.items():
        path = root / rel
        if path.is_file() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        changed.append(rel)
    for rel in _owned_files(root):
        if rel not in outputs:
            (root / rel).unlink()
            changed.append(rel)
    return sorted(changed)


def _owned_files(root: Path) -> list[str]:
    found = []
    for directory, suffix in OWNED:
        base = root / directory
        if base.is_dir():
            found += [
                f"{directory}/{p.name}"
                for p in sorted(base.iterdir())
                if p.is_file() and p.suffix == suffix
            ]
    return found
