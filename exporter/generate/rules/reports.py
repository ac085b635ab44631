"""The owner's reports as alerting rules (issue 18): the daily digest and the sales ticker.

Neither is an incident. Both are informational alerts that Alertmanager routes by their
``notify`` label (``digest``, ``ticker``) to their own receivers (alertmanager/config.py),
so they need no service of their own and reach Slack and email through the usual path.

The digest: ``DailyDigest{slot, day}`` is active for ``digest.active_for`` from the slot's
local minute (``boxoffice:local_minute_of_day``, right across daylight saving). The ``day``
label (``boxoffice:local_day``) makes each day's digest a new alert, so Alertmanager tells it
once and tomorrow's is not taken for a repeat. Its text reads the figures with the template
function ``query`` when it fires.

A day's figures come from recording rules that hold each counter's value at the start of the
local day (``boxoffice:digest_day_start:*``): a rule reading its own previous value keeps it
all day and takes the counter's value again when ``boxoffice:local_day`` moves on. Today so
far is the counter minus it, yesterday is today's start minus yesterday's (``offset 1d``) and
the same day last week the same ``offset 7d``. A label value first seen during the day (a new
city) starts at 0. When Prometheus starts (or comes back after a gap of more than a few
minutes), the day starts at its first evaluation: the digest counts from then.

The ticker: ``SalesTicker{minute}`` reports the paid orders of the previous whole minute,
read at the start of the current one with the aligned subquery ``last_over_time(x[1m:1m])``
(one step: the minute's start), so two notifications never count an order twice (in
Prometheus' first minutes the earlier value is the first it holds; a city first seen in
the minute is counted in the total, not listed). The
``minute`` label is that minute's Unix time: each minute with sales is a new alert, a new
group in Alertmanager, one notification.
"""

from __future__ import annotations

from dataclasses import dataclass

from exporter.catalog import CATALOG_BY_NAME
from exporter.generate.digest_settings import minute_of_day
from exporter.generate.failure_classes import classify
from exporter.generate.promql import duration_text
from exporter.generate.rules.model import RecordingRule
from exporter.generate.scope import SHOP_PRESENT, scoped, with_matchers
from exporter.generate.series import (
    ORDERS_PAID,
    ORDERS_PAID_REVENUE,
    ORDERS_PAID_TICKETS,
    PAYMENTS_FAILED,
    REFUNDS,
    SMS,
    SMS_FAILED,
    by,
)
from exporter.generate.thresholds import Thresholds

DAYS_GROUP = "boxoffice-reports-days"
FIGURES_GROUP = "boxoffice-reports-figures"
REPORTS_GROUP = "boxoffice-reports"
DIGEST, TICKER = "DailyDigest", "SalesTicker"
LOCAL_DAY = "boxoffice:local_day"
MINUTE = "boxoffice:local_minute_of_day"


@dataclass(frozen=True)
class Figure:
    """A counter the reports read: ``boxoffice:digest:<name>`` and its day start."""

    name: str
    expr: str

    @property
    def now(self) -> str:
        return f"boxoffice:digest:{self.name}"

    @property
    def start(self) -> str:
        return f"boxoffice:digest_day_start:{self.name}"


def _max(metric: str) -> str:
    return f"{by(metric)} ({metric})"


def figures(th: Thresholds) -> tuple[Figure, ...]:
    classes = th.file.payment_failure_classes.classes()
    failed = classify(_max(PAYMENTS_FAILED), "failure_code", classes)
    assert CATALOG_BY_NAME[ORDERS_PAID_TICKETS].labels  # the breakdown labels
    return (
        Figure("revenue", f"sum by (city, currency) ({_max(ORDERS_PAID_REVENUE)})"),
        Figure("orders", f"sum by (city, currency) ({_max(ORDERS_PAID)})"),
        Figure("tickets", f"sum by (city) ({_max(ORDERS_PAID_TICKETS)})"),
        Figure("payments_failed", f"sum by (failure_class) ({failed})"),
        Figure("refunds", _max(REFUNDS)),
        Figure("sms", f"sum ({_max(SMS)})"),
        Figure("sms_failed", f"sum ({_max(SMS_FAILED)})"),
    )


