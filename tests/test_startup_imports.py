"""What `boxoffice serve` loads before /metrics answers: nothing that only a later request
or an optional source needs (docs/benchmarks.md, restarts: the start-up cut).

The wiring runs in a fresh interpreter, as far as a built, not yet started, exporter with
the default configuration (the PostgreSQL source and the status page on; building opens
no connection, so the database need not exist).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_BUILD = """
from exporter.config import load_config
from exporter.app import build_exporter, build_sources
config = load_config(None, env={"BOXOFFICE_DSN": "postgresql://nobody@127.0.0.1:1/none"})
build_exporter(config, None, build_sources(config), listen_address="127.0.0.1:0")
import sys
print("\\n".join(sorted(sys.modules)))
"""


def test_a_default_exporter_is_built_without_requests_or_jinja2() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _BUILD],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = set(result.stdout.split())
    assert "exporter.web.status_page" in loaded  # the status page is wired (on by default)
    late = {"requests", "urllib3", "jinja2", "exporter.web.status_remote", "stripe", "twilio"}
    assert {m for m in loaded if m.split(".")[0] in late or m in late} == set()
