"""Which kind of failure a failed Stripe charge is, from Stripe's own verdict (pure).

A failed charge is one of three bounded classes, the value of the ``failure_class`` label of
``boxoffice_stripe_charges_failed_total``:

* ``customer_decline``: the buyer's bank said no (``outcome.type`` ``issuer_declined``,
  ``outcome.network_status`` ``declined_by_network``): insufficient funds, expired card, a
  mistyped CVC. Customer behaviour, 3-10% of attempts at a healthy shop.
* ``fraud_block``: Stripe Radar blocked the payment (``outcome.type`` ``blocked``, or
  ``network_status`` ``reversed_after_approval``: blocked after the bank approved), or the
  issuer declined it as fraud (``fraudulent``, ``lost_card``, ``stolen_card``, ``pickup_card``
  …).
* ``system``: everything else: Stripe or the processor could not process it
  (``processing_error``, ``issuer_not_available``, ``try_again_later``), an ``invalid``
  request our app made, or a failure Stripe gives no verdict for. This is the class
  availability alerts and the payments SLO judge.

Stripe documents ``outcome.type`` as ``authorized``, ``manual_review``, ``issuer_declined``,
``blocked`` or ``invalid``; the first two do not fail a charge.
"""

from __future__ import annotations

CUSTOMER_DECLINE = "customer_decline"
FRAUD_BLOCK = "fraud_block"
SYSTEM = "system"
FAILURE_CLASSES = (CUSTOMER_DECLINE, FRAUD_BLOCK, SYSTEM)

# Issuer decline codes that mean "suspected fraud" (Stripe's decline code table).
FRAUD_CODES = frozenset(
    {
        "fraudulent",
        "lost_card",
        "stolen_card",
        "pickup_card",
        "merchant_blacklist",
        "restricted_card",
        "security_violation",
    }
)
# Card details the buyer typed wrong: Stripe may refuse them before the network (``invalid``).
ENTRY_CODES = frozenset(
    {
        "incorrect_number",
        "invalid_number",
        "incorrect_cvc",
        "invalid_cvc",
        "invalid_expiry_month",
        "invalid_expiry_year",
        "expired_card",
        "incorrect_zip",
    }
)
# Codes that say the processor or issuer was unreachable or failed, whatever the outcome.
SYSTEM_CODES = frozenset(
    {"processing_error", "issuer_not_available", "try_again_later", "reenter_transaction"}
)


def failure_class(
    *,
    outcome_type: str | None,
    network_status: str | None,
    failure_code: str | None,
    reason: str | None = None,
) -> str:
    """The class of one failed charge (one of :data:`FAILURE_CLASSES`)."""
    if outcome_type == "blocked" or network_status == "reversed_after_approval":
        return FRAUD_BLOCK
    if failure_code in SYSTEM_CODES:
        return SYSTEM
    if failure_code in FRAUD_CODES or reason in FRAUD_CODES:
        return FRAUD_BLOCK
    if outcome_type == "issuer_declined" or network_status == "declined_by_network":
        return CUSTOMER_DECLINE
    if failure_code in ENTRY_CODES:
        return CUSTOMER_DECLINE
    return SYSTEM  # invalid, not_sent_to_network without a block, or no verdict at all
