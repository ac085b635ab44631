"""thresholds.yaml ``digest:`` and ``ticker:``: the owner's reports (issue 18).

The daily digest is an informational alert that fires for ``active_for`` from each slot's
local minute (the seller's ``timezone``, across daylight saving through the local-clock
recording rules); its text carries the day's figures. The ticker is an alert per minute
with new paid orders. Both are routed by routing.yaml's ``digest`` and ``ticker`` sections
to their own receivers, never to SMS or PagerDuty (docs/digest.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from exporter.config.typed import Duration, field
from exporter.generate.threshold_values import ErrorAt

_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


def _slot(value: str | None) -> str | None:
    if value is None or _CLOCK.fullmatch(value):
        return None
    return f"must be a local time of day like 08:00 (or null to skip the slot), got {value!r}"


def _top(value: int) -> str | None:
    return None if 1 <= value <= 10 else f"must be between 1 and 10, got {value!r}"


@dataclass(frozen=True, kw_only=True)
class Digest:
    """The morning and evening digest (seed 004): on by default."""

    enabled: bool = field(True, doc="Send the digest at all.")
    morning: str | None = field(
        "08:00", check=_slot, doc="Overnight sales and yesterday's totals (null: no slot)."
    )
    evening: str | None = field("21:00", check=_slot, doc="Today's totals (null: no slot).")
    active_for: Duration = field(
        Duration(600), doc="How long each digest alert stays active after its slot."
    )
    top_cities: int = field(3, check=_top, doc="Cities listed, by paid orders.")

    def slots(self) -> tuple[tuple[str, str], ...]:
        """(slot name, HH:MM) of the enabled slots, morning first."""
        if not self.enabled:
            return ()
        pairs = (("morning", self.morning), ("evening", self.evening))
        return tuple((name, at) for name, at in pairs if at is not None)


@dataclass(frozen=True, kw_only=True)
class Ticker:
    """A notification per minute with new paid orders (seed 004's sales channel): off by
    default."""

    enabled: bool = field(False, doc="Send the sales ticker.")
    top_cities: int = field(3, check=_top, doc="Cities listed, by new paid orders.")


def minute_of_day(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def check_reports(digest: Digest, error: ErrorAt) -> None:
    """Cross checks: distinct slots, a window between 1m and 1h that ends by midnight."""
    if not 60 <= digest.active_for <= 3600:
        raise error("digest.active_for", "must be between 1m and 1h")
    if digest.morning is not None and digest.morning == digest.evening:
        raise error("digest.evening", f"must differ from digest.morning ({digest.morning})")
    for name, at in digest.slots():
        if minute_of_day(at) * 60 + digest.active_for > 86400:
            raise error(
                f"digest.{name}",
                f"{at} plus active_for runs past midnight: choose an earlier slot",
            )
