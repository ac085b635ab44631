"""Failure classes (issue 15): which failures are the buyer's, a fraud block, or ours.

``thresholds.yaml`` maps failure codes to classes: ``payment_failure_classes`` for the
``failure_code`` of ``boxoffice_payments_failed_total`` (the database pack), and
``sms_failure_classes`` for the Twilio ``error_code`` of ``boxoffice_sms_messages_failed_total``.
A code listed nowhere is ``system``: an unknown failure pages rather than hides. The
generated recording rules add the class as a ``failure_class`` label (``label_replace`` over
regex-matched code sets); the Stripe source publishes the label itself, from Stripe's
``outcome`` (``exporter/sources/stripe_outcome.py``).

Defaults: Stripe's documented decline codes (docs.stripe.com/declines/codes) and Twilio's
error dictionary (30003-30007, 21211, 21610-21614 concern the recipient's number or
carrier; 30001, 30002, 30008, 20003, … are the provider or our account).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from exporter.config.typed import field, join
from exporter.generate.threshold_values import ErrorAt

SYSTEM = "system"
PAYMENT_CLASSES = ("customer_decline", "fraud_block", SYSTEM)
SMS_CLASSES = ("recipient", SYSTEM)
DECLINE_CLASSES = ("customer_decline", "fraud_block")

# Recording rules: the failed counters with their class (SLO selectors may name them).
PAYMENTS_CLASSIFIED = "boxoffice:payments_failed:classified_total"
SMS_CLASSIFIED = "boxoffice:sms_messages_failed:classified_total"
CLASSIFIED = (PAYMENTS_CLASSIFIED, SMS_CLASSIFIED)

_CODE = re.compile(r"[A-Za-z0-9_]+")

CUSTOMER_DECLINE_CODES = (
    "approve_with_id",
    "authentication_required",
    "call_issuer",
    "card_declined",
    "card_not_supported",
    "card_velocity_exceeded",
    "currency_not_supported",
    "do_not_honor",
    "do_not_try_again",
    "duplicate_transaction",
    "expired_card",
    "generic_decline",
    "incorrect_cvc",
    "incorrect_number",
    "incorrect_pin",
    "incorrect_zip",
    "insufficient_funds",
    "invalid_account",
    "invalid_amount",
    "invalid_cvc",
    "invalid_expiry_month",
    "invalid_expiry_year",
    "invalid_number",
    "invalid_pin",
    "new_account_information_available",
    "no_action_taken",
    "not_permitted",
    "offline_pin_required",
    "online_or_offline_pin_required",
    "pin_try_exceeded",
    "revocation_of_all_authorizations",
    "revocation_of_authorization",
    "service_not_allowed",
    "stop_payment_order",
    "testmode_decline",
    "transaction_not_allowed",
    "withdrawal_count_limit_exceeded",
)
FRAUD_BLOCK_CODES = (
    "fraudulent",
    "lost_card",
    "merchant_blacklist",
    "pickup_card",
    "restricted_card",
    "security_violation",
    "stolen_card",
)
RECIPIENT_SMS_CODES = (
    "21211",
    "21610",
    "21612",
    "21614",
    "30003",
    "30004",
    "30005",
    "30006",
    "30007",
)


@dataclass(frozen=True)
class PaymentFailureClasses:
    customer_decline: list[str] = field(
        default_factory=lambda: list(CUSTOMER_DECLINE_CODES),
        doc="failure_code values that are the buyer's bank saying no (insufficient funds, …).",
    )
    fraud_block: list[str] = field(
        default_factory=lambda: list(FRAUD_BLOCK_CODES),
        doc="failure_code values that are a fraud block (stolen card, …). Others: system.",
    )

    def classes(self) -> dict[str, list[str]]:
        return {"customer_decline": self.customer_decline, "fraud_block": self.fraud_block}


@dataclass(frozen=True)
class SmsFailureClasses:
    recipient: list[str] = field(
        default_factory=lambda: list(RECIPIENT_SMS_CODES),
        doc="Twilio error_code values that are the recipient's number or carrier. Others: system.",
    )

    def classes(self) -> dict[str, list[str]]:
        return {"recipient": self.recipient}


def check_classes(path: str, classes: dict[str, list[str]], error: ErrorAt) -> None:
    """Each code a plain code (it goes into a regex) and in one class only."""
    seen: dict[str, str] = {}
    for name, codes in classes.items():
        for i, code in enumerate(codes):
            where = join(join(path, name), i)
            if not isinstance(code, str) or not _CODE.fullmatch(code):
                raise error(where, f"must be a failure code (letters, digits, _), got {code!r}")
            if code in seen:
                raise error(where, f"{code!r} is already listed under {seen[code]}")
            seen[code] = name


def classify(expr: str, code_label: str, classes: dict[str, list[str]]) -> str:
    """``expr`` with a ``failure_class`` label: the class listing its code, else system."""
    out = f'label_replace({expr}, "failure_class", "{SYSTEM}", "", "")'
    for name, codes in classes.items():
        if codes:
            pattern = "|".join(sorted(codes))
            target = f'"failure_class", "{name}", "{code_label}", "{pattern}"'
            out = f"label_replace(\n  {out},\n  {target}\n)"
    return out
