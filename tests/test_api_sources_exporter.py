"""The running exporter with the Stripe, Twilio and HTTP sources pointed at local fake APIs.

Configured the way a user would (environment variables, secrets in files), scraped through
/metrics like Prometheus would: every metric of SPEC 4.2 with its exact value, one source's
faults leaving the others and /metrics alone, and no key or token anywhere.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from exporter.config import Config, load_config
from exporter.logs import RedactingFormatter
from tests.support.exporter import running_exporter, scrape, scrape_until, value
from tests.support.fake_health import FakeHealth
from tests.support.fake_stripe import API_KEY, FakeStripe
from tests.support.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, error_reply
from tests.support.fake_twilio import rate_limit_reply as twilio_rate_limit
from tests.support.fakehttp import MALFORMED, Hang, Reply, serving

HEALTH_TOKEN = "hc_9f8e7d6c5b4a39281706f5e4d3c2b1a0"


@dataclass
class Fakes:
    stripe: FakeStripe
    twilio: FakeTwilio
    health: FakeHealth


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    with (
        serving(FakeStripe()) as stripe,
        serving(FakeTwilio()) as twilio,
        serving(FakeHealth()) as health,
    ):
        yield Fakes(stripe, twilio, health)  # type: ignore[arg-type]


def _config(fakes: Fakes, tmp_path: Path, **env: str) -> Config:
    (tmp_path / "stripe_key").write_text(API_KEY + "\n")
    (tmp_path / "twilio_token").write_text(AUTH_TOKEN + "\n")
    (tmp_path / "health_token").write_text(f"Bearer {HEALTH_TOKEN}\n")
    fakes.health.required_headers = {"Authorization": f"Bearer {HEALTH_TOKEN}"}
    targets = (
        f"[{{name: app, url: '{fakes.health.url}/health', timeout: 1s, "
        f"header_files: {{Authorization: '{tmp_path / 'health_token'}'}}}}]"
    )
    base = {
        "BOXOFFICE_SOURCES_POSTGRES_ENABLED": "false",
        "BOXOFFICE_SOURCES_STRIPE_ENABLED": "true",
        "BOXOFFICE_SOURCES_STRIPE_API_KEY_FILE": str(tmp_path / "stripe_key"),
        "BOXOFFICE_SOURCES_STRIPE_API_BASE": fakes.stripe.url,
        "BOXOFFICE_SOURCES_STRIPE_INTERVAL": "300ms",
        "BOXOFFICE_SOURCES_STRIPE_TIMEOUT": "1s",
        "BOXOFFICE_SOURCES_TWILIO_ENABLED": "true",
        "BOXOFFICE_SOURCES_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "BOXOFFICE_SOURCES_TWILIO_AUTH_TOKEN_FILE": str(tmp_path / "twilio_token"),
        "BOXOFFICE_SOURCES_TWILIO_API_BASE": fakes.twilio.url,
        "BOXOFFICE_SOURCES_TWILIO_INTERVAL": "300ms",
        "BOXOFFICE_SOURCES_TWILIO_TIMEOUT": "1s",
        "BOXOFFICE_SOURCES_HTTP_INTERVAL": "300ms",
        "BOXOFFICE_SOURCES_HTTP_TARGETS": targets,
    }
    return load_config(None, env={**base, **env})


def _seed(fakes: Fakes) -> None:
    now = int(time.time())
    stripe = fakes.stripe
    for i in range(7):
        stripe.add_charge(now - 60 + i)
    stripe.add_charge(now - 30, status="failed", failure_code="card_declined")
    stripe.add_charge(now - 29, status="failed", failure_code="card_declined")
    stripe.add_charge(now - 28, status="failed", failure_code="expired_card")
    stripe.add_charge(now - 27, status="pending")  # not final: not counted
    stripe.add("refund", now - 20, status="succeeded")
    stripe.add("refund", now - 19, status="failed")  # a failed refund is no refund
    stripe.add("dispute", now - 86400, status="needs_response")
    stripe.add("dispute", now - 50, status="won")
    stripe.add("event", now - 10, pending_webhooks=3)
    stripe.add("event", now - 9, pending_webhooks=1)
    stripe.add("event", now - 8, pending_webhooks=0)
    stripe.add("webhook_endpoint", now - 9000, status="enabled")
    stripe.add("webhook_endpoint", now - 8000, status="enabled")
    stripe.add("webhook_endpoint", now - 7000, status="disabled")
    twilio = fakes.twilio
    for i in range(4):
        twilio.send(now - 100 + i, status="delivered", price="-0.00790")
    twilio.send(now - 50, status="undelivered", error_code=30003, price="-0.00790")
    twilio.send(now - 49, status="failed", error_code=30008, price="-0.00790")
    twilio.send(now - 48, status="sent")  # in flight: not counted yet
    twilio.send(now - 47, status="received", direction="inbound")
    fakes.health.set_service("stripe", "unhealthy")


EXPECTED = [
    ("boxoffice_stripe_charges_total", {}, 10),
    (
        "boxoffice_stripe_charges_failed_total",
        {"failure_code": "card_declined", "failure_class": "customer_decline"},
        2,
    ),
    (
        "boxoffice_stripe_charges_failed_total",
        {"failure_code": "expired_card", "failure_class": "customer_decline"},
        1,
    ),
    ("boxoffice_stripe_refunds_total", {}, 1),
    ("boxoffice_stripe_disputes_total", {}, 2),
    ("boxoffice_stripe_disputes_open", {}, 1),
    ("boxoffice_stripe_balance", {"currency": "usd", "state": "available"}, 1250.5),
    ("boxoffice_stripe_balance", {"currency": "usd", "state": "pending"}, 99),
    ("boxoffice_stripe_balance", {"currency": "jpy", "state": "pending"}, 5000),
    ("boxoffice_stripe_events_pending_webhooks", {}, 2),
    ("boxoffice_stripe_webhook_endpoints", {"status": "enabled"}, 2),
    ("boxoffice_stripe_webhook_endpoints", {"status": "disabled"}, 1),
    ("boxoffice_sms_messages_total", {}, 6),
    ("boxoffice_sms_messages_failed_total", {"error_code": "30003"}, 1),
    ("boxoffice_sms_messages_failed_total", {"error_code": "30008"}, 1),
    ("boxoffice_sms_cost_total", {"currency": "usd"}, 0.0474),
    ("boxoffice_twilio_balance", {"currency": "usd"}, 47.25),
    ("boxoffice_probe_success", {"target": "app"}, 1),
    ("boxoffice_probe_status_code", {"target": "app"}, 200),
    ("boxoffice_app_component_up", {"target": "app", "component": "database"}, 1),
    ("boxoffice_app_component_up", {"target": "app", "component": "stripe"}, 0),
]


def _all_up(series: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> bool:
    return all(
        value(series, "boxoffice_source_up", source=s) == 1 for s in ("stripe", "twilio", "http")
    )


def test_every_stripe_twilio_and_http_metric_is_served_with_its_exact_value(
    fakes: Fakes, tmp_path: Path
) -> None:
    _seed(fakes)
    with running_exporter(_config(fakes, tmp_path)) as (_exporter, url):
        series = scrape_until(url, _all_up, timeout=10)
        for _ in range(3):  # values hold across cycles: nothing counted twice
            for name, labels, expected in EXPECTED:
                got = value(series, name, **labels)
                assert got == pytest.approx(expected), (name, labels, got)
            duration = value(series, "boxoffice_probe_duration_seconds", target="app")
            assert duration is not None
            assert 0 < duration < 1
            time.sleep(0.35)
            series = scrape(url)


FAULTS = [
    # source, fault injected into its API, reason counted, a business series it withdraws
    ("stripe", [Hang(3)] * 4, "timeout", "boxoffice_stripe_charges_total"),
    ("stripe", [MALFORMED] * 2, "decode", "boxoffice_stripe_charges_total"),
    (
        "twilio",
        [twilio_rate_limit(retry_after=1)] * 2,
        "rate_limited",
        "boxoffice_sms_messages_total",
    ),
    (
        "twilio",
        [error_reply(500, 20500, "Internal Server Error")] * 3,
        "http",
        "boxoffice_sms_messages_total",
    ),
]


@pytest.mark.parametrize(
    ("source", "faults", "reason", "business"),
    FAULTS,
    ids=["stripe-hang", "stripe-malformed-json", "twilio-429-storm", "twilio-500-burst"],
)
def test_a_failing_api_leaves_the_other_sources_and_metrics_alone_then_recovers(
    fakes: Fakes,
    tmp_path: Path,
    source: str,
    faults: list[Reply | Hang],
    reason: str,
    business: str,
) -> None:
    _seed(fakes)
    expected = {"boxoffice_stripe_charges_total": 10, "boxoffice_sms_messages_total": 6}
    others = [s for s in ("stripe", "twilio", "http") if s != source]
    with running_exporter(_config(fakes, tmp_path)) as (_exporter, url):
        scrape_until(url, _all_up, timeout=10)
        fake = fakes.stripe if source == "stripe" else fakes.twilio
        fake.fail_next(*faults)
        series = scrape_until(
            url, lambda s: value(s, "boxoffice_source_up", source=source) == 0, timeout=10
        )
        assert value(series, "boxoffice_source_errors_total", source=source, reason=reason)
        assert value(series, business) is None, "a failed source withdraws its business series"
        for other in others:
            assert value(series, "boxoffice_source_up", source=other) == 1
        assert value(series, "boxoffice_probe_success", target="app") == 1
        started = time.monotonic()
        scrape(url)
        assert time.monotonic() - started < 0.5, "/metrics never waits on a source"
        series = scrape_until(
            url, lambda s: value(s, "boxoffice_source_up", source=source) == 1, timeout=15
        )
        assert value(series, business) == expected[business], "recovered without double counting"


def test_keys_and_tokens_never_reach_logs_or_metrics(fakes: Fakes, tmp_path: Path) -> None:
    _seed(fakes)
    config = _config(fakes, tmp_path)
    secrets = [API_KEY, AUTH_TOKEN, HEALTH_TOKEN]
    assert set(secrets) <= {s.removeprefix("Bearer ") for s in config.secrets} | set(config.secrets)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter("logfmt", config.secrets))
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    keep = Keep()
    old_level = root.level
    root.addHandler(handler)
    root.addHandler(keep)
    root.setLevel(logging.DEBUG)
    try:
        with running_exporter(config) as (_exporter, url):
            scrape_until(url, _all_up, timeout=10)
            # Errors on every path: a wrong key answer, a 429, a 500 and a refused health token.
            fakes.stripe.api_key = "rk_test_rotated"
            fakes.twilio.auth_token = "0" * 32
            fakes.health.required_headers = {"Authorization": "Bearer another"}
            series = scrape_until(
                url,
                lambda s: (
                    value(s, "boxoffice_source_errors_total", source="stripe", reason="auth")
                    and value(s, "boxoffice_source_errors_total", source="twilio", reason="auth")
                    and value(s, "boxoffice_probe_success", target="app") == 0
                ),
                timeout=10,
            )
            body = requests.get(f"{url}/metrics", timeout=5).text
            landing = requests.get(f"{url}/", timeout=5).text
    finally:
        root.removeHandler(handler)
        root.removeHandler(keep)
        root.setLevel(old_level)
    assert value(series, "boxoffice_source_up", source="stripe") == 0
    logged = stream.getvalue()
    raw = "\n".join(
        r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "")
        for r in records
    )
    assert "source stripe: auth" in logged
    for secret in secrets:
        for where, text in (("log", logged), ("raw log", raw), ("/metrics", body), ("/", landing)):
            assert secret not in text, f"a secret reached the {where}"
