"""The landing page at /: where the metrics are, and how each source is doing."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from exporter.collect.scheduler import Snapshot

if TYPE_CHECKING:
    from jinja2 import Template

_TEMPLATE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>boxoffice exporter</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
td, th { padding: .3em .8em; border-bottom: 1px solid #ddd; text-align: left; }
.up { color: #1a7f37; font-weight: bold; } .down { color: #cf222e; font-weight: bold; }
.standby { color: #57606a; font-weight: bold; }
</style></head>
<body>
<h1>boxoffice exporter</h1>
<p>Version {{ version }}.
Metrics: <a href="{{ telemetry_path }}">{{ telemetry_path }}</a> ·
Health: <a href="/healthz">/healthz</a>{% if status_path %} ·
Status: <a href="{{ status_path }}">{{ status_path }}</a>{% endif %}</p>
<h2>Sources</h2>
<table>
<tr><th>source</th><th>state</th><th>interval</th><th>last success</th>
<th>last cycle</th><th>cycles</th><th>last error</th></tr>
{% for row in rows %}
<tr><td>{{ row.source }}</td>
<td class="{{ row.state }}">{{ row.state }}</td>
<td>{{ row.interval }}</td><td>{{ row.last_success }}</td><td>{{ row.duration }}</td>
<td>{{ row.cycles }}</td><td>{{ row.error }}</td></tr>
{% endfor %}
</table>
</body></html>
"""


@cache
def _template() -> Template:
    """The compiled template, built at the first render: importing jinja2 and compiling the
    template cost a start of the exporter tens of milliseconds before /metrics could answer."""
    from jinja2 import Environment, select_autoescape

    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    return env.from_string(_TEMPLATE)


def source_state(snap: Snapshot, now_monotonic: float) -> str:
    """up, down, or standby (another replica holds the source's lease: not down)."""
    if snap.leader is False and snap.fresh(now_monotonic):
        return "standby"
    return "up" if snap.up and snap.fresh(now_monotonic) else "down"


def render_landing_page(
    snapshots: Iterable[Snapshot],
    *,
    version: str,
    telemetry_path: str,
    monotonic: float | None = None,
    status_path: str | None = None,
) -> str:
    """HTML listing each source's state; error texts are already free of secrets."""
    now = time.monotonic() if monotonic is None else monotonic
    rows = []
    for snap in snapshots:
        last = (
            datetime.fromtimestamp(snap.last_success, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            if snap.last_success is not None
            else "never"
        )
        rows.append(
            {
                "source": snap.source,
                "state": source_state(snap, now),
                "interval": f"{snap.interval:g}s",
                "last_success": last,
                "duration": f"{snap.last_duration:.3f}s" if snap.last_duration is not None else "-",
                "cycles": snap.cycles,
                "error": snap.last_error or "",
            }
        )
    return _template().render(
        rows=rows, version=version, telemetry_path=telemetry_path, status_path=status_path
    )
