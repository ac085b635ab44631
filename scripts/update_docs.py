"""Refresh the generated configuration reference in README.md and docs/configuration.md."""

from __future__ import annotations

import re
from pathlib import Path

from exporter.config.reference import render_reference

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def main() -> None:
    reference = render_reference()
    readme = ROOT / "README.md"
    text = readme.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    readme.write_text(pattern.sub(lambda _m: f"{START}\n{reference}{END}", text))
    doc = ROOT / "docs" / "configuration.md"
    # Sections written by hand follow the table, from the first `## ` heading on.
    old = doc.read_text() if doc.exists() else ""
    tail = old[old.index("\n## ") :] if "\n## " in old else ""
    doc.write_text(
        "# Configuration reference\n\nGenerated from the schema (`exporter/config/settings.py`) by "
        "`scripts/update_docs.py`; `tests/test_docs.py` keeps it current.\n\n" + reference + tail
    )


if __name__ == "__main__":
    main()
