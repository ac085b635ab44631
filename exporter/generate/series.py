"""Named series: the PromQL that alert rules and dashboard panels share, declared once.

A :class:`NamedSeries` is a recording rule's name with the expression it stands for. Alert
builders record it (``Recorder.use``) and compare its name; a panel reads the name when the
rule set records that exact expression, and the expression inline when it does not (the
alert is disabled), so it shows the number the alert compares either way. A series built on
other named series (a ratio of two increases) keeps them as parts, so either side writes it
out without parsing PromQL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from exporter.catalog import CATALOG_BY_NAME
from exporter.generate.promql import duration_text, num
from exporter.generate.thresholds import Baseline, Forecast, Latency, Slo

PAYMENTS, PAYMENTS_FAILED = "boxoffice_payments_total", "boxoffice_payments_failed_total"
CHARGES, CHARGES_FAILED = "boxoffice_stripe_charges_total", "boxoffice_stripe_charges_failed_total"
DISPUTES = "boxoffice_stripe_disputes_total"
REVENUE, REFUNDS = "boxoffice_revenue_total", "boxoffice_refunds_total"
SOLD = "boxoffice_tickets_sold_total"
AVAILABLE = "boxoffice_inventory_available_tickets"
CAPACITY = "boxoffice_inventory_capacity_tickets"
LAST_PAID = "boxoffice_last_paid_order_timestamp_seconds"
LAST_SUCCESS = "boxoffice_source_last_success_timestamp_seconds"
CREATED = "boxoffice_checkout_sessions_created_total"
COMPLETED = "boxoffice_checkout_sessions_completed_total"
WEBHOOKS = "boxoffice_webhook_events_total"
WEBHOOKS_FAILED = "boxoffice_webhook_events_failed_total"
SMS, SMS_FAILED = "boxoffice_sms_messages_total", "boxoffice_sms_messages_failed_total"
SMS_COST = "boxoffice_sms_cost_total"
ORDERS_PAID = "boxoffice_orders_paid_total"
ORDERS_PAID_REVENUE = "boxoffice_orders_paid_revenue_total"
ORDERS_PAID_TICKETS = "boxoffice_orders_paid_tickets_total"

# Windows the SLO error ratios are recorded over, shortest first: the burn-rate alert pairs
# them, the operations dashboard shows the shortest.
SLO_WINDOWS = (300.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0, 259200.0)
# Payment failures per source: the alert reads both, the panel shows both.
PAYMENT_SOURCES = (("postgres", PAYMENTS_FAILED, PAYMENTS), ("stripe", CHARGES_FAILED, CHARGES))


@dataclass(frozen=True)
class NamedSeries:
    """A recording rule name and its expression, as text pieces and the series it reads."""

    name: str
    pieces: tuple[str | NamedSeries, ...]

    @property
    def parts(self) -> tuple[NamedSeries, ...]:
        return tuple(p for p in self.pieces if isinstance(p, NamedSeries))

    @property
    def expr(self) -> str:
        """The expression as recorded: each part read by its rule name."""
        return self.written(lambda part: part.name)

    def written(self, read: Callable[[NamedSeries], str]) -> str:
        """The expression with each part written as ``read(part)``."""
        return "".join(p if isinstance(p, str) else read(p) for p in self.pieces)


def _named(name: str, expr: str) -> NamedSeries:
    return NamedSeries(name=name, pieces=(expr,))


def by(metric: str, *, keep: tuple[str, ...] | None = None) -> str:
    """``max by (<labels>)``: replicas of the exporter report the same value (SPEC 6)."""
    labels = CATALOG_BY_NAME[metric].labels if keep is None else keep
    return f"max by ({', '.join(labels)})" if labels else "max"


def latest(metric: str) -> str:
    """A gauge's value, max over exporter replicas, by its labels."""
    return f"{by(metric)} ({metric})"


def latest_increase(metric: str, window: str) -> str:
    """Increase of a counter over ``window`` (text), max over replicas, by its labels."""
    return f"{by(metric)} (increase({metric}[{window}]))"


def age(metric: str) -> str:
    """Seconds since a timestamp gauge, max over replicas."""
    return f"time() - {latest(metric)}"


