"""`boxoffice check` on the alerting bundle: inputs valid, output current, tools agree.

The inputs are loaded exactly as `boxoffice generate` loads them (bad input is a ConfigError,
exit 2); the committed output must be what they generate; and where the real tools are
installed (`promtool`), they check the generated files as Prometheus will load them.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from exporter.generate.output import load_inputs, render_all, stale


@dataclass(frozen=True)
class BundleReport:
    """What the check found: files checked, and one line per problem."""

    checked: int
    problems: tuple[str, ...]
    skipped: tuple[str, ...]  # tools that are not installed


def verify_bundle(root: Path, thresholds: str, *, timeout: float = 120) -> BundleReport:
    """Validate the inputs under ``root``, compare the output, run the installed tools."""
    outputs = render_all(load_inputs(root, thresholds))
    problems = [f"{rel}: stale, run `boxoffice generate`" for rel in stale(root, outputs)]
    skipped: list[str] = []
    rule_files = sorted(p for p in outputs if p.startswith("rules/generated/"))
    promtool = shutil.which("promtool")
    if promtool is None:
        skipped.append("promtool")
    elif rule_files:
        # The arguments are our own generated file names and the promtool found on PATH.
        result = subprocess.run(  # noqa: S603
            [promtool, "check", "rules", *rule_files],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            problems.append(f"promtool check rules failed: {detail[-1] if detail else '?'}")
    return BundleReport(len(outputs), tuple(problems), tuple(skipped))
