"""docs/runbooks/<Alert>.md: what an alert means, what to check first, how to silence it."""

from __future__ import annotations

from exporter.generate.promql import duration_text, metric_names
from exporter.generate.rules.ruleset import BuiltAlert, RuleSet

_FIRST_CHECKS: dict[str, tuple[str, ...]] = {
    "PaymentSuccessRateLow": (
        "Stripe status page and the Stripe dashboard's failed payments: one card network or all?",
        'It counts system failures only (`failure_class="system"`): which `failure_code`s? '
        "A code new to the map in thresholds.yaml is `system` until it is listed.",
        "Recent deploys of the checkout code; the app's logs around checkout and webhooks.",
    ),
    "PaymentFailuresBurst": (
        "System failures only: `processing_error` (processor), or a code the "
        "`payment_failure_classes` map in thresholds.yaml does not list yet?",
        "Stripe status page: an outage of one card network or of Stripe itself?",
    ),
    "DeclineRateAnomalous": (
        "Stripe dashboard, failed payments: many small attempts, new cards, one IP or BIN? "
        "That is card testing.",
        "Turn on or tighten Radar rules (block by velocity, require CVC/postal code), add a "
        "CAPTCHA to checkout, rate-limit the checkout endpoint.",
        "A bank or network outage declining real buyers looks the same: is one card brand "
        "or country behind it?",
    ),
    "RefundRateHigh": (
        "Was an event cancelled or moved? Refund waves follow announcements.",
        "Who issued the refunds (Stripe dashboard): support staff, or an automation gone wrong?",
        "It needs refunds worth at least `relative.min_refunds` average orders: a few big "
        "orders refunded at a small shop are still worth a look at who and why.",
    ),
    "DisputeRateHigh": (
        "Open disputes in the Stripe dashboard: same event, same card country, same reason?",
        "Above 1% Stripe may review the account; answer disputes with the ticket evidence.",
    ),
    "InventoryLow": (
        "Is the tier expected to sell out? Tell marketing, consider releasing more capacity.",
        "Open checkout sessions hold tickets: `boxoffice_inventory_reserved_tickets`.",
    ),
    "InventoryCritical": (
        "Decide now whether to add capacity or close the tier to avoid overselling.",
        "Check reservations: expiring sessions may return tickets in minutes.",
    ),
    "InventorySoldOut": (
        "Confirm the event page shows sold out and checkout refuses the tier.",
        "Consider a waitlist or another date; tell support.",
    ),
    "InventoryOversold": (
        "Stop sales of the tier at once (set the event status or the capacity).",
        "Find the orders past capacity (`orders` joined to `ticket_tiers`); decide who to refund.",
        "Look for a race in checkout: two sessions completing on the last ticket.",
    ),
    "SelloutPredicted": (
        "Good news usually: plan for the sell-out (waitlist, extra date, stop ads).",
        "A sudden spike can also be a bot or a pricing error: check the order sizes.",
    ),
    "SalesVelocitySpike": (
        "A campaign or press mention? Check with marketing.",
        "A pricing or discount error sells fast: check recent prices and coupons.",
    ),
    "NoRecentSales": (
        "Try a purchase on the live site end to end (test card in test mode, or a real one).",
        "Check checkout sessions: created but not completed points at payment or redirects.",
        'Check `boxoffice_source_up{source="postgres"}`: silent data looks like no sales.',
    ),
    "RevenueBelowForecast": (
        "The forecast already follows today's checkout sessions (fewer buyers, a sold-out "
        "event, lower it): the money is lost after buyers arrived. Check checkout "
        "conversion and payment success alerts for a technical cause.",
        "Compare completed sessions and failed payments with last week at this hour.",
    ),
    "AverageOrderValueAnomalous": (
        "Up: a pricing or discount error (a VIP price on GA, a coupon gone), bulk buys or a "
        "bot? Look at the biggest recent orders.",
        "Down: a coupon shared too widely, a tier sold out or closed, a price changed? "
        "Compare `boxoffice_orders_paid_revenue_total` by tier and payment method with last week.",
    ),
    "CheckoutConversionLow": (
        "Try a checkout yourself; look at the Stripe Checkout page and the success redirect.",
        "Expired sessions rising (`boxoffice_checkout_sessions_expired_total`): buyers give up.",
    ),
    "StripeWebhookBacklog": (
        "Stripe dashboard, Developers, Webhooks: failed deliveries and their responses.",
        "Is the webhook endpoint up and answering 2xx within Stripe's timeout?",
        "Orders stay pending while webhooks do not arrive: tell support.",
    ),
    "WebhookProcessingErrors": (
        "`webhook_logs.last_error` for the provider: signature, parsing or database errors?",
        "A rotated webhook secret not yet deployed fails every signature check.",
    ),
    "SmsDeliveryFailureRateHigh": (
        "Twilio console, Messaging logs: error codes of the failed messages.",
        "It counts our failures only (provider, account: 30001, 30008, 20003, …); the "
        "recipient's (30003 unreachable, 30006 landline, 30007 carrier filtering, 21211, …) "
        "are listed under `sms_failure_classes` in thresholds.yaml and never count.",
    ),
    "StripeWebhookEndpointDisabled": (
        "Stripe dashboard, Developers, Webhooks: which endpoint is disabled, and why (Stripe "
        "disables an endpoint that failed deliveries for days, or someone did).",
        "Fix what made deliveries fail, then enable the endpoint again; Stripe resends the "
        "events of the last days it could not deliver.",
        "Orders paid meanwhile stay pending in our database: tell support.",
    ),
    "SmsCostHigh": (
        "SMS pumping? Many messages to unfamiliar (often premium or foreign) numbers with no "
        "order behind them: enable Twilio's SMS Pumping Protection, geo permissions.",
        "A loop sending the same SMS? Look for repeated recipients in the Twilio logs.",
        "International numbers cost more: check the destinations.",
    ),
    "TwilioBalanceLow": (
        "Top up the Twilio account or enable auto-recharge; SMS stop when it reaches zero.",
        "It fires below the balance's lowest point of the past week: auto-recharge on and "
        "still this low? Check the payment method Twilio charges (a declined card stops the "
        "recharge), and whether spend jumped (SmsCostHigh, SMS pumping).",
    ),
    "AppHealthDegraded": (
        "Open the app's health endpoint and read the failing component's status.",
        "Check the component itself (database, cache, email provider).",
    ),
    "ProbeFailing": (
        "Open the probed URL from outside; check DNS, TLS expiry and the load balancer.",
        "`boxoffice_probe_status_code` tells a timeout (absent) from an error status.",
    ),
    "EndpointLatencyHigh": (
        "Which endpoint: checkout waits on Stripe, the webhook on the database.",
        "Database load and slow queries; recent deploys; traffic compared with last week.",
    ),
    "SLOErrorBudgetBurn": (
        "Which SLO (label `slo`): find the failing requests in the app's logs or traces.",
        "Critical means the monthly budget goes in hours: roll back the last change first.",
    ),
    "ExporterSourceDown": (
        "The exporter's log names the failure reason; `boxoffice_source_errors_total` counts them.",
        "Business alerts of that source cannot fire while it is down.",
    ),
    "ExporterDown": (
        "Every replica of the job is down: is any exporter process running? "
        "`curl http://<instance>/healthz` on each.",
        "Check the Prometheus target page for the scrape error (auth, TLS, timeout).",
        "While it fires it silences every business alert (routing.yaml `inhibit.exporter_down`): "
        "nothing watches the shop until one replica is back.",
    ),
    "ExporterReplicaDown": (
        "Another replica still serves, so the alerts keep working: this is a warning, not a page.",
        "Is that replica's process running (label `instance`)? `curl http://<instance>/healthz`; "
        "the Prometheus target page shows the scrape error (auth, TLS, timeout).",
        "Bring it back before another replica goes: with none left it is ExporterDown.",
    ),
    "ExporterDataStale": (
        "Collections stopped succeeding: check the exporter log and the database's load.",
        "A query slower than its interval never completes: raise the timeout or add an index.",
    ),
    # The alerting path (issue 19; docs/alerting.md, "Monitoring the monitoring").
    "Watchdog": (
        "Nothing to fix while it fires: it is the heartbeat. Its absence is the alarm: the SMS "
        "bridge texts the heartbeat group that the alerting pipeline is down.",
        "Never silence it: the bridge (or the dead-man's switch) would report the pipeline "
        "down. To stop the heartbeat on purpose, stop watching it in the bridge first.",
    ),
    "AlertmanagerNotificationsFailing": (
        "Alertmanager's log (`level=error ... notify`): which integration and what it answered "
        "(Slack 404/410: the webhook was deleted; 429: rate limited; 5xx: their outage).",
        "The secret files it reads (`slack_api_url_file`, `routing_key_file`, SMTP password): "
        "rotated or emptied?",
        "Meanwhile the other channels carry the alerts: watch them.",
    ),
    "PrometheusRuleEvaluationFailing": (
        "Prometheus' Rules page (/rules) shows the failing rule and its error.",
        "A query over too many series (`query processing would load too many samples`), or a "
        "hand-edited rule file: regenerate with `boxoffice generate` and `boxoffice check`.",
    ),
    "PrometheusNotificationsFailing": (
        'Is Alertmanager up and reachable from Prometheus (`up{job="alertmanager"}`, '
        "Prometheus' log `Error sending alert`)?",
        "Dropped alerts mean the queue overflowed (`--alertmanager.notification-queue-capacity`).",
    ),
    "PrometheusAlertmanagerMissing": (
        "`alerting.alertmanagers` in prometheus.yml: a wrong name or service discovery that "
        "finds nothing. Prometheus' /status page lists the Alertmanagers it knows.",
    ),
    "SmsBridgeSendsFailing": (
        "The bridge's log: which reason (`boxoffice_sms_bridge_messages_failed_total{reason}`)? "
        "auth: the Twilio auth token; twilio_refused: the sender number or messaging service; "
        "twilio_unavailable/timeout/connection: Twilio or the network; store: its database.",
        "Twilio's status page and the account's debugger (console, Monitor, Errors).",
    ),
    "SmsBridgeSendsDeferred": (
        "An alert storm: many notifications to the same people within 30s. The digests "
        "carry them; look at what is firing and whether grouping (`group_by`) is too fine.",
    ),
    "SmsBridgeTwilioBalanceLow": (
        "Top up the Twilio account the bridge sends through (console, Billing), or turn on "
        "auto-recharge: at 0 Twilio refuses every page.",
    ),
    "PostgresReplicationLagHigh": (
        "On the standby: `SELECT pg_is_wal_replay_paused(), pg_last_wal_receive_lsn(), "
        "pg_last_wal_replay_lsn()`; replay paused, or receiving but not replaying (long "
        "queries holding it back, I/O), or not receiving at all (`pg_stat_wal_receiver`).",
        "Counts catch up exactly when replay does; until then business alerts judge old data. "
        "Point the exporter at the primary meanwhile if the lag lasts.",
    ),
}