def increase(metric: str, window: float, *, keep: tuple[str, ...] | None = None) -> NamedSeries:
    """Increase over ``window``, max over replicas; failed counters summed over reasons."""
    short = metric.removeprefix("boxoffice_").removesuffix("_total")
    w = duration_text(window)
    labels = CATALOG_BY_NAME[metric].labels if keep is None else keep
    inner = f"{by(metric)} (increase({metric}[{w}]))"
    if labels != CATALOG_BY_NAME[metric].labels:
        kept = f"sum by ({', '.join(labels)})" if labels else "sum"
        inner = f"{kept} ({inner})"
    return _named(f"boxoffice:{short}:increase{w}", inner)


HOUR = 3600.0


def by_hours(window: float) -> bool:
    """Whether :func:`increase_by_hours` sums hourly increases over ``window`` (whole hours,
    more than one) rather than reading the counter over it."""
    return window > HOUR and window % HOUR == 0


def increase_by_hours(metric: str, window: float) -> NamedSeries:
    """Increase over ``window`` (whole hours, more than one), summed from the recorded hourly
    increase at each of the last ``window / 1h`` whole hours, instead of reading ``window``
    of every raw sample (a day of 15 s scrapes is 5,760 samples per series and replica).

    The subquery evaluates the hourly series at the multiples of 1h since the epoch in its
    range; Prometheus 2.x includes both ends of a range, so a range of exactly ``window``
    would hold one hour more when evaluated on the hour: it is ``window`` less 1 ms. The sum
    covers the whole hours up to the last one started (up to an hour ago), and a tier appears
    once its first hour has been recorded. Same name as :func:`increase`: the same quantity.
    """
    if not by_hours(window):
        return increase(metric, window)
    hours = f"[{duration_text(window - 0.001)}:{duration_text(HOUR)}]"
    return NamedSeries(
        name=increase(metric, window).name,
        pieces=("sum_over_time(", increase(metric, HOUR), f"{hours})"),
    )


def ratio(failed: str, total: str, window: float, *, keep: tuple[str, ...] = ()) -> NamedSeries:
    """failed / total over ``window`` (both as increases), by the labels in ``keep``."""
    short = failed.removeprefix("boxoffice_").removesuffix("_total")
    numerator = increase(failed, window, keep=keep)
    denominator = increase(total, window, keep=keep)
    return NamedSeries(
        name=f"boxoffice:{short}:ratio_increase{duration_text(window)}",
        pieces=(numerator, " / ", denominator),
    )


def payment_failure_ratio(failed: str, total: str, window: float) -> NamedSeries:
    """Failed / all payments of one source (PAYMENT_SOURCES)."""
    return ratio(failed, total, window)


def failed_payments(window: float) -> NamedSeries:
    """Failed payments of every failure code together."""
    return increase(PAYMENTS_FAILED, window, keep=())


def refund_ratio(window: float) -> NamedSeries:
    return ratio(REFUNDS, REVENUE, window, keep=("currency",))


def dispute_ratio(window: float) -> NamedSeries:
    return ratio(DISPUTES, CHARGES, window, keep=())


def checkout_conversion(window: float) -> NamedSeries:
    """Completed / created checkout sessions."""
    return ratio(COMPLETED, CREATED, window)


def webhook_failure_ratio(window: float) -> NamedSeries:
    return ratio(WEBHOOKS_FAILED, WEBHOOKS, window, keep=("provider",))


def webhook_failures(window: float) -> NamedSeries:
    return increase(WEBHOOKS_FAILED, window)


def sms_failure_ratio(window: float) -> NamedSeries:
    return ratio(SMS_FAILED, SMS, window, keep=())


def sms_cost(window: float) -> NamedSeries:
    return increase(SMS_COST, window)


def paid_orders(window: float) -> NamedSeries:
    """Paid orders over ``window``, per currency (the breakdown metric summed)."""
    return increase(ORDERS_PAID, window, keep=("currency",))


def order_value(window: float) -> NamedSeries:
    """The average order value over ``window`` per currency: revenue / paid orders, both
    from the same paid-orders breakdown (NaN, filtered by readers, without orders)."""
    return NamedSeries(
        name=f"boxoffice:order_value:avg{duration_text(window)}",
        pieces=(
            increase(ORDERS_PAID_REVENUE, window, keep=("currency",)),
            " / ",
            paid_orders(window),
        ),
    )


