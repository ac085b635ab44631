"""Webhook and SMS panels of the operations dashboard: what Stripe still has to deliver, what
our app failed to process, and whether texts reach people at a sane cost."""

from __future__ import annotations

from grafana_foundation_sdk.builders import stat

from exporter.generate import class_series, series
from exporter.generate.grafana.kit import (
    Board,
    alert_steps,
    money_overrides,
    no_steps,
    query,
    runbook_links,
    series_panel,
)
from exporter.generate.grafana.queries import PanelQueries
from exporter.generate.promql import duration_text
from exporter.generate.series import SMS, SMS_FAILED
from exporter.generate.thresholds import Thresholds


def webhook_panels(board: Board, th: Thresholds, q: PanelQueries) -> None:
    board.row("Webhooks")
    backlog = th.alerts["StripeWebhookBacklog"]
    board.add(
        series_panel(
            "Stripe webhook backlog", "Recent Stripe events whose webhooks are still pending."
        )
        .with_target(query("max(boxoffice_stripe_events_pending_webhooks)", "pending"))
        .unit("none")
        .thresholds(alert_steps(backlog))
        .links(runbook_links(th, "StripeWebhookBacklog")),
        width=8,
        height=8,
    )
    board.add(
        stat.Panel()
        .title("Stripe webhook endpoints")
        .description("Webhook endpoints configured in Stripe, by status.")
        .with_target(
            query(
                "max by (status) (boxoffice_stripe_webhook_endpoints)", "{{status}}", instant=True
            )
        )
        .unit("none")
        .thresholds(no_steps())
        .links(runbook_links(th, "StripeWebhookBacklog")),
        width=4,
        height=8,
    )
    errors = th.alerts["WebhookProcessingErrors"]
    window = errors.window
    w = duration_text(window)
    board.add(
        series_panel(
            f"Webhook processing errors ({w})",
            f"Webhooks our app failed to process in the last {w}, per provider.",
        )
        .with_target(query(q.read(series.webhook_failures(window)), "{{provider}}"))
        .unit("none")
        .thresholds(alert_steps(errors, keys=("high",)))
        .links(runbook_links(th, "WebhookProcessingErrors")),
        width=6,
        height=8,
    )
    board.add(
        series_panel(f"Webhook error ratio ({w})", "Failed / all webhooks per provider.")
        .with_target(query(q.read(series.webhook_failure_ratio(window)), "{{provider}}"))
        .unit("percentunit")
        .thresholds(alert_steps(errors, keys=("critical",)))
        .links(runbook_links(th, "WebhookProcessingErrors")),
        width=6,
        height=8,
    )


def sms_panels(board: Board, th: Thresholds, q: PanelQueries) -> None:
    board.row("SMS")
    failing = th.alerts["SmsDeliveryFailureRateHigh"]
    window = failing.window
    w = duration_text(window)
    sms = series.increase(SMS, window)
    sms_failed = series.increase(SMS_FAILED, window, keep=())
    board.add(
        series_panel(f"SMS delivered and failed ({w})", "Messages that reached a final status.")
        .with_target(query(f"{q.read(sms)} - {q.read(sms_failed)}", "delivered"))
        .with_target(query(q.read(series.increase(SMS_FAILED, window)), "failed {{error_code}}"))
        .unit("none")
        .thresholds(no_steps())
        .links(runbook_links(th, "SmsDeliveryFailureRateHigh")),
        width=8,
        height=8,
    )
    board.add(
        series_panel(
            f"SMS failure ratio ({w})",
            "SMS failed for a reason on our side (provider, account) / all final messages.",
        )
        .with_target(query(q.read(class_series.sms_failure_ratio(window, th)), "failed"))
        .unit("percentunit")
        .thresholds(alert_steps(failing))
        .links(runbook_links(th, "SmsDeliveryFailureRateHigh")),
        width=6,
        height=8,
    )
    cost = th.alerts["SmsCostHigh"]
    cost_window = cost.window
    cost_panel = (
        series_panel(f"SMS cost ({duration_text(cost_window)})", "Twilio spend per window.")
        .with_target(query(q.read(series.sms_cost(cost_window)), "{{currency}}"))
        .thresholds(alert_steps(cost))
        .links(runbook_links(th, "SmsCostHigh"))
    )
    money_overrides(cost_panel)
    board.add(cost_panel, width=5, height=8)
    balance = (
        stat.Panel()
        .title("Twilio balance")
        .description("Prepaid Twilio balance.")
        .with_target(query(series.latest("boxoffice_twilio_balance"), "{{currency}}", instant=True))
        .thresholds(alert_steps(th.alerts["TwilioBalanceLow"]))
        .links(runbook_links(th, "TwilioBalanceLow"))
    )
    money_overrides(balance)
    board.add(balance, width=5, height=8)