def day_start_expr(figure: Figure) -> str:
    """The counter's value when the local day began (see the module's docstring)."""
    new_day = f"({LOCAL_DAY} != on () ({LOCAL_DAY} offset 1m))"
    return (
        f"({figure.now} and on () {new_day})\n"
        f"or ({figure.start} unless on () {new_day})\n"
        f"or (0 * {figure.now} and on () ({LOCAL_DAY} offset 1m))\n"
        f"or {figure.now}"
    )


def recording_rules(th: Thresholds) -> list[RecordingRule]:
    scope = _scope(th)
    out: list[RecordingRule] = []
    for figure in figures(th):
        out.append(RecordingRule(figure.now, scoped(figure.expr, scope)))
        out.append(RecordingRule(figure.start, scoped(day_start_expr(figure), scope)))
    return out


def _scope(th: Thresholds) -> tuple[str, ...]:
    return tuple(th.file.scope.labels)


def per_shop(th: Thresholds, clock: str) -> str:
    """``clock`` (one series without labels), once per shop under scope labels: each shop
    gets its own report, with its labels for Alertmanager's routes and groups."""
    scope = _scope(th)
    if not scope:
        return clock
    shops = f"(0 * group by ({', '.join(scope)}) ({SHOP_PRESENT}))"
    return f"({shops} + on () group_left () {clock})"


# Which two moments a period spans, as expressions of a figure.
def today(f: Figure) -> str:
    return f"({f.now} - {f.start})"


def yesterday(f: Figure) -> str:
    return f"({f.start} - ({f.start} offset 1d))"


MONEY, COUNT = '{{ printf "%.2f" .Value }}', '{{ printf "%.0f" .Value }}'
PERIODS = ("today", "yesterday")


def listed(query: str, label: str | None, shown: str, scope: tuple[str, ...] = ()) -> str:
    """Go template: each result of ``query`` as ``<label value> <number>``, comma separated;
    under scope labels, of the alert's own shop only."""
    item = ("{{ .Labels." + label + " }} " if label else "") + shown
    return (
        "{{ range $i, $s := "
        + own_shop(query, scope)
        + " }}{{ if $i }}, {{ end }}{{ with $s }}"
        + item
        + "{{ end }}{{ else }}none{{ end }}"
    )


def own_shop(query: str, scope: tuple[str, ...]) -> str:
    """A template pipeline running ``query``, limited to the alert's shop by its scope labels
    (the query becomes a printf format: its own ``%`` doubled)."""
    if not scope:
        return "query `" + query + "`"
    matchers = ", ".join(f"{label}=%[{i}]q" for i, label in enumerate(scope, start=1))
    limited = with_matchers(query.replace("%", "%%"), matchers)
    args = " ".join(f"$labels.{label}" for label in scope)
    return f"printf `{limited}` {args} | query"


FIGURES = "boxoffice:digest:figures"  # every line of the digest, per period (and shop)
ROW = "digest_row"  # the label naming a line's rows: ``<period>-<line>``, ``-week`` a week back


@dataclass(frozen=True)
class Line:
    title: str
    query: str  # the figures over the period, each row a value of ``label`` (or one row)
    label: str | None
    shown: str

    def row(self, period: str) -> str:
        return f"{period}-{self.title.lower().replace(' ', '_')}"

    def template(self, period: str) -> str:
        """The line over ``period`` and the same period a week earlier, its figures picked
        from the digest's rows (``$rows``)."""
        now, before = (self._picked(self.row(period) + end) for end in ("", "-week"))
        return f"{self.title}: {now} (a week earlier: {before})"

    def _picked(self, row: str) -> str:
        """Go template: the rows labelled ``row``, ``<label value> <number>``, comma separated
        (``none`` without any), in the query's order (largest first)."""
        item = ("{{ .Labels." + self.label + " }} " if self.label else "") + self.shown
        return (
            "{{ $n = 0 }}{{ range $rows }}{{ if eq .Labels."
            + ROW
            + ' "'
            + row
            + '" }}{{ if $n }}, {{ end }}{{ $n = 1 }}'
            + item
            + "{{ end }}{{ end }}{{ if not $n }}none{{ end }}"
        )


