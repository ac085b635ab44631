"""`boxoffice check` on the alerting bundle: inputs valid, output current, tools agree.

The inputs are loaded exactly as `boxoffice generate` loads them (bad input is a ConfigError,
exit 2); the committed output must be what they generate; and where the real tools are
installed (`promtool`, `amtool`), they check the generated files as Prometheus and
Alertmanager will load them: amtool checks alertmanager.yml with the repository's templates
and runs every route test of alertmanager/tests/routes.yml.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import yaml

from exporter.generate.alertmanager.config import alertmanager_config
from exporter.generate.alertmanager.route_tests import load_route_cases
from exporter.generate.alertmanager.routing import Routing
from exporter.generate.output import ROUTE_TESTS, Inputs, load_inputs, render_all, stale


@dataclass(frozen=True)
class BundleReport:
    """What the check found: files checked, and one line per problem."""

    checked: int
    problems: tuple[str, ...]
    skipped: tuple[str, ...]  # tools that are not installed


def verify_bundle(
    root: Path,
    thresholds: str,
    *,
    bridge_groups: tuple[str, Collection[str]] | None = None,
    timeout: float = 120,
) -> BundleReport:
    """Validate the inputs under ``root``, compare the output, run the installed tools.

    ``bridge_groups`` is (its source, the group names) of an SMS bridge configuration: every
    SMS group routing.yaml names must be one of them, or the bridge would answer 404 and
    Alertmanager drop the SMS.
    """
    inputs = load_inputs(root, thresholds)
    outputs = render_all(inputs)
    problems = [f"{rel}: stale, run `boxoffice generate`" for rel in stale(root, outputs)]
    if bridge_groups is not None and inputs.routing is not None:
        problems += unknown_sms_groups(inputs.routing, *bridge_groups)
    skipped: list[str] = []
    problems += _promtool_check(root, outputs, skipped, timeout)
    if inputs.routing is not None:
        amtool = shutil.which("amtool")
        if amtool is None:
            skipped.append("amtool")
        else:
            templates = str(inputs.root / "alertmanager" / "templates")
            problems += _amtool_checks(amtool, inputs, templates, timeout, outputs[ROUTE_TESTS])
    return BundleReport(len(outputs), tuple(problems), tuple(skipped))


def check_before_writing(
    inputs: Inputs, outputs: dict[str, str], *, timeout: float = 120
) -> tuple[list[str], list[str]]:
    """Problems promtool and amtool find in ``outputs`` written to a scratch directory.

    Returns (problems, tools not installed). `boxoffice generate` writes nothing unless
    this is clean, so whatever it writes loads in Prometheus and Alertmanager.
    """
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="boxoffice-generate-") as tmp:
        scratch = Path(tmp)
        for rel, text in outputs.items():
            (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
            (scratch / rel).write_text(text, encoding="utf-8")
        problems = _promtool_check(scratch, outputs, skipped, timeout)
        if inputs.routing is not None:
            amtool = shutil.which("amtool")
            if amtool is None:
                skipped.append("amtool")
            else:
                templates = str(scratch / "alertmanager" / "templates")
                problems += _amtool_checks(amtool, inputs, templates, timeout, None)
    return problems, skipped


def _promtool_check(
    root: Path, outputs: Collection[str], skipped: list[str], timeout: float
) -> list[str]:
    rule_files = sorted(p for p in outputs if p.startswith("rules/generated/"))
    promtool = shutil.which("promtool")
    if promtool is None:
        skipped.append("promtool")
        return []
    if not rule_files:
        return []
    # The arguments are our own generated file names and the promtool found on PATH.
    result = subprocess.run(  # noqa: S603
        [promtool, "check", "rules", *rule_files],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode == 0:
        return []
    detail = (result.stderr or result.stdout).strip().splitlines()
    return [f"promtool check rules failed: {detail[-1] if detail else '?'}"]


def unknown_sms_groups(routing: Routing, source: str, groups: Collection[str]) -> list[str]:
    """One line per audience whose sms_group the bridge configuration does not define."""
    return [
        f"{routing.source}: audiences.{name}.sms_group: no group {audience.sms_group!r} in "
        f"sms_bridge.groups of {source}"
        for name, audience in routing.file.audiences.items()
        if audience.sms_group is not None and audience.sms_group not in groups
    ]


def _amtool_checks(
    amtool: str, inputs: Inputs, templates: str, timeout: float, route_tests: str | None
) -> list[str]:
    """amtool check-config with the templates in ``templates``, then every route test."""
    assert inputs.routing is not None
    local = dataclasses.replace(
        inputs.routing, file=dataclasses.replace(inputs.routing.file, templates_dir=templates)
    )
    with tempfile.TemporaryDirectory(prefix="boxoffice-check-") as tmp:
        config = Path(tmp) / "alertmanager.yml"
        config.write_text(alertmanager_config(local, inputs.ruleset, "check"), encoding="utf-8")
        # Our own generated file and the amtool found on PATH.
        checked = subprocess.run(  # noqa: S603
            [amtool, "check-config", str(config)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if checked.returncode != 0:
            detail = [line.strip() for line in checked.stdout.splitlines() if "FAILED" in line]
            return [
                f"amtool check-config failed: {detail[0] if detail else checked.stderr.strip()}"
            ]
        failed: list[str] = []
        if route_tests is None:
            return failed
        for case in load_route_cases(yaml.safe_load(route_tests)):
            result = subprocess.run(  # noqa: S603
                [amtool, *case.amtool_args(str(config))],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if result.returncode != 0:
                labels = " ".join(f"{k}={v}" for k, v in case.labels.items())
                failed.append(
                    f"amtool route test failed: {labels} reaches {result.stdout.strip()!r}, "
                    f"expected {','.join(case.receivers)!r}"
                )
        return failed