def tiers_running_low(limit: float) -> NamedSeries:
    """Tickets left in the tiers with at most ``limit`` left, replicas folded (the most any
    replica reports): the few tiers the low, critical, sold-out and oversold alerts compare,
    found in one pass over every tier instead of one per alert and escalation tier."""
    return _named("boxoffice:inventory_available:low", f"{latest(AVAILABLE)} <= {limit:g}")


def capacity() -> NamedSeries:
    """Every tier's capacity, replicas folded: recorded in a group of its own (a tier's
    capacity rarely changes), so the alerts' group joins a recorded series instead of
    selecting every tier's raw capacity from each replica."""
    return _named("boxoffice:inventory_capacity:max", latest(CAPACITY))


def stock() -> NamedSeries:
    """Every tier's tickets left, replicas folded: recorded in a group of its own for the
    sell-out forecast (:func:`sellout_seconds`), which then reads one recorded series per
    tier instead of folding every replica's raw series itself. The alerts that must see
    the stock at once read :func:`tiers_running_low`, recorded beside them."""
    return _named("boxoffice:inventory_available:max", latest(AVAILABLE))


def capacity_running_low(low: NamedSeries, every: NamedSeries) -> NamedSeries:
    """The capacity of the tiers in ``low``, from ``every`` tier's recorded capacity."""
    tier = ", ".join(CATALOG_BY_NAME[CAPACITY].labels)
    return NamedSeries(
        name="boxoffice:inventory_capacity:low",
        pieces=(every, f" and on ({tier}) ", low),
    )


def sellout_seconds(
    window: float, horizon: float, left: NamedSeries, low: NamedSeries
) -> NamedSeries:
    """Seconds until each tier with tickets left (``left``, every tier's recorded stock)
    sells out at the sales rate of ``window``, for the tiers that would within ``horizon``,
    leaving out those sold out in the last hour (expiring checkouts hand a few seats back
    after a sell-out: InventorySoldOut's news; ``low``: the tiers running low, see
    :func:`sold_out_now`). Recorded apart from the alert: one pass over every tier's stock
    and sales, and SelloutPredicted compares these few series.

    Written as stock / sales <= horizon / window, then times ``window``: the comparison
    keeps the few tiers near selling out before anything else is computed for them, and
    no arithmetic with a number runs over every tier (stock / (sales / window) divided
    each of them by ``window`` first)."""
    return NamedSeries(
        name=f"boxoffice:inventory_sellout_seconds:rate{duration_text(window)}",
        pieces=(
            "((",
            left,
            " > 0) / ",
            increase_by_hours(SOLD, window),
            f" <= {num(horizon / window)}\nunless max_over_time(",
            sold_out_now(low),
            f"[1h])) * {num(window)}",
        ),
    )


def sold_out_now(low: NamedSeries) -> NamedSeries:
    """Tiers sold out or oversold now (replicas folded: the most any replica reports),
    taken from ``low``, the few tiers running low (:func:`tiers_running_low`, whose limit is
    never below 0), instead of a second pass over every tier's stock. Recorded every
    evaluation, it makes "sold out in the last hour" a read of these few series
    (``max_over_time(...[1h])``) instead of an hour of every tier's samples."""
    return NamedSeries(name="boxoffice:inventory_sold_out:max", pieces=(low, " <= 0"))


def since_local_midnight(expr: str) -> str:
    """How much a counter expression grew since the seller's local midnight.

    The current value minus the lowest value seen since the local day
    (``boxoffice:local_day``, DST-aware) began.
    """
    return (
        f"{expr}\n- min_over_time(\n    ({expr}\n"
        "      and on() (boxoffice:local_day == on() (boxoffice:local_day @ end()))\n"
        "    )[1d:5m]\n  )"
    )


# The label telling the past weeks of a seasonal baseline apart ("1" is a week ago).
WEEK_LABEL = "baseline_week"


def past_weeks(
    base: NamedSeries, baseline: Baseline, *, valid: str = "", whole: float = 0.0
) -> NamedSeries:
    """``base`` at the same moment of each of the past weeks, labelled by ``baseline_week``.

    ``valid`` filters each week's sample (``>= 0`` drops the NaN of an empty ratio);
    ``whole`` (seconds) keeps a week's sample only if ``base`` existed that long before it
    too, so a window that began before the history did is not a normal.
    """
    pieces: list[str | NamedSeries] = []
    for week in range(1, baseline.weeks + 1):
        pieces += ["\nor " if week > 1 else "", "label_replace(", base]
        pieces.append(f" offset {week}w{valid}")
        if whole:
            pieces += [" and ", base, f" offset {duration_text(week * 7 * 86400.0 + whole)}"]
        pieces.append(f', "{WEEK_LABEL}", "{week}", "", "")')
    return NamedSeries(name=f"{base.name}:past_weeks", pieces=tuple(pieces))


