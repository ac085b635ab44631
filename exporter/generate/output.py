"""`boxoffice generate`: run every producer, then write (atomically) or compare.

A producer turns the loaded inputs into ``{relative path: content}``. Rules, their tests and
runbooks are the first; Alertmanager configuration and dashboards add producers here. All
producers run before anything is written, so bad input writes nothing.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exporter.generate.dashboards import DASHBOARDS_DIR, dashboard_files
from exporter.generate.render import rule_files, test_file
from exporter.generate.ruleset import RuleSet, build_ruleset
from exporter.generate.runbooks import runbook
from exporter.generate.thresholds import load_thresholds

THRESHOLDS = "rules/thresholds.yaml"


@dataclass(frozen=True)
class Inputs:
    """Everything producers read, loaded and checked."""

    root: Path
    thresholds_path: str
    ruleset: RuleSet


Producer = Callable[[Inputs], dict[str, str]]

# Directories whose files generate owns (a file there that no producer writes is stale).
OWNED = (
    ("rules/generated", ".yml"),
    ("rules/tests", ".yml"),
    ("docs/runbooks", ".md"),
    (DASHBOARDS_DIR, ".json"),
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


def produce_runbooks(inputs: Inputs) -> dict[str, str]:
    return {
        f"docs/runbooks/{built.alert.spec.name}.md": runbook(built, inputs.ruleset)
        for built in inputs.ruleset.alerts
    }


def produce_dashboards(inputs: Inputs) -> dict[str, str]:
    return dashboard_files(inputs.ruleset, inputs.thresholds_path)


PRODUCERS: tuple[Producer, ...] = (
    produce_rules,
    produce_rule_tests,
    produce_runbooks,
    produce_dashboards,
)


def load_inputs(root: Path, thresholds: str = THRESHOLDS) -> Inputs:
    """Load and check every input; ConfigError on the first problem."""
    path = thresholds if os.path.isabs(thresholds) else str(root / thresholds)
    shown = os.path.relpath(path, root) if path.startswith(str(root)) else path
    return Inputs(root, shown, build_ruleset(load_thresholds(path, shown)))


def render_all(inputs: Inputs, producers: tuple[Producer, ...] = PRODUCERS) -> dict[str, str]:
    out: dict[str, str] = {}
    for producer in producers:
        out.update(producer(inputs))
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
