"""Values from thresholds.yaml and routing.yaml that would reach PromQL, YAML or a Go template.

Each one is refused with one line and exit 2 before anything is written; what is accepted
passes promtool.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from exporter.cli import main

ROOT = Path(__file__).parent.parent
BASE = (
    "timezone: America/New_York\n"
    "links: {runbook_base_url: 'https://x/rb', dashboard_base_url: 'https://x/d'}\n"
)
LINKS = "links: {runbook_base_url: 'https://x/rb', dashboard_base_url: 'https://x/d'}\n"


def _with_links(runbook: str) -> str:
    return BASE.replace("'https://x/rb'", runbook)


HOSTILE: list[tuple[str, str]] = [
    (
        BASE + "alerts:\n  InventoryLow:\n    labels: {team: 'pay\"ments'}\n",
        "alerts.InventoryLow.labels.team: must not contain quotes, backslashes, newlines or {{ }}",
    ),
    (
        BASE + 'alerts:\n  InventoryLow:\n    labels: {team: "pay\\nments"}\n',
        "alerts.InventoryLow.labels.team: must not contain control characters (newline, CR, …)",
    ),
    (
        BASE + "alerts:\n  InventoryLow:\n    labels: {team: '{{ $value }}'}\n",
        "alerts.InventoryLow.labels.team: must not contain {{ or }} (Go template delimiters)",
    ),
    (
        _with_links("'https://x/{{ $labels.x }}'"),
        "links.runbook_base_url: must not contain {{ or }} (Go template delimiters)",
    ),
    (
        _with_links("'javascript:alert(1)'"),
        "links.runbook_base_url: must be an http(s) URL, got 'javascript:alert(1)'",
    ),
    (
        _with_links("'https://x/\"onmouseover=1'"),
        "links.runbook_base_url: must not contain quotes, spaces, backslashes or <>",
    ),
    (
        _with_links('"https://x/a\\nb"'),
        "links.runbook_base_url: must not contain control characters (newline, CR, …)",
    ),
    (
        BASE + "escalation: {tier2_after: 15m, tier3_after: 5m}\n",
        "escalation.tier3_after: must be after tier2_after (15m)",
    ),
]


@pytest.mark.parametrize(("text", "expected"), HOSTILE)
def test_hostile_thresholds_exit_2_with_one_line_and_write_nothing(
    tmp_path: Path, text: str, expected: str
) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "thresholds.yaml").write_text(text)
    result = CliRunner().invoke(main, ["generate", "--root", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.output == f"boxoffice: rules/thresholds.yaml: {expected}\n"
    assert not (tmp_path / "rules" / "generated").exists()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "group_by: [alertname, category, severity, escalation]",
            'group_by: [alertname, "team\\r\\nx"]',
            "group_by[1]: must not contain control characters (newline, CR, …)",
        ),
        (
            "group_by: [alertname, category, severity, escalation]",
            "group_by: [alertname, '{{ .x }}']",
            "group_by[1]: must not contain {{ or }} (Go template delimiters)",
        ),
    ],
)
def test_hostile_routing_values_exit_2(tmp_path: Path, old: str, new: str, expected: str) -> None:
    (tmp_path / "rules").mkdir()
    shutil.copy(ROOT / "rules" / "thresholds.yaml", tmp_path / "rules")
    (tmp_path / "alertmanager").mkdir()
    text = (ROOT / "alertmanager" / "routing.yaml").read_text()
    assert old in text
    (tmp_path / "alertmanager" / "routing.yaml").write_text(text.replace(old, new))
    result = CliRunner().invoke(main, ["generate", "--root", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.output == f"boxoffice: alertmanager/routing.yaml: {expected}\n"
    assert not (tmp_path / "rules" / "generated").exists()


def test_generate_writes_nothing_when_promtool_refuses_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate itself: a promtool that refuses everything stops the write, one line, exit 2."""
    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "promtool"
    fake.write_text("#!/bin/sh\necho 'FAILED: 1:1: parse error: unexpected \"}\"' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{Path(shutil.which('amtool') or '/usr/bin').parent}")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "thresholds.yaml").write_text(BASE)
    result = CliRunner().invoke(main, ["generate", "--root", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.output == (
        "boxoffice: rules/thresholds.yaml: nothing written, the output fails a check: "
        'promtool check rules failed: FAILED: 1:1: parse error: unexpected "}"\n'
    )
    assert not (tmp_path / "rules" / "generated").exists()
