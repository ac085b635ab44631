"""thresholds.yaml validation: every malformed file gets one exact line, exit 2, no output."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from exporter.cli import main

BASE = (
    "timezone: America/New_York\n"
    "links: {runbook_base_url: 'https://x/rb', dashboard_base_url: 'https://x/d'}\n"
)
NO_LINKS = "timezone: America/New_York\n"

# (thresholds.yaml text, expected line after "boxoffice: rules/thresholds.yaml: ")
MALFORMED: list[tuple[str, str]] = [
    ("timezone: [\n", "line 2: invalid YAML: expected the node content, but found '<stream end>'"),
    ("- a\n", "must be a mapping at the top level"),
    (NO_LINKS, "links: is required"),
    (
        BASE.replace("America/New_York", "Mars/Olympus"),
        "timezone: unknown IANA time zone 'Mars/Olympus'",
    ),
    (
        BASE + "alert: {}\n",
        "alert: unknown key (known keys: alerts, app_metrics, baseline, business_hours, digest, escalation, exporter_job, forecast, latency, links, payment_failure_classes, scope, slos, sms_failure_classes, ticker, timezone, timezone_table)",
    ),
    (
        BASE + "digest: {morning: '8:00'}\n",
        "digest.morning: must be a local time of day like 08:00 (or null to skip the slot), "
        "got '8:00'",
    ),
    (
        BASE + "digest: {morning: '21:00'}\n",
        "digest.evening: must differ from digest.morning (21:00)",
    ),
    (
        BASE + "digest: {evening: '23:55'}\n",
        "digest.evening: 23:55 plus active_for runs past midnight: choose an earlier slot",
    ),
    (BASE + "digest: {active_for: 2h}\n", "digest.active_for: must be between 1m and 1h"),
    (BASE + "ticker: {top_cities: 0}\n", "ticker.top_cities: must be between 1 and 10, got 0"),
    (
        BASE + "alerts:\n  InventoryLo: {}\n",
        "alerts.InventoryLo: unknown alert (did you mean InventoryLow?)",
    ),
    (
        BASE + "alerts:\n  InventoryLow:\n    thresholds: {vip: -1}\n",
        "alerts.InventoryLow.thresholds.vip: must be >= 0, got -1",
    ),
    (
        BASE + "alerts:\n  InventoryLow:\n    thresholds: {GA: 10}\n",
        "alerts.InventoryLow.thresholds.GA: ticket tier names are lowercase letters, digits and _",
    ),
    (
        BASE + "alerts:\n  InventoryLow:\n    thresholds: {ga: ten}\n",
        "alerts.InventoryLow.thresholds.ga: must be a number, got 'ten'",
    ),
    (
        BASE + "alerts:\n  InventoryLow:\n    treshold: {ga: 1}\n",
        "alerts.InventoryLow.treshold: unknown key (known keys: baseline, enabled, for, keep_firing_for, labels, min_ratio, min_traffic, relative, severity, thresholds, window)",
    ),
    (
        BASE + "alerts:\n  InventoryLow:\n    severity: urgent\n",
        "alerts.InventoryLow.severity: must be one of critical, high, medium, low, got 'urgent'",
    ),
    (
        BASE + "alerts:\n  InventoryLow:\n    for: soon\n",
        "alerts.InventoryLow.for: not a duration like 30s, 5m or 1h30m: 'soon'",
    ),
    (
        BASE + "alerts:\n  InventoryLow:\n    window: 5m\n",
        "alerts.InventoryLow.window: InventoryLow has no window to set",
    ),
    (
        BASE + "alerts:\n  InventoryLow:\n    labels: {severity: page}\n",
        "alerts.InventoryLow.labels.severity: is not a label name this alert may set",
    ),
    (
        BASE + "alerts:\n  InventoryLow:\n    enabled: 'no'\n",
        "alerts.InventoryLow.enabled: must be true or false, got 'no'",
    ),
    (
        BASE + "alerts:\n  InventorySoldOut:\n    thresholds: {ga: 0}\n",
        "alerts.InventorySoldOut.thresholds: InventorySoldOut takes no thresholds (see its condition)",
    ),
    (
        BASE + "alerts:\n  PaymentSuccessRateLow:\n    thresholds: {critical: 95}\n",
        "alerts.PaymentSuccessRateLow.thresholds.critical: must be a ratio between 0 and 1 (0.05 is 5%), got 95",
    ),
    (
        BASE + "alerts:\n  PaymentSuccessRateLow:\n    min_traffic: -5\n",
        "alerts.PaymentSuccessRateLow.min_traffic: must be >= 0, got -5",
    ),
    (
        BASE + "alerts:\n  PaymentFailuresBurst:\n    thresholds: {critical: 3, high: 10}\n",
        "alerts.PaymentFailuresBurst.thresholds.high: must be below critical (3)",
    ),
    (
        BASE + "alerts:\n  PaymentFailuresBurst:\n    thresholds: {hgih: 3}\n",
        "alerts.PaymentFailuresBurst.thresholds.hgih: unknown key (known keys: critical, high)",
    ),
    (
        BASE + "alerts:\n  PaymentFailuresBurst:\n    severity: high\n",
        "alerts.PaymentFailuresBurst.severity: cannot be set for PaymentFailuresBurst: thresholds are keyed by severity",
    ),
    (
        BASE + "alerts:\n  PaymentFailuresBurst:\n    min_traffic: 5\n",
        "alerts.PaymentFailuresBurst.min_traffic: PaymentFailuresBurst has no minimum-traffic guard",
    ),
    (
        BASE + "alerts:\n  CheckoutConversionLow:\n    thresholds: {critical: 0.9, high: 0.85}\n",
        "alerts.CheckoutConversionLow.thresholds.high: must be above critical (0.9)",
    ),
    (
        BASE + "alerts:\n  ExporterDataStale:\n    thresholds: {high: soon}\n",
        "alerts.ExporterDataStale.thresholds.high: not a duration like 30s, 5m or 1h30m: 'soon'",
    ),
    (
        BASE + "alerts:\n  ExporterDataStale:\n    thresholds: {high: 2}\n",
        "alerts.ExporterDataStale.thresholds.high: must be a duration like 2h, got 2",
    ),
    (
        BASE + "alerts:\n  NoRecentSales:\n    thresholds: {high: 2h}\n",
        "alerts.NoRecentSales.thresholds.high: must be a number, got '2h'",
    ),
    (
        BASE + "baseline: {weeks: 3, min_weeks: 4}\n",
        "baseline.min_weeks: must be at most weeks (3)",
    ),
    (
        BASE + "business_hours: {start: 9am}\n",
        "business_hours.start: must be a time of day like 09:00, got '9am'",
    ),
    (
        BASE + "business_hours: {start: '09:00', end: '09:00'}\n",
        "business_hours.end: must differ from business_hours.start",
    ),
    (
        BASE + "business_hours: {days: [mon, funday]}\n",
        "business_hours.days[1]: must be one of mon, tue, wed, thu, fri, sat, sun, got 'funday'",
    ),
    (
        BASE + "business_hours: {days: [mon, mon]}\n",
        "business_hours.days: must list at least one day, each once",
    ),
    (
        BASE + "timezone_table: {first_year: 2040, last_year: 2030}\n",
        "timezone_table: years must satisfy 1970 <= first_year <= last_year <= 2200",
    ),
    (BASE + "escalation: {tier2_after: 0s}\n", "escalation.tier2_after: must be > 0, got 0"),
    (
        BASE + "exporter_job: '('\n",
        "exporter_job: is not a regular expression: missing ), unterminated subpattern at position 0",
    ),
    (
        BASE + "forecast: {method: daily_target}\n",
        "forecast.daily_target: is required with method daily_target",
    ),
    (
        BASE + "forecast: {method: weekly}\n",
        "forecast.method: must be one of seasonal, same_time_last_week, daily_target, got 'weekly'",
    ),
    (
        BASE + "slos:\n  web: {objective: 100, total: x, errors: y}\n",
        "slos.web.objective: must be a percentage between 0 and 100, got 100",
    ),
    (
        BASE + "slos:\n  web: {objective: 99.9, total: 'sum(x)', errors: y}\n",
        "slos.web.total: must be one metric selector like name{label=\"value\"}, got 'sum(x)'",
    ),
    (
        BASE
        + "app_metrics: [http_requests_total]\nslos:\n  web: {objective: 99.9, total: 'http_request_total{job=\"app\"}', errors: 'http_requests_total{code=~\"5..\"}'}\n",
        "slos.web.total: unknown metric 'http_request_total': not published by the exporter, not a recording rule generated here, not declared under app_metrics",
    ),
    (
        BASE
        + "latency:\n  histogram: http_request_duration_seconds\n  endpoints:\n    checkout: {route: /checkout, high: 5s, critical: 3s}\n",
        "latency.endpoints.checkout.critical: must be above high (5s)",
    ),
    (
        BASE
        + "latency:\n  histogram: http_request_duration_seconds\n  endpoints:\n    checkout: {route: /checkout, high: 3s, critical: 5s}\n",
        "latency.histogram: unknown metric 'http_request_duration_seconds_bucket': not published by the exporter, not a recording rule generated here, not declared under app_metrics",
    ),
    (
        BASE
        + "app_metrics: [http_requests_total]\nslos:\n  web: {objective: 99.9, total: http_requests_total, errors: 'http_requests_total{code=~\"[45]xx\"}'}\n",
        'slos.web.errors: cannot make test series for it (no label values found for {code=~"[45]xx"}); use = matchers or simpler regexes',
    ),
    (BASE + "app_metrics: ['not a name']\n", "app_metrics[0]: is not a metric name: 'not a name'"),
    (
        BASE + "exporter_job: 'a\"b'\n",
        "exporter_job: is not a regular expression: quotes and newlines cannot go into a PromQL string",
    ),
    (
        BASE + "slos:\n  web: {objective: 99.9, total: 'x{job=\"a\"}} or y', errors: y}\n",
        "slos.web.total: must not contain {{ or }} (Go template delimiters)",
    ),
    (
        BASE + "slos:\n  web: {objective: 99.9, total: 'x{job=\"a\"} }', errors: y}\n",
        'slos.web.total: must be one metric selector like name{label="value"}, got \'x{job="a"} }\'',
    ),
    (
        BASE + "slos:\n  web: {objective: 99.9, total: 'x{job=a}', errors: y}\n",
        "slos.web.total: must be one metric selector like name{label=\"value\"}, got 'x{job=a}'",
    ),
    # Failure classes (issue 15): one class per code, plain codes, only the known classes.
    (
        BASE
        + "payment_failure_classes: {customer_decline: [card_declined], fraud_block: [card_declined]}\n",
        "payment_failure_classes.fraud_block[0]: 'card_declined' is already listed under customer_decline",
    ),
    (
        BASE + "payment_failure_classes: {customer_decline: ['card|declined']}\n",
        "payment_failure_classes.customer_decline[0]: must be a failure code (letters, digits, _), got 'card|declined'",
    ),
    (
        BASE + "sms_failure_classes: {carrier: ['30003']}\n",
        "sms_failure_classes.carrier: unknown key (known keys: recipient)",
    ),
    (
        BASE + "alerts:\n  DeclineRateAnomalous: {min_ratio: 2}\n",
        "alerts.DeclineRateAnomalous.min_ratio: must be a ratio between 0 and 1, got 2",
    ),
    (
        BASE + "alerts:\n  PaymentSuccessRateLow: {baseline: 1d}\n",
        "alerts.PaymentSuccessRateLow.baseline: PaymentSuccessRateLow has no baseline window",
    ),
    # Scope labels (issue 20): label names of a shop, not of Prometheus, a metric or a rule.
    (
        BASE + "scope: {labels: [seller-id]}\n",
        "scope.labels[0]: is not a label name (letters, digits, _; no __ prefix): 'seller-id'",
    ),
    (
        BASE + "scope: {labels: [__name__]}\n",
        "scope.labels[0]: is not a label name (letters, digits, _; no __ prefix): '__name__'",
    ),
    (
        BASE + "scope: {labels: [seller, job]}\n",
        "scope.labels[1]: 'job' is reserved: Prometheus or the generated rules set it",
    ),
    (
        BASE + "scope: {labels: [instance]}\n",
        "scope.labels[0]: 'instance' is reserved: Prometheus or the generated rules set it",
    ),
    (
        BASE + "scope: {labels: [currency]}\n",
        "scope.labels[0]: 'currency' is a label of boxoffice metrics, not of a shop",
    ),
    (BASE + "scope: {labels: [seller, seller]}\n", "scope.labels[1]: 'seller' is listed twice"),
    (BASE + "scope: {labels: seller}\n", "scope.labels: must be a list, got str 'seller'"),
    (
        BASE + "scope: {labels: [seller]}\nalerts:\n  InventoryLow:\n    labels: {seller: acme}\n",
        "alerts.InventoryLow.labels.seller: is a scope label: it comes from the shop's series",
    ),
    (
        BASE
        + "scope: {labels: [seller]}\nforecast: {method: daily_target, daily_target: {usd: 1}}\n",
        "forecast.method: daily_target is one target for one shop: with scope labels use seasonal or same_time_last_week",
    ),
]


@pytest.mark.parametrize(("text", "expected"), MALFORMED)
def test_malformed_thresholds_exit_2_with_one_line_and_write_nothing(
    tmp_path: Path, text: str, expected: str
) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "thresholds.yaml").write_text(text)
    result = CliRunner().invoke(main, ["generate", "--root", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert result.output == f"boxoffice: rules/thresholds.yaml: {expected}\n"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "rules",
        "rules/thresholds.yaml",
    ]


def test_minimal_thresholds_file_generates(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "thresholds.yaml").write_text(BASE)
    result = CliRunner().invoke(main, ["generate", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rules" / "generated" / "payments.yml").is_file()
    # No latency table and no SLOs: those alerts are left out, not generated empty.
    assert not (tmp_path / "docs" / "runbooks" / "SLOErrorBudgetBurn.md").exists()
