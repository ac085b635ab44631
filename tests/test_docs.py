"""The documentation says what the code does."""

from __future__ import annotations

from pathlib import Path

from exporter.config.reference import render_reference
from exporter.sources.querypack import DEFAULT_PACK

ROOT = Path(__file__).parent.parent


def test_configuration_reference_is_current() -> None:
    reference = render_reference()
    assert reference in (ROOT / "docs" / "configuration.md").read_text()
    assert reference.rstrip() in (ROOT / "README.md").read_text()


def test_readme_lists_every_metric_and_both_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    for spec in DEFAULT_PACK:
        assert f"`{spec.name}`" in readme
    assert "./scripts/demo.sh" in readme
    assert "./scripts/test.sh" in readme
    assert "./scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