def seasonal(
    base: NamedSeries, baseline: Baseline, *, valid: str = "", name: str = "", whole: float = 0.0
) -> NamedSeries:
    """The shop's normal for ``base``: the median of the same hour of the week over the past
    weeks (one outlier week, such as an on-sale, does not move it), and no series at all
    until ``min_weeks`` of those weeks exist, so the alerts reading it stay silent."""
    weeks = past_weeks(base, baseline, valid=valid, whole=whole)
    return NamedSeries(
        name=name or f"{base.name}:baseline",
        pieces=(
            f"quantile without ({WEEK_LABEL}) (0.5, ",
            weeks,
            f")\nand count without ({WEEK_LABEL}) (",
            weeks,
            f") >= {baseline.min_weeks}",
        ),
    )


def orders_in(window: float) -> NamedSeries:
    """Orders whose payment reached a terminal state over ``window``. Its own name: the
    payments alerts record ``boxoffice:payments:increase5m`` in their file, and a name two
    categories shared would move to recording.yml."""
    w = duration_text(window)
    return _named(f"boxoffice:orders:increase{w}", latest_increase(PAYMENTS, w))


def normal_in_silence(windows: list[float], baseline: Baseline) -> NamedSeries:
    """Orders the shop normally completes (terminal payments: paid, or failed) in the
    longest of ``windows`` that passed without a paid order: the median of the same
    window in past weeks, so a quiet night expects few and a busy evening many. Until the
    shop has that history, the orders of the window just before: a sudden stop of a shop
    that was selling briskly."""
    pieces: list[str | NamedSeries] = ["max (\n"]
    for i, window in enumerate(windows):
        w = duration_text(window)
        normal = seasonal(orders_in(window), baseline)
        pieces += ["  or " if i else "  ", "label_replace((", normal, " or ", orders_in(window)]
        pieces.append(
            f' offset {w}) and on() ({age(LAST_PAID)}) >= {window:g}, "silence", "{w}", "", "")\n'
        )
    pieces.append(")")
    return NamedSeries(name="boxoffice:payments:normal_in_silence", pieces=tuple(pieces))


# NoRecentSales scales its normal down to today's buyers, by at most this much: a checkout
# whose sessions stop opening too when it breaks still pages, at twice the silence.
LEAST_BUYERS_SHARE = 0.5


def expected_in_silence(windows: list[float], baseline: Baseline) -> NamedSeries:
    """The normal of ``normal_in_silence`` scaled to today's buyers: times today's checkout
    sessions over the median of past weeks' (between ``LEAST_BUYERS_SHARE`` and 1; the
    normal itself for a shop without session counts or their history). A day with fewer
    buyers (an event sold out, a slow week) sells fewer orders, so a silence of the usual
    length is then no sign of a broken checkout."""
    normal = normal_in_silence(windows, baseline)
    sessions = sessions_today()
    return NamedSeries(
        name="boxoffice:payments:expected_in_silence",
        pieces=(
            normal,
            " * clamp(",
            sessions,
            " / (",
            seasonal(sessions, baseline),
            f" > 0), {LEAST_BUYERS_SHARE:g}, 1)\nor ",
            normal,
        ),
    )


def tickets_sold_all(window: float) -> NamedSeries:
    """Tickets sold over ``window`` by the whole shop (every event, city and tier)."""
    w = duration_text(window)
    named = f"boxoffice:tickets_sold_all:increase{w}"
    return NamedSeries(name=named, pieces=("sum (", increase(SOLD, window), ")"))


def completion_ratio(window: float, delay: float) -> NamedSeries:
    """Sessions completed over ``window`` / sessions created over the same window ``delay``
    earlier: a session completes minutes after it opens, so an on-sale surge of new sessions
    does not read as a dip in completion."""
    return NamedSeries(
        name=f"boxoffice:checkout_completion:ratio_increase{duration_text(window)}",
        pieces=(increase(COMPLETED, window), " / ", created_before(window, delay)),
    )


