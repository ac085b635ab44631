"""The executive dashboard (seed 001): is the shop selling, and is anything on fire?"""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, stat
from grafana_foundation_sdk.models import common

from exporter.generate import series
from exporter.generate.grafana.kit import (
    OK,
    SEVERITY_COLOURS,
    Board,
    alert_steps,
    floor_steps,
    money_overrides,
    no_steps,
    query,
    reduce_last,
    runbook_links,
    steps,
    up_down_stat,
)
from exporter.generate.grafana.queries import PanelQueries, per_tier
from exporter.generate.rules.alerts.seasonal import COMPLETION_DELAY
from exporter.generate.rules.ruleset import RuleSet
from exporter.generate.series import (
    ORDERS_PAID,
    ORDERS_PAID_REVENUE,
    SOLD,
    by,
    since_local_midnight,
)

NAME = "executive"
TITLE = "boxoffice: executive"
PURPOSE = "Revenue and tickets today, conversion, refunds, upcoming events and system health."
REFRESH = "30s"
SINCE = "now-24h"

DAY = 86400.0
REFUNDED = "boxoffice_tickets_refunded_total"
CAPACITY = "boxoffice_inventory_capacity_tickets"


def build(board: Board, ruleset: RuleSet, q: PanelQueries) -> None:
    th = ruleset.thresholds
    alerts = th.alerts
    board.row("Sales today")
    revenue = _revenue_today(q)
    forecast = alerts["RevenueBelowForecast"]
    revenue_panel = (
        stat.Panel()
        .title("Revenue today")
        .description(
            "Gross revenue of paid orders since local midnight "
            f"({th.file.timezone}), and the forecast RevenueBelowForecast compares it with "
            f"({th.file.forecast.method.replace('_', ' ')})."
        )
        .with_target(query(revenue, "{{currency}} today", instant=True))
        .thresholds(no_steps())
        .color_mode(common.BigValueColorMode.NONE)
        .links(runbook_links(th, "RevenueBelowForecast", "NoRecentSales"))
    )
    money_overrides(revenue_panel)
    forecast_series = series.revenue_forecast(th.file.forecast, th.file.baseline)
    if q.recorded(forecast_series):
        revenue_panel = revenue_panel.with_target(
            query(forecast_series.name, "{{currency}} forecast", instant=True)
        )
        # RevenueBelowForecast fires on the shortfall 1 - today/forecast; the panel shows
        # today/forecast, so each threshold t becomes 1 - t and lower is worse.
        ladder = sorted((1 - v, k) for k, v in forecast.thresholds)
        pairs: list[tuple[float | None, str]] = []
        if forecast.enabled and ladder:
            pairs = [(None, _severity_colour(ladder[0][1]))]
            pairs += [
                (value, _severity_colour(ladder[i + 1][1]) if i + 1 < len(ladder) else OK)
                for i, (value, _key) in enumerate(ladder)
            ]
        board.add(revenue_panel, width=6, height=5)
        board.add(
            stat.Panel()
            .title("Revenue against forecast")
            .description("Today's revenue so far as a share of the forecast for this time.")
            .with_target(query(f"{revenue} / {forecast_series.name}", "{{currency}}", instant=True))
            .unit("percentunit")
            .thresholds(steps(*pairs) if pairs else no_steps())
            .links(runbook_links(th, "RevenueBelowForecast")),
            width=4,
            height=5,
        )
    else:
        board.add(revenue_panel, width=10, height=5)

    tickets = f"sum({per_tier(SOLD)})"
    board.add(
        stat.Panel()
        .title("Tickets sold today")
        .description("Tickets in paid orders since local midnight, for the chosen events.")
        .with_target(query(since_local_midnight(tickets), "tickets", instant=True))
        .unit("none")
        .decimals(0)
        .thresholds(no_steps())
        .color_mode(common.BigValueColorMode.NONE),
        width=4,
        height=5,
    )
    board.add(
        stat.Panel()
        .title("Last paid order")
        .description(
            "Time since the newest paid order; NoRecentSales pages when the shop's own normal "
            "for this hour of the week expected enough orders in that time."
        )
        .with_target(
            query("time() - max(boxoffice_last_paid_order_timestamp_seconds)", instant=True)
        )
        .unit("s")
        .thresholds(no_steps())
        .links(runbook_links(th, "NoRecentSales")),
        width=3,
        height=5,
    )
    conversion = alerts["CheckoutConversionLow"]
    in_window = series.completion_ratio(conversion.window, COMPLETION_DELAY)
    board.add(
        stat.Panel()
        .title("Checkout conversion")
        .description(
            "Completed / created checkout sessions over 24 hours, and over the window "
            "CheckoutConversionLow watches (sessions created 5 minutes earlier), which it "
            "compares with the shop's own normal for this hour of the week."
        )
        .with_target(query(q.read(series.checkout_conversion(DAY)), "24h", instant=True))
        .with_target(query(q.read(in_window), "alert window", instant=True))
        .unit("percentunit")
        .thresholds(floor_steps(conversion, th.file.baseline.completion_floor))
        .links(runbook_links(th, "CheckoutConversionLow")),
        width=7,
        height=5,
    )

    _orders_today(board, ruleset)

    board.row("System health")
    board.add(
        up_down_stat(
            "Exporter sources",
            "Whether boxoffice could collect from each source on its last attempt.",
            query("max by (source) (boxoffice_source_up)", "{{source}}", instant=True),
        ).links(runbook_links(th, "ExporterSourceDown", "ExporterDown")),
        width=9,
        height=4,
    )
    board.add(
        up_down_stat(
            "App probes",
            "HTTP health probes of the ticket app.",
            query("max by (target) (boxoffice_probe_success)", "{{target}}", instant=True),
        ).links(runbook_links(th, "ProbeFailing", "AppHealthDegraded")),
        width=9,
        height=4,
    )
    board.add(
        stat.Panel()
        .title("Critical alerts firing")
        .description("Distinct critical alerts firing now (escalation tiers counted once).")
        .with_target(
            query(
                'count(count by (alertname) (ALERTS{alertstate="firing", severity="critical"}))'
                " or vector(0)",
                "critical",
                instant=True,
            )
        )
        .unit("none")
        .thresholds(steps((None, OK), (1, "red")))
        .color_mode(common.BigValueColorMode.BACKGROUND),
        width=6,
        height=4,
    )

    board.row("Events")
    upcoming = (
        # A tier without seats (capacity 0, e.g. one held back) has no sell-through, not NaN.
        f"({per_tier(SOLD)} - {per_tier(REFUNDED)}) / ({per_tier(CAPACITY)} > 0)\n"
        "and on(event, city) (max by (event, city) (boxoffice_event_start_timestamp_seconds)"
        " > time())"
    )
    board.add(
        bargauge.Panel()
        .title("Upcoming events: sell-through")
        .description("Tickets sold (net of refunds) as a share of capacity, per city and tier.")
        .with_target(query(upcoming, "{{city}} · {{event}} · {{tier}}", instant=True))
        .unit("percentunit")
        .min(0)
        .max(1)
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(reduce_last())
        .thresholds(steps((None, "blue"), (0.5, "purple")))
        .links(runbook_links(th, "SelloutPredicted", "InventoryLow", "InventorySoldOut")),
        width=16,
        height=10,
    )
    refunds = alerts["RefundRateHigh"]
    refund_panel = (
        stat.Panel()
        .title("Refund rate")
        .description("Refunded amount as a share of revenue over the RefundRateHigh window.")
        .with_target(
            query(
                q.read(series.refund_ratio(refunds.window)),
                "{{currency}}",
                instant=True,
            )
        )
        .unit("percentunit")
        .thresholds(alert_steps(refunds))
        .links(runbook_links(th, "RefundRateHigh"))
    )
    board.add(refund_panel, width=8, height=10)


