"""Named series of failure classes (issue 15): system failures, declines and their baseline.

Payment availability (PaymentSuccessRateLow, PaymentFailuresBurst, the payments SLO) reads
``system`` failures only; DeclineRateAnomalous reads declines (``customer_decline`` and
``fraud_block``) against the shop's own decline rate; SMS delivery reads ``system``
failures only. The database pack's and Twilio's codes are classed by the map in
thresholds.yaml (``failure_classes.py``); Stripe's charges carry the class already.
"""

from __future__ import annotations

from exporter.generate.failure_classes import (
    DECLINE_CLASSES,
    PAYMENTS_CLASSIFIED,
    SMS_CLASSIFIED,
    SYSTEM,
    classify,
)
from exporter.generate.promql import duration_text
from exporter.generate.series import (
    CHARGES,
    CHARGES_FAILED,
    PAYMENTS,
    PAYMENTS_FAILED,
    SMS,
    SMS_FAILED,
    NamedSeries,
    increase,
)
from exporter.generate.thresholds import Thresholds

SOURCES = ("postgres", "stripe")
_TOTAL = {"postgres": PAYMENTS, "stripe": CHARGES}
_SHORT = {"postgres": "payments_failed", "stripe": "stripe_charges_failed"}
# The baseline skips the last hour, so an attack under way does not raise "normal".
BASELINE_GAP = 3600.0


def classified_payments(th: Thresholds) -> NamedSeries:
    """The database pack's failed payments with ``failure_class`` from the map."""
    classes = th.file.payment_failure_classes.classes()
    expr = classify(f"max by (failure_code) ({PAYMENTS_FAILED})", "failure_code", classes)
    return NamedSeries(name=PAYMENTS_CLASSIFIED, pieces=(expr,))


def classified_sms(th: Thresholds) -> NamedSeries:
    """Failed SMS with ``failure_class`` (recipient or system) from the map."""
    classes = th.file.sms_failure_classes.classes()
    expr = classify(f"max by (error_code) ({SMS_FAILED})", "error_code", classes)
    return NamedSeries(name=SMS_CLASSIFIED, pieces=(expr,))


def classified_named(name: str, th: Thresholds) -> NamedSeries:
    """The classified counter recorded under ``name`` (an SLO selector may read it)."""
    return classified_payments(th) if name == PAYMENTS_CLASSIFIED else classified_sms(th)


def _matcher(classes: tuple[str, ...]) -> str:
    if len(classes) == 1:
        return f'{{failure_class="{classes[0]}"}}'
    return f'{{failure_class=~"{"|".join(classes)}"}}'


def _failures(
    source: str, classes: tuple[str, ...], range_: str, th: Thresholds
) -> tuple[str | NamedSeries, ...]:
    """Pieces of ``sum(increase(<failed of classes><range_>))``, 0 when there are none."""
    if source == "postgres":
        inner: tuple[str | NamedSeries, ...] = (
            "increase(",
            classified_payments(th),
            f"{_matcher(classes)}{range_})",
        )
    else:
        inner = (
            "max by (failure_code, failure_class) "
            f"(increase({CHARGES_FAILED}{_matcher(classes)}{range_}))",
        )
    return ("(sum(", *inner, ") or vector(0))")


def failed(source: str, window: float, th: Thresholds, *, tag: str = SYSTEM) -> NamedSeries:
    """System failures (or declines, ``tag="declined"``) of one source over ``window``."""
    classes = (SYSTEM,) if tag == SYSTEM else DECLINE_CLASSES
    w = duration_text(window)
    return NamedSeries(
        name=f"boxoffice:{_SHORT[source]}_{tag}:increase{w}",
        pieces=_failures(source, classes, f"[{w}]", th),
    )


def failure_ratio(source: str, window: float, th: Thresholds, *, tag: str = SYSTEM) -> NamedSeries:
    """System failures (or declines) / all payments of one source over ``window``."""
    return NamedSeries(
        name=f"boxoffice:{_SHORT[source]}_{tag}:ratio_increase{duration_text(window)}",
        pieces=(failed(source, window, th, tag=tag), " / ", increase(_TOTAL[source], window)),
    )


def _by_source(parts: dict[str, NamedSeries]) -> tuple[str | NamedSeries, ...]:
    pieces: list[str | NamedSeries] = []
    for source, part in parts.items():
        if pieces:
            pieces.append("\nor ")
        pieces += ["label_replace(", part, f', "source", "{source}", "", "")']
    return tuple(pieces)


def decline_ratio(window: float, th: Thresholds) -> NamedSeries:
    """Declined / all payment attempts over ``window``, by ``source``."""
    parts = {s: failure_ratio(s, window, th, tag="declined") for s in SOURCES}
    return NamedSeries(
        name=f"boxoffice:payment_declines:ratio_increase{duration_text(window)}",
        pieces=_by_source(parts),
    )


def attempts(window: float) -> NamedSeries:
    """Payment attempts over ``window``, by ``source``."""
    parts = {s: increase(_TOTAL[s], window) for s in SOURCES}
    return NamedSeries(
        name=f"boxoffice:payment_attempts:increase{duration_text(window)}", pieces=_by_source(parts)
    )


def decline_baseline_name(baseline: float) -> str:
    return f"boxoffice:payment_declines:ratio_baseline{duration_text(baseline)}"


def decline_baseline(baseline: float, th: Thresholds) -> NamedSeries:
    """The shop's normal decline rate: declines / attempts over ``baseline``, ending an hour
    ago; absent until the source has ``baseline`` plus an hour of history."""
    b, gap = duration_text(baseline), duration_text(BASELINE_GAP)
    history = duration_text(baseline + BASELINE_GAP)
    pieces: list[str | NamedSeries] = []
    for source in SOURCES:
        total = _TOTAL[source]
        if pieces:
            pieces.append("\nor ")
        pieces += [
            "label_replace(\n  ",
            *_failures(source, DECLINE_CLASSES, f"[{b}] offset {gap}", th),
            f"\n  / max(increase({total}[{b}] offset {gap}))\n"
            f"  and on() max({total} offset {history}),\n"
            f'  "source", "{source}", "", ""\n)',
        ]
    return NamedSeries(name=decline_baseline_name(baseline), pieces=tuple(pieces))


def sms_failed(window: float, th: Thresholds) -> NamedSeries:
    """SMS that failed for a system reason (ours: provider or account) over ``window``."""
    w = duration_text(window)
    return NamedSeries(
        name=f"boxoffice:sms_messages_failed_system:increase{w}",
        pieces=(
            "(sum(increase(",
            classified_sms(th),
            f"{_matcher((SYSTEM,))}[{w}])) or vector(0))",
        ),
    )


def sms_failure_ratio(window: float, th: Thresholds) -> NamedSeries:
    """System-failed / all final SMS over ``window``."""
    return NamedSeries(
        name=f"boxoffice:sms_messages_failed_system:ratio_increase{duration_text(window)}",
        pieces=(sms_failed(window, th), " / ", increase(SMS, window)),
    )
