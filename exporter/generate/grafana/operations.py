"""The operations dashboard (seed 001): latency, errors, inventory, webhooks, SMS, exporter."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import stat
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

from exporter.catalog import SOURCE_LEADER
from exporter.generate import class_series, series
from exporter.generate.grafana.delivery_panels import sms_panels, webhook_panels
from exporter.generate.grafana.inventory_panels import inventory_panels
from exporter.generate.grafana.kit import (
    OK,
    SEVERITY_COLOURS,
    Board,
    alert_steps,
    money_overrides,
    no_steps,
    query,
    reduce_last,
    runbook_links,
    series_panel,
    steps,
    up_down_stat,
)
from exporter.generate.grafana.queries import SELECTOR, PanelQueries
from exporter.generate.promql import duration_text
from exporter.generate.rules.ruleset import RuleSet
from exporter.generate.series import CHARGES_FAILED, PAYMENTS_FAILED
from exporter.generate.thresholds import Thresholds

NAME = "operations"
TITLE = "boxoffice: operations"
PURPOSE = "Latency, error rates, inventory, webhooks, SMS and the exporter itself."
REFRESH = "10s"
SINCE = "now-6h"


def build(board: Board, ruleset: RuleSet, q: PanelQueries) -> None:
    th = ruleset.thresholds
    _app(board, th, q)
    _payments(board, th, q)
    inventory_panels(board, th)
    webhook_panels(board, th, q)
    sms_panels(board, th, q)
    _exporter(board, th)


def _app(board: Board, th: Thresholds, q: PanelQueries) -> None:
    latency = th.file.latency
    alert = th.alerts["EndpointLatencyHigh"]
    board.row("Ticket app")
    if latency is not None and latency.endpoints:
        w = duration_text(alert.window)
        p95 = q.read(series.endpoint_p95(latency, alert.window))
        panel = (
            series_panel(
                "Endpoint latency (p95)",
                f"p95 of {latency.histogram} per endpoint over {w}; dashed lines are each "
                "endpoint's high (orange) and critical (red) thresholds.",
            )
            .with_target(query(p95, "{{endpoint}}"))
            .unit("s")
            .thresholds(no_steps())
            .links(runbook_links(th, "EndpointLatencyHigh"))
        )
        for name, endpoint in sorted(latency.endpoints.items()):
            limits = steps(
                (None, OK),
                (float(endpoint.high), SEVERITY_COLOURS["high"]),
                (float(endpoint.critical), SEVERITY_COLOURS["critical"]),
            )
            panel = panel.override_by_name(
                name, [model.DynamicConfigValue("thresholds", limits.build())]
            )
        board.add(panel, width=12, height=8)
    if th.file.slos:
        ratio = q.read(series.slo_error_ratio(th.file.slos, series.SLO_WINDOWS[0]))
        panel = (
            series_panel(
                "Error ratio per SLO (5m)",
                "Failed / all events of each availability objective; the dashed line is the "
                "error budget (1 - objective).",
            )
            .with_target(query(ratio, "{{slo}}"))
            .unit("percentunit")
            .thresholds(no_steps())
            .links(runbook_links(th, "SLOErrorBudgetBurn"))
        )
        for name, slo in sorted(th.file.slos.items()):
            budget = steps((None, OK), (1 - slo.objective / 100, "red"))
            panel = panel.override_by_name(
                name, [model.DynamicConfigValue("thresholds", budget.build())]
            )
        board.add(panel, width=12, height=8)
    board.add(
        up_down_stat(
            "App components",
            "Components reported by the app's health JSON (1 healthy, 0 not).",
            query(
                "max by (target, component) (boxoffice_app_component_up)",
                "{{target}} {{component}}",
                instant=True,
            ),
        ).links(runbook_links(th, "AppHealthDegraded")),
        width=8,
        height=6,
    )
    board.add(
        series_panel("Probe duration", "Time each HTTP health probe took.")
        .with_target(query("max by (target) (boxoffice_probe_duration_seconds)", "{{target}}"))
        .unit("s")
        .thresholds(no_steps())
        .links(runbook_links(th, "ProbeFailing")),
        width=10,
        height=6,
    )
    board.add(
        stat.Panel()
        .title("Probe status")
        .description("Whether each probe succeeded, and the HTTP status code it got.")
        .with_target(query("max by (target) (boxoffice_probe_success)", "{{target}}", instant=True))
        .with_target(
            query("max by (target) (boxoffice_probe_status_code)", "{{target}} HTTP", instant=True)
        )
        .unit("none")
        .thresholds(no_steps())
        .links(runbook_links(th, "ProbeFailing")),
        width=6,
        height=6,
    )


def _payments(board: Board, th: Thresholds, q: PanelQueries) -> None:
    board.row("Payments")
    success = th.alerts["PaymentSuccessRateLow"]
    window = success.window
    board.add(
        series_panel(
            "Payment success rate",
            f"1 - failed / all payments over {duration_text(window)}, from the database and "
            "from Stripe's charges.",
        )
        .with_target(query(f"1 - {_failure_ratio(q, th, 'postgres', window)}", "database"))
        .with_target(query(f"1 - {_failure_ratio(q, th, 'stripe', window)}", "stripe"))
        .unit("percentunit")
        .max(1)
        .thresholds(alert_steps(success))
        .links(runbook_links(th, "PaymentSuccessRateLow")),
        width=9,
        height=8,
    )
    burst = th.alerts["PaymentFailuresBurst"]
    burst_window = burst.window
    db_failures = series.increase(PAYMENTS_FAILED, burst_window)
    stripe_failures = series.increase(CHARGES_FAILED, burst_window)
    board.add(
        stat.Panel()
        .title(f"Failed payments ({duration_text(burst_window)})")
        .description("Payments failed for a system reason in the PaymentFailuresBurst window.")
        .with_target(query(q.read(class_series.failed("postgres", burst_window, th)), instant=True))
        .unit("none")
        .decimals(0)
        .thresholds(alert_steps(burst))
        .links(runbook_links(th, "PaymentFailuresBurst")),
        width=4,
        height=8,
    )
    board.add(
        series_panel(
            "Payment failures by failure code",
            f"Failed payments per {duration_text(burst_window)} by failure code, from the "
            "database and from Stripe.",
        )
        .with_target(query(q.read(db_failures), "db {{failure_code}}"))
        .with_target(query(q.read(stripe_failures), "stripe {{failure_code}}"))
        .unit("none")
        .draw_style(common.GraphDrawStyle.BARS)
        .stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
        .thresholds(no_steps())
        .links(runbook_links(th, "PaymentFailuresBurst", "PaymentSuccessRateLow")),
        width=11,
        height=8,
    )
    balance = (
        stat.Panel()
        .title("Stripe balance")
        .description("Stripe account balance per currency, available and pending.")
        .with_target(
            query(
                "max by (currency, state) (boxoffice_stripe_balance)",
                "{{currency}} {{state}}",
                instant=True,
            )
        )
        .thresholds(no_steps())
        .color_mode(common.BigValueColorMode.NONE)
    )
    money_overrides(balance)
    board.add(balance, width=12, height=5)
    board.add(
        stat.Panel()
        .title("Held by open checkouts")
        .description(
            "Checkout sessions open now and the tickets they hold (not available to others)."
        )
        .with_target(query("max(boxoffice_checkout_sessions_open)", "sessions", instant=True))
        .with_target(
            query(
                f"sum(max by (event, city, tier) "
                f"(boxoffice_inventory_reserved_tickets{{{SELECTOR}}}))",
                "tickets",
                instant=True,
            )
        )
        .unit("none")
        .thresholds(no_steps())
        .color_mode(common.BigValueColorMode.NONE),
        width=12,
        height=5,
    )


def _failure_ratio(q: PanelQueries, th: Thresholds, source: str, window: float) -> str:
    """System-failed / all payments of one source, as PaymentSuccessRateLow reads it."""
    return q.read(class_series.failure_ratio(source, window, th))


def _exporter(board: Board, th: Thresholds) -> None:
    board.row("Exporter")
    board.add(
        up_down_stat(
            "Scrape targets",
            "Whether Prometheus can scrape each boxoffice exporter.",
            query(f'up{{job=~"{th.file.exporter_job}"}}', "{{instance}}", instant=True),
        ).links(runbook_links(th, "ExporterDown", "ExporterReplicaDown")),
        width=4,
        height=8,
    )
    board.add(
        up_down_stat(
            "Sources",
            "Whether each source's last collection succeeded.",
            query("max by (source) (boxoffice_source_up)", "{{source}}", instant=True),
        )
        .reduce_options(reduce_last())
        .links(runbook_links(th, "ExporterSourceDown")),
        width=4,
        height=8,
    )
    board.add(
        series_panel("Collection duration", "How long each source's last collection took.")
        .with_target(query("max by (source) (boxoffice_source_duration_seconds)", "{{source}}"))
        .unit("s")
        .thresholds(no_steps()),
        width=6,
        height=8,
    )
    board.add(
        series_panel("Collection errors", "Failed collections per second, by source and reason.")
        .with_target(
            query(
                "max by (source, reason) (rate(boxoffice_source_errors_total[5m]))",
                "{{source}} {{reason}}",
            )
        )
        .unit("none")
        .thresholds(no_steps())
        .links(runbook_links(th, "ExporterSourceDown")),
        width=5,
        height=8,
    )
    board.add(
        series_panel("Data age", "Time since each source last collected successfully.")
        .with_target(
            query(
                series.age(series.LAST_SUCCESS),
                "{{source}}",
            )
        )
        .unit("s")
        .thresholds(alert_steps(th.alerts["ExporterDataStale"]))
        .links(runbook_links(th, "ExporterDataStale")),
        width=5,
        height=8,
    )
    board.add(
        series_panel(
            "Series folded by the cardinality guard (1h)",
            "Label values past the per-metric limit, folded into `other`, per metric.",
        )
        .with_target(
            query("max by (metric) (increase(boxoffice_series_dropped_total[1h]))", "{{metric}}")
        )
        .unit("none")
        .thresholds(no_steps()),
        width=18,
        height=6,
    )
    board.add(
        up_down_stat(
            "API source leader",
            "With a lease (ha.lease_database): whether some replica polls each API source "
            "(boxoffice_source_leader, max over replicas); down means every replica stands by.",
            query(f"max by (source) ({SOURCE_LEADER})", "{{source}}", instant=True),
        )
        .reduce_options(reduce_last())
        .links(runbook_links(th, "ExporterSourceDown")),
        width=6,
        height=6,
    )
    board.add(
        series_panel(
            "Reconciliation drift",
            "What the last full reconciliation found between the incrementally collected "
            "counters and a full recomputation, per metric, in the metric's units (0 means "
            "exact; it is corrected at once). See docs/incremental.md.",
        )
        .with_target(
            query("max by (metric) (boxoffice_postgres_reconciliation_drift)", "{{metric}}")
        )
        .unit("none")
        .thresholds(no_steps()),
        width=12,
        height=6,
    )
    board.add(
        stat.Panel()
        .title("Last reconciliation")
        .description("Time since the PostgreSQL counters were last reconciled (hourly by default).")
        .with_target(
            query(
                "time() - max(boxoffice_postgres_reconciliation_timestamp_seconds)",
                instant=True,
            )
        )
        .unit("s")
        .thresholds(no_steps()),
        width=3,
        height=6,
    )
    board.add(
        stat.Panel()
        .title("Reconciliations (1d)")
        .description("Full reconciliations run in the last day, over all exporters.")
        .with_target(
            query("max(increase(boxoffice_postgres_reconciliations_total[1d]))", instant=True)
        )
        .unit("none")
        .thresholds(no_steps()),
        width=3,
        height=6,
    )
    board.add(
        stat.Panel()
        .title("Exporter version")
        .description("boxoffice version of each scraped exporter.")
        .with_target(query("max by (version) (boxoffice_build_info)", "{{version}}", instant=True))
        .text_mode(common.BigValueTextMode.NAME)
        .thresholds(no_steps())
        .color_mode(common.BigValueColorMode.NONE),
        width=6,
        height=6,
    )
    board.add(
        series_panel(
            "Database replication lag",
            "How far the database each exporter reads is behind its primary (0 on a primary "
            "or a caught-up standby). Counts stay exact; they are only this old. See "
            "docs/incremental.md.",
        )
        .with_target(
            query("max by (database) (boxoffice_postgres_replication_lag_seconds)", "{{database}}")
        )
        .unit("s")
        .thresholds(alert_steps(th.alerts["PostgresReplicationLagHigh"]))
        .links(runbook_links(th, "PostgresReplicationLagHigh")),
        width=8,
        height=6,
    )
    board.add(
        series_panel(
            "Query output cut (1h)",
            "Rows past sources.postgres.max_rows_per_query and label values past "
            "max_label_length, per metric (docs/security.md).",
        )
        .with_target(
            query(
                "max by (metric) (increase(boxoffice_query_rows_truncated_total[1h]))",
                "{{metric}} rows",
            )
        )
        .with_target(
            query(
                "max by (metric) (increase(boxoffice_label_values_truncated_total[1h]))",
                "{{metric}} labels",
            )
        )
        .unit("none")
        .thresholds(no_steps()),
        width=10,
        height=6,
    )
    board.add(
        series_panel(
            "Databases up",
            "Each database the PostgreSQL source reads (shards included): 1 when all its "
            "queries succeeded in the last collection, 0 when it was unreachable or a query "
            "failed; the other databases' series are unaffected.",
        )
        .with_target(query("min by (database) (boxoffice_database_up)", "{{database}}"))
        .unit("none")
        .thresholds(no_steps()),
        width=12,
        height=6,
    )
    board.add(
        series_panel(
            "Database read time",
            "How long reading each database took in the last collection (databases are read "
            "in parallel, sources.postgres.parallelism at a time).",
        )
        .with_target(
            query("max by (database) (boxoffice_database_duration_seconds)", "{{database}}")
        )
        .unit("s")
        .thresholds(no_steps()),
        width=12,
        height=6,
    )
    board.add(
        stat.Panel()
        .title("Full computations (1d)")
        .description(
            "Starts that recomputed the counters from the whole table instead of resuming from "
            "a checkpoint (incremental.state_dir), over all exporters."
        )
        .with_target(
            query("max(increase(boxoffice_postgres_full_computations_total[1d]))", instant=True)
        )
        .unit("none")
        .thresholds(no_steps()),
        width=6,
        height=6,
    )