def _today_by(metric: str, labels: str) -> str:
    """How much a paid-orders breakdown grew since local midnight, summed by ``labels``."""
    return since_local_midnight(f"sum by ({labels}) ({by(metric)} ({metric}))")


def _orders_today(board: Board, ruleset: RuleSet) -> None:
    """Paid orders, the average order value and revenue per city since local midnight."""
    th = ruleset.thresholds
    board.row("Orders today")
    orders = _today_by(ORDERS_PAID, "currency")
    revenue = _today_by(ORDERS_PAID_REVENUE, "currency")
    board.add(
        stat.Panel()
        .title("Paid orders today")
        .description(f"Orders paid since local midnight ({th.file.timezone}), per currency.")
        .with_target(query(orders, "{{currency}}", instant=True))
        .unit("none")
        .decimals(0)
        .thresholds(no_steps())
        .color_mode(common.BigValueColorMode.NONE),
        width=5,
        height=5,
    )
    average = (
        stat.Panel()
        .title("Average order value today")
        .description(
            "Revenue / paid orders since local midnight, per currency. "
            "AverageOrderValueAnomalous watches its last hours against the shop's normal."
        )
        .with_target(query(f"({revenue})\n/ ({orders})", "{{currency}}", instant=True))
        .thresholds(no_steps())
        .color_mode(common.BigValueColorMode.NONE)
        .links(runbook_links(th, "AverageOrderValueAnomalous"))
    )
    money_overrides(average)
    board.add(average, width=5, height=5)
    by_city = (
        bargauge.Panel()
        .title("Revenue today by city")
        .description("Gross revenue of orders paid since local midnight, per city.")
        .with_target(
            query(
                _today_by(ORDERS_PAID_REVENUE, "currency, city"),
                "{{currency}} {{city}}",
                instant=True,
            )
        )
        .orientation(common.VizOrientation.HORIZONTAL)
        .reduce_options(reduce_last())
        .thresholds(no_steps())
    )
    money_overrides(by_city)
    board.add(by_city, width=14, height=5)


def _revenue_today(q: PanelQueries) -> str:
    """The recorded series when RevenueBelowForecast records it, else its expression."""
    today = series.revenue_today()
    return today.name if q.recorded(today) else today.expr


def _severity_colour(key: str) -> str:
    return SEVERITY_COLOURS.get(key, "red")