def runbook(built: BuiltAlert, ruleset: RuleSet) -> str:
    """The runbook page of one alert, from the same rules Prometheus runs."""
    alert = built.alert
    spec = alert.spec
    th = ruleset.thresholds
    lines = [
        f"# {spec.name}",
        "",
        f"*Generated by `boxoffice generate` from {th.source}; do not edit.*",
        "",
        f"**{spec.summary}.** Category `{spec.category}`.",
        "",
        "## What it means",
        "",
    ]
    seen: set[tuple[str, str]] = set()
    for rule in built.rules:
        if (rule.severity, rule.expr) in seen:
            continue
        seen.add((rule.severity, rule.expr))
        lines += [
            f"Severity `{rule.severity}` when this holds for {duration_text(alert.for_seconds)}:",
            "",
            "```promql",
            rule.expr,
            "```",
            "",
        ]
    lines += _recording_rules_read(built, ruleset)
    lines += ["## Escalation", "", *_escalation(built), ""]
    lines += [
        "## First checks",
        "",
    ]
    lines += [f"1. {check}" for check in _FIRST_CHECKS.get(spec.name, ())]
    lines += [
        "",
        "## Silencing",
        "",
        "For planned work, silence it rather than disabling it:",
        "",
        "```sh",
        f"amtool silence add alertname={spec.name} --duration=2h --comment='why'",
        "```",
        "",
        f"To change when it fires, edit `alerts.{spec.name}` in {th.source} and run "
        "`boxoffice generate`.",
        "",
    ]
    return "\n".join(lines)


