"""The owner's status page (/status): what it shows, rendered as one self-contained HTML page.

Pure: a :class:`StatusView` in, HTML out. Where each figure comes from is
``status_page.py``'s business (docs/status-page.md). The page loads nothing else (inline
CSS, no script, no font, no image), so it works offline and under a strict
Content-Security-Policy; it reloads itself with a meta refresh. Every text from outside
(alert annotations, labels, error messages) is escaped by the template's autoescape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING

from markupsafe import Markup

if TYPE_CHECKING:
    from jinja2 import Template

# Every colour the page uses, as (text, background) pairs: tests/test_status_page.py checks
# each pair's WCAG contrast ratio is at least 4.5 (AA for body text) and that the CSS uses
# no other colour.
INK, PAPER, MUTED, CARD, LINE = "#1f2328", "#ffffff", "#57606a", "#f6f8fa", "#d0d7de"
GOOD, BAD, WARN, WARN_BG = "#116329", "#a40e26", "#6a3d00", "#fff8c5"
COLOUR_PAIRS: tuple[tuple[str, str], ...] = (
    (INK, PAPER),
    (INK, CARD),
    (MUTED, PAPER),
    (MUTED, CARD),
    (GOOD, PAPER),
    (BAD, PAPER),
    (PAPER, BAD),
    (WARN, WARN_BG),
    (PAPER, MUTED),
)
# Borders only (no text drawn on them): exempt from the text contrast rule.
DECORATION = (LINE,)

SEVERITY_ORDER = ("critical", "page", "high", "warning", "medium", "low", "info")


@dataclass(frozen=True)
class Figure:
    """One figure: its values (per currency for money, one unlabelled value for counts), or
    why there is none (``problem``)."""

    values: tuple[tuple[str, float], ...] = ()
    problem: str | None = None


@dataclass(frozen=True)
class TierRow:
    event: str
    city: str
    tier: str
    available: float
    capacity: float


@dataclass(frozen=True)
class AlertRow:
    name: str
    severity: str
    summary: str
    since: str  # as Alertmanager wrote it (RFC 3339), shown as HH:MM UTC when it parses


@dataclass(frozen=True)
class SourceRow:
    source: str
    state: str  # up, down, standby
    last_success: float | None  # Unix time
    error: str


@dataclass(frozen=True, kw_only=True)
class StatusView:
    """Everything the page shows."""

    generated_at: float  # Unix time
    refresh: int  # seconds
    figures_at: int | None  # Unix time of Prometheus' answer (None: not asked)
    revenue_today: Figure
    orders_today: Figure
    revenue_hour: Figure
    orders_hour: Figure
    open_checkouts: Figure
    tiers: tuple[TierRow, ...]
    tiers_problem: str | None
    alerts: tuple[AlertRow, ...]
    alerts_more: int
    alerts_problem: str | None
    sources: tuple[SourceRow, ...]


def money(figure: Figure) -> list[str]:
    """``1,234.50 USD`` per currency, largest first."""
    ordered = sorted(figure.values, key=lambda cv: (-cv[1], cv[0]))
    return [f"{_number(v, 2)} {c.upper()}".strip() for c, v in ordered]


def count(figure: Figure) -> list[str]:
    """A count, rounded (Prometheus' increase() extrapolates to fractions)."""
    return [_number(sum(v for _c, v in figure.values), 0)] if figure.values else []


def _number(value: float, decimals: int) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:,.{decimals}f}"


def _clock(unix: float | None) -> str:
    if unix is None:
        return "never"
    return datetime.fromtimestamp(unix, UTC).strftime("%H:%M:%S UTC")


def _since(text: str) -> str:
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if at.tzinfo is None:
        return ""
    return at.astimezone(UTC).strftime("%d %b %H:%M UTC")


def _left(row: TierRow) -> str:
    if row.available < 0:
        return "oversold"
    if row.capacity <= 0:
        return "n/a"
    return f"{100 * row.available / row.capacity:.0f}%"


