"""Failure classes of failed Stripe charges: Stripe's outcome and failure code (a table)."""

from __future__ import annotations

import pytest

from exporter.sources.stripe_outcome import failure_class


@pytest.mark.parametrize(
    ("outcome_type", "network_status", "failure_code", "reason", "expected"),
    [
        (
            "issuer_declined",
            "declined_by_network",
            "card_declined",
            "generic_decline",
            "customer_decline",
        ),
        ("issuer_declined", "declined_by_network", "insufficient_funds", None, "customer_decline"),
        (
            "issuer_declined",
            "declined_by_network",
            "expired_card",
            "expired_card",
            "customer_decline",
        ),
        ("issuer_declined", "declined_by_network", "card_declined", "fraudulent", "fraud_block"),
        ("issuer_declined", "declined_by_network", "stolen_card", None, "fraud_block"),
        ("blocked", "not_sent_to_network", "card_declined", "highest_risk_level", "fraud_block"),
        ("blocked", "not_sent_to_network", "card_declined", "rule", "fraud_block"),
        ("authorized", "reversed_after_approval", "card_declined", None, "fraud_block"),
        ("issuer_declined", "declined_by_network", "processing_error", None, "system"),
        (None, None, "processing_error", None, "system"),
        ("issuer_declined", "declined_by_network", "issuer_not_available", None, "system"),
        ("invalid", "not_sent_to_network", "card_declined", None, "system"),
        ("invalid", "not_sent_to_network", "incorrect_number", None, "customer_decline"),
        (None, None, None, None, "system"),
    ],
)
def test_failure_class(
    outcome_type: str | None,
    network_status: str | None,
    failure_code: str | None,
    reason: str | None,
    expected: str,
) -> None:
    got = failure_class(
        outcome_type=outcome_type,
        network_status=network_status,
        failure_code=failure_code,
        reason=reason,
    )
    assert got == expected