def _escalation(built: BuiltAlert) -> list[str]:
    """What the tiers of this alert are, from the rules generated for it."""
    spec = built.alert.spec
    out: list[str] = []
    if spec.notify_once:
        out.append(
            'It never escalates and carries `notify="once"`: Alertmanager tells the business '
            "channel once and never pages or repeats (docs/alerting.md)."
        )
    elif spec.heartbeat:
        out.append(
            'It never escalates and carries `notify="heartbeat"`: Alertmanager sends it every '
            "`heartbeat.interval` of routing.yaml to the heartbeat receiver (the SMS bridge's "
            "/heartbeat, or an external dead-man's switch), never to people."
        )
    elif spec.standing:
        out.append("It describes a standing state, not an incident: it never escalates.")
    for severity, delays in built.tier_delays.items():
        if len(delays) == 1 and not spec.standing:
            out.append(f"`{severity}` does not escalate (`escalation.top_tier`).")
        elif len(delays) > 1:
            later = [
                f'{duration_text(float(d))} longer `escalation="{i}"`'
                for i, d in enumerate(delays[1:], start=2)
            ]
            out.append(
                f'`{severity}`: the condition held fires `escalation="1"`; held '
                + ", ".join(later)
                + ". Alertmanager sends each tier to a wider audience."
            )
    if built.alert.keep_firing_for:
        out.append(
            f"Once firing, it keeps firing {duration_text(built.alert.keep_firing_for)} after "
            "its condition stops holding (`keep_firing_for`), so a value hovering at the "
            "threshold notifies once."
        )
    return [" ".join(out)]


def _recording_rules_read(built: BuiltAlert, ruleset: RuleSet) -> list[str]:
    """The recording rules the conditions read, expanded, so the page stands on its own."""
    recorded = {r.record: r.expr for r in (*ruleset.time_rules, *ruleset.rate_rules)}
    wanted: list[str] = []
    pending = [name for rule in built.rules for name in metric_names(rule.expr)]
    while pending:
        name = pending.pop(0)
        if name in recorded and name not in wanted and name != "boxoffice:timezone_offset_seconds":
            wanted.append(name)
            pending += metric_names(recorded[name])
    if not wanted:
        return []
    lines = ["The recording rules these read:", "", "```promql"]
    lines += [f"{name} = {recorded[name]}" for name in wanted]
    return [*lines, "```", ""]