def lines(th: Thresholds, period: str) -> list[Line]:
    """The digest's lines over ``period`` (today so far, or yesterday)."""
    of = today if period == "today" else yesterday
    f = {figure.name: figure for figure in figures(th)}
    top = th.file.digest.top_cities
    revenue, orders = of(f["revenue"]), of(f["orders"])
    return [
        Line("Revenue", f"sum by (currency) ({revenue})", "currency", MONEY),
        Line("Paid orders", f"sum ({orders})", None, COUNT),
        Line("Tickets", f"sum ({of(f['tickets'])})", None, COUNT),
        Line(
            "Average order value",
            f"sum by (currency) ({revenue}) / sum by (currency) ({orders}) > 0",
            "currency",
            MONEY,
        ),
        Line("Top cities by orders", f"topk({top}, sum by (city) ({orders}) > 0)", "city", COUNT),
        Line(
            "Payment failures",
            f"sum by (failure_class) ({of(f['payments_failed'])}) > 0",
            "failure_class",
            COUNT,
        ),
        Line("Refunds", f"sum by (currency) ({of(f['refunds'])}) > 0", "currency", MONEY),
        Line("SMS sent", f"sum ({of(f['sms'])})", None, COUNT),
        Line("SMS failed", f"sum ({of(f['sms_failed'])})", None, COUNT),
    ]


def figures_rule(th: Thresholds) -> RecordingRule:
    """Every line of the digest over both periods, as rows labelled ``digest_row``: recorded
    at every evaluation (in a group of its own), so that the digest, rendered for every shop
    at every evaluation of its active minutes, reads one shop's figures and those of a week
    earlier (``offset 7d``) in one query instead of one per figure (docs/benchmarks.md)."""
    rows = [
        f'label_replace({line.query}, "{ROW}", "{line.row(period)}", "", "")'
        for period in PERIODS
        for line in lines(th, period)
    ]
    return RecordingRule(FIGURES, scoped("\nor ".join(rows), _scope(th)))


def digest_text(th: Thresholds, slot: str) -> str:
    """The description of one slot's digest (a Go template): one query for the shop's rows
    of the figures record and those of a week earlier, largest first; each line picks its
    rows."""
    if slot == "morning":
        overnight = [line for line in lines(th, "today") if line.title in _OVERNIGHT]
        parts = ["Overnight, since midnight:", *(f"- {x.template('today')}" for x in overnight)]
        parts += ["Yesterday:", *(f"- {x.template('yesterday')}" for x in lines(th, "yesterday"))]
    else:
        parts = ["Today so far:", *(f"- {x.template('today')}" for x in lines(th, "today"))]
    week = f'label_replace({FIGURES} offset 7d, "{ROW}", "$1-week", "{ROW}", "(.*)")'
    rows = own_shop(f"sort_desc({FIGURES} or {week})", _scope(th))
    return "{{ $rows := " + rows + " }}{{ $n := 0 }}" + "\n".join(parts)


_OVERNIGHT = ("Revenue", "Paid orders", "Tickets")


