"""The alerting bundle as the command line meets it: generate it, or verify what is committed.

The command line reaches the generator only through this module (the demo imports its own parts).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

Echo = Callable[[str], None]


def generate(root: Path, thresholds: str, *, check: bool, out: Echo, err: Echo) -> bool:
    """Write the generated files, or with ``check`` only compare them; False when stale."""
    from exporter.config import ConfigError
    from exporter.generate.output import load_inputs, render_all, stale, write_all
    from exporter.generate.verify import check_before_writing

    inputs = load_inputs(root, thresholds)
    outputs = render_all(inputs)
    if check:
        problems = stale(root, outputs)
        for rel in problems:
            err(f"boxoffice: {rel}: stale, run `boxoffice generate`")
        if problems:
            return False
        out(f"{len(outputs)} generated files up to date")
        return True
    problems, skipped = check_before_writing(inputs, outputs)
    if problems:
        # Input that passed every check yet gives output the tools refuse: write nothing.
        raise ConfigError(
            thresholds, "", f"nothing written, the output fails a check: {problems[0]}"
        )
    for tool in skipped:
        err(f"boxoffice: {tool} not installed: the generated files were not checked with it")
    changed = write_all(root, outputs)
    out(f"{len(outputs)} files generated, {len(changed)} changed")
    return True


def verify(
    root: Path, bridge_groups: tuple[str, Collection[str]] | None, *, out: Echo, err: Echo
) -> list[str]:
    """Problems of the bundle under ``root`` (none when it has no thresholds file)."""
    from exporter.generate.output import ROUTING, THRESHOLDS
    from exporter.generate.verify import verify_bundle

    if not (root / THRESHOLDS).is_file():
        return []
    report = verify_bundle(root, THRESHOLDS, bridge_groups=bridge_groups)
    out(f"{THRESHOLDS}: ok ({report.checked} generated files compared)")
    if (root / ROUTING).is_file():
        out(f"{ROUTING}: ok")
    for tool in report.skipped:
        err(f"boxoffice: {tool} not installed: its check was skipped")
    return list(report.problems)