_CSS = f"""
*{{box-sizing:border-box}}
html{{-webkit-text-size-adjust:100%;text-size-adjust:100%}}
body{{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:{INK};background:{PAPER}}}
header,main,footer{{max-width:40rem;margin:0 auto;padding:0 1rem}}
header{{padding-top:.75rem}}
h1{{font-size:1.35rem;margin:.25rem 0}}
h2{{font-size:1.1rem;margin:1.25rem 0 .5rem}}
.muted,footer{{color:{MUTED};font-size:.875rem}}
dl{{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:.5rem;margin:0}}
dl div{{background:{CARD};border:1px solid {LINE};border-radius:.5rem;padding:.5rem .75rem;
min-width:0}}
dt{{font-size:.875rem;color:{MUTED}}}
dd{{margin:0;font-size:1.3rem;font-weight:600;overflow-wrap:anywhere}}
dl div.wide{{grid-column:1/-1}}
dd .line{{display:block}}
dd .na{{font-size:.875rem;font-weight:400;color:{MUTED}}}
table{{width:100%;border-collapse:collapse;table-layout:fixed}}
th,td{{text-align:left;padding:.35rem .25rem;border-bottom:1px solid {LINE};
overflow-wrap:anywhere;vertical-align:top}}
thead th{{font-size:.8rem;color:{MUTED};font-weight:600}}
table.tiers thead th:first-child{{width:42%}}
table.tiers thead th:last-child{{width:28%}}
th .muted{{font-weight:400}}
td.n,th.n{{text-align:right}}
.up{{color:{GOOD};font-weight:600}}.down{{color:{BAD};font-weight:600}}
.standby{{color:{MUTED};font-weight:600}}
.oversold{{color:{BAD};font-weight:600}}
ul.alerts{{list-style:none;padding:0;margin:0}}
ul.alerts li{{border:1px solid {LINE};border-radius:.5rem;padding:.5rem .75rem;
margin-bottom:.5rem;overflow-wrap:anywhere}}
.sev{{display:inline-block;border-radius:.25rem;padding:0 .35rem;font-size:.8rem;
font-weight:600;color:{PAPER};background:{MUTED}}}
.sev-critical,.sev-page,.sev-high{{background:{BAD}}}
.sev-warning,.sev-medium{{color:{WARN};background:{WARN_BG}}}
.ok{{color:{GOOD};font-weight:600}}
.problem{{color:{BAD}}}
footer{{padding-bottom:1.5rem;margin-top:1.5rem}}
"""

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{{ view.refresh }}">
<meta name="color-scheme" content="light">
<title>{{ title }}</title>
<style>{{ css }}</style>
</head>
<body>
<header>
<h1>Box office status</h1>
<p class="muted">Updated <time datetime="{{ updated_iso }}">{{ updated }}</time>;
reloads every {{ view.refresh }} s.</p>
</header>
<main>
<section aria-labelledby="sales">
<h2 id="sales">Sales</h2>
{% if at %}<p class="muted" data-at="{{ view.figures_at }}">As of
<time datetime="{{ at_iso }}">{{ at }}</time>, from Prometheus.</p>{% endif %}
<dl>
{% for key, label, shown, figure, wide in figures %}
<div{% if wide %} class="wide"{% endif %}><dt>{{ label }}</dt>
<dd data-figure="{{ key }}">
{%- for line in shown %}<span class="line">{{ line }}</span>{% endfor %}
{%- if not shown %}<span class="na">{{ figure.problem or "no data yet" }}</span>{% endif -%}
</dd></div>
{% endfor %}
</dl>
</section>
<section aria-labelledby="low">
<h2 id="low">Running low</h2>
{% if view.tiers %}
<table class="tiers">
<thead><tr><th scope="col">Tier</th><th scope="col" class="n">Left</th>
<th scope="col" class="n">Of</th><th scope="col" class="n">%</th></tr></thead>
<tbody>
{% for row in view.tiers %}
<tr><th scope="row">{{ row.tier }}<br>
<span class="muted">{{ row.event }} · {{ row.city }}</span></th>
<td class="n">{{ number(row.available) }}</td><td class="n">{{ number(row.capacity) }}</td>
<td class="n{% if row.available < 0 %} oversold{% endif %}">{{ left(row) }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p class="muted">{{ view.tiers_problem or "No tiers on sale." }}</p>
{% endif %}
</section>
<section aria-labelledby="alerts">
<h2 id="alerts">Alerts firing</h2>
{% if view.alerts_problem %}
<p class="problem" data-alerts="unavailable">{{ view.alerts_problem }}</p>
{% elif view.alerts %}
<ul class="alerts" data-alerts="{{ view.alerts | length + view.alerts_more }}">
{% for alert in view.alerts %}
<li><span class="sev sev-{{ alert.severity }}">{{ alert.severity or "alert" }}</span>
<strong>{{ alert.name }}</strong>
{%- if alert.since %} <span class="muted">since {{ alert.since }}</span>{% endif %}
{% if alert.summary %}<br>{{ alert.summary }}{% endif %}</li>
{% endfor %}
</ul>
{% if view.alerts_more %}<p class="muted">and {{ view.alerts_more }} more.</p>{% endif %}
{% else %}
<p class="ok" data-alerts="0">Nothing is firing.</p>
{% endif %}
</section>
<section aria-labelledby="sources">
<h2 id="sources">Sources</h2>
{% if view.sources %}
<table>
<thead><tr><th scope="col">Source</th><th scope="col">State</th>
<th scope="col">Last success</th></tr></thead>
<tbody>
{% for row in view.sources %}
<tr><th scope="row">{{ row.source }}</th><td class="{{ row.state }}">{{ row.state }}</td>
<td>{{ clock(row.last_success) }}
{%- if row.error and row.state == "down" %}<br><span class="muted">{{ row.error }}</span>
{%- endif %}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p class="muted">No sources configured.</p>
{% endif %}
</section>
</main>
<footer><p>boxoffice · <a href="/">exporter</a></p></footer>
</body>
</html>
"""


@cache
def _template() -> Template:
    """The compiled template, built at the first render: importing jinja2 and compiling the
    template cost a start of the exporter tens of milliseconds before /metrics could answer."""
    from jinja2 import Environment, select_autoescape

    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    return env.from_string(_TEMPLATE)


def render_status_page(view: StatusView) -> str:
    """The page's HTML."""
    # Money takes a whole row (an amount per currency, one a line); counts share one.
    figures = [
        ("revenue_today", "Revenue today", money(view.revenue_today), view.revenue_today, True),
        ("revenue_hour", "Revenue, last hour", money(view.revenue_hour), view.revenue_hour, True),
        ("orders_today", "Orders today", count(view.orders_today), view.orders_today, False),
        ("orders_hour", "Orders, last hour", count(view.orders_hour), view.orders_hour, False),
        (
            "open_checkouts",
            "Open checkouts",
            count(view.open_checkouts),
            view.open_checkouts,
            False,
        ),
    ]
    updated = datetime.fromtimestamp(view.generated_at, UTC)
    at = datetime.fromtimestamp(view.figures_at, UTC) if view.figures_at is not None else None
    return _template().render(
        view=view,
        css=Markup(_CSS),  # noqa: S704 (our own constant: no outside text in it)
        title="Box office status",
        figures=figures,
        updated=updated.strftime("%H:%M:%S UTC"),
        updated_iso=updated.isoformat(timespec="seconds"),
        at=at.strftime("%H:%M:%S UTC") if at else None,
        at_iso=at.isoformat(timespec="seconds") if at else None,
        number=lambda v: _number(v, 0),
        left=_left,
        clock=_clock,
    )


def since_label(text: str) -> str:
    """An alert's start as shown (empty when Alertmanager's timestamp does not parse)."""
    return _since(text)


def css() -> str:
    """The page's stylesheet (for the contrast test)."""
    return _CSS