def digest_rule(th: Thresholds, slot: str, at: str) -> dict[str, object]:
    start = minute_of_day(at)
    end = start + int(th.file.digest.active_for // 60)
    expr = f"{per_shop(th, LOCAL_DAY)} and on () ({MINUTE} >= {start} < {end})"
    when = "this morning" if slot == "morning" else "this evening"
    return {
        "alert": DIGEST,
        "expr": expr,
        "for": "0s",
        "labels": {
            "severity": "low",
            "category": "sales",
            "notify": "digest",
            "slot": slot,
            "day": '{{ printf "%.0f" $value }}',
        },
        "annotations": {
            "summary": f"Daily digest ({slot}, {at} local): the shop {when}",
            "description": digest_text(th, slot),
        },
    }


def new_in_last_minute(aggregate: str, name: str) -> str:
    """How much ``aggregate (name)`` grew over the previous whole minute: its value at the
    start of this minute minus the one at the start of the previous minute, or, in
    Prometheus' first minutes (no value then), the first value it holds."""
    series = f"({aggregate} ({name}))"
    now = f"last_over_time({series}[1m:1m])"
    before = (
        f"(last_over_time({series}[1m:1m] offset 1m) or {aggregate} (min_over_time({name}[2m])))"
    )
    return f"({now} - {before})"


def ticker_text(th: Thresholds) -> str:
    f = {figure.name: figure for figure in figures(th)}
    orders = new_in_last_minute("sum", f["orders"].now)
    revenue = new_in_last_minute("sum by (currency)", f["revenue"].now)
    cities = new_in_last_minute("sum by (city)", f["orders"].now)
    top = th.file.ticker.top_cities
    local = "vector(time() - time() % 60 - 60) + on () boxoffice:timezone_offset_seconds"
    clock = (
        "{{ with query `hour(" + local + ')` }}{{ . | first | value | printf "%02.0f" }}{{ end }}:'
        "{{ with query `minute(" + local + ')` }}{{ . | first | value | printf "%02.0f" }}'
        "{{ end }}"
    )
    scope = _scope(th)
    return (
        f"{clock} local: {listed(orders, None, COUNT, scope)} new paid orders, "
        f"{listed(revenue + ' > 0', 'currency', MONEY, scope)}; "
        f"cities: {listed(f'sort_desc(topk({top}, {cities} > 0))', 'city', COUNT, scope)}"
    )


def ticker_rule(th: Thresholds) -> dict[str, object]:
    f = {figure.name: figure for figure in figures(th)}
    scope = _scope(th)
    listed_scope = ", ".join(scope)
    orders = new_in_last_minute(f"sum by ({listed_scope})" if scope else "sum", f["orders"].now)
    minute = per_shop(th, "vector(time() - time() % 60 - 60)")
    return {
        "alert": TICKER,
        "expr": f"{minute} and on ({listed_scope}) ({orders} > 0)",
        "for": "0s",
        "labels": {
            "severity": "low",
            "category": "sales",
            "notify": "ticker",
            "minute": '{{ printf "%.0f" $value }}',
        },
        "annotations": {"summary": "Sales ticker: new paid orders", "description": ticker_text(th)},
    }


def enabled(th: Thresholds) -> bool:
    return bool(th.file.digest.slots()) or th.file.ticker.enabled


def report_groups(th: Thresholds) -> list[dict[str, object]]:
    """The rule groups of reports.yml; empty when neither report is enabled."""
    if not enabled(th):
        return []
    recording = [{"record": r.record, "expr": r.expr} for r in recording_rules(th)]
    groups: list[dict[str, object]] = [{"name": DAYS_GROUP, "rules": recording}]
    if th.file.digest.slots():  # read an evaluation late, as the day's figures are
        figured = figures_rule(th)
        figure = {"record": figured.record, "expr": figured.expr}
        groups.append({"name": FIGURES_GROUP, "rules": [figure]})
    alerts = [digest_rule(th, slot, at) for slot, at in th.file.digest.slots()]
    if th.file.ticker.enabled:
        alerts.append(ticker_rule(th))
    return [*groups, {"name": REPORTS_GROUP, "rules": alerts}]


def active_for(th: Thresholds) -> str:
    return duration_text(th.file.digest.active_for)