def created_before(window: float, delay: float) -> NamedSeries:
    """Checkout sessions created over ``window``, ``delay`` ago (the completion ratio's base)."""
    w, d = duration_text(window), duration_text(delay)
    return _named(
        f"boxoffice:checkout_sessions_created:increase{w}_offset{d}",
        f"{by(CREATED)} (increase({CREATED}[{w}] offset {d}))",
    )


def revenue_today() -> NamedSeries:
    return _named("boxoffice:revenue:today", since_local_midnight(latest(REVENUE)))


def sessions_today() -> NamedSeries:
    """Checkout sessions opened since local midnight: today's buyers, whatever they paid."""
    return _named(
        "boxoffice:checkout_sessions_created:today", since_local_midnight(latest(CREATED))
    )


def revenue_forecast_for_buyers(forecast: Forecast, baseline: Baseline) -> NamedSeries:
    """The forecast scaled down to today's buyers: times today's checkout sessions over the
    median of past weeks' (at most 1; 1 for a shop without session counts). An event sold
    out or a quiet day brings fewer buyers, which is no money lost in checkout."""
    sessions = sessions_today()
    return NamedSeries(
        name="boxoffice:revenue:forecast_for_buyers_today",
        pieces=(
            revenue_forecast(forecast, baseline),
            " * on() group_left() (clamp_max(",
            sessions,
            " / ",
            seasonal(sessions, baseline),
            ", 1) or vector(1))",
        ),
    )


def revenue_forecast(forecast: Forecast, baseline: Baseline) -> NamedSeries:
    """What today's revenue should be by now: the median of the same time in past weeks,
    last week's, or the daily target prorated."""
    name = "boxoffice:revenue:forecast_today"
    if forecast.method == "seasonal":
        return seasonal(revenue_today(), baseline, name=name)
    if forecast.method == "same_time_last_week":
        return NamedSeries(name=name, pieces=(revenue_today(), " offset 1w"))
    targets = [
        f'label_replace(vector({target:g}), "currency", "{currency}", "", "")'
        " * on() group_left() (boxoffice:local_minute_of_day / 1440)"
        for currency, target in sorted(forecast.daily_target.items())
    ]
    return _named(name, "\nor ".join(targets))


def endpoint_p95(latency: Latency, window: float) -> NamedSeries:
    """p95 latency of each configured endpoint, from the app's histogram."""
    w = duration_text(window)
    bucket = f"{latency.histogram}_bucket"
    extra = f"{latency.selector}, " if latency.selector else ""
    clauses = []
    for name, endpoint in sorted(latency.endpoints.items()):
        matcher = f'{extra}{latency.endpoint_label}="{endpoint.route}"'
        rate = f"sum by (le) (rate({bucket}{{{matcher}}}[{w}]))"
        clauses.append(
            f'label_replace(histogram_quantile(0.95, {rate}), "endpoint", "{name}", "", "")'
        )
    return _named(f"boxoffice:endpoint_latency_seconds:p95_rate{w}", "\nor ".join(clauses))


def slo_error_ratio_name(window: float) -> str:
    return f"boxoffice:slo_errors:ratio_rate{duration_text(window)}"


def slo_error_count_name(window: float) -> str:
    return f"boxoffice:slo_errors:increase{duration_text(window)}"


def slo_error_count(slos: dict[str, Slo], window: float) -> NamedSeries:
    """Failed events of each availability objective over ``window``, labelled by ``slo``."""
    w = duration_text(window)
    clauses = [
        f'label_replace(sum(increase({slo.errors}[{w}])), "slo", "{name}", "", "")'
        for name, slo in sorted(slos.items())
    ]
    return _named(slo_error_count_name(window), "\nor ".join(clauses))


def slo_error_ratio(slos: dict[str, Slo], window: float) -> NamedSeries:
    """Failed / all events of each availability objective, labelled by ``slo``: 0 while
    events flow and none failed (a class of failures that never happened has no series)."""
    w = duration_text(window)
    clauses = [
        f"label_replace((sum(rate({slo.errors}[{w}])) or vector(0)) / sum(rate({slo.total}[{w}]))"
        f', "slo", "{name}", "", "")'
        for name, slo in sorted(slos.items())
    ]
    return _named(slo_error_ratio_name(window), "\nor ".join(clauses))
