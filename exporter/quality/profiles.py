"""Healthy shop profiles: the traffic a seller of each size really sees.

The rates are the ones issue 15 cites from public processor and carrier figures, so that a
rule tuned on a calm demo shop meets the declines, abandoned checkouts and bad numbers of a
real one. Every number a profile carries is a bound the simulator tests check.
"""

from __future__ import annotations

from dataclasses import dataclass

# Stripe issuer-decline codes and the share of declines each takes.
DECLINE_CODES: tuple[tuple[str, float], ...] = (
    ("card_declined", 0.5),
    ("insufficient_funds", 0.25),
    ("expired_card", 0.1),
    ("incorrect_cvc", 0.15),
)
# Twilio error codes of messages to numbers that cannot receive them (the recipient's problem).
BAD_NUMBER_CODES: tuple[tuple[str, float], ...] = (
    ("30003", 0.35),
    ("30005", 0.25),
    ("30006", 0.3),
    ("21211", 0.1),
)

# Relative demand per local hour of the day (night trough, evening peak) and per weekday
# (Monday first), normalised by the simulator so that a day sells orders_per_day on average.
HOURLY_SHAPE: tuple[float, ...] = (
    *(0.15, 0.08, 0.05, 0.04, 0.04, 0.06, 0.15, 0.35, 0.6, 0.85, 1.0, 1.1),
    *(1.2, 1.2, 1.15, 1.1, 1.15, 1.3, 1.55, 1.8, 1.9, 1.6, 1.0, 0.45),
)
WEEKLY_SHAPE: tuple[float, ...] = (0.8, 0.9, 0.95, 1.0, 1.15, 1.2, 1.0)


@dataclass(frozen=True, kw_only=True)
class ShopProfile:
    """One healthy seller: volume, seasonality, customer behaviour and catalogue."""

    name: str
    orders_per_day: float
    # Concurrent events on sale; each runs for event_days and is then replaced.
    events: int
    event_days: int = 14
    # Capacity of a GA tier as a share of the demand the event expects: below 1 sells out.
    capacity_factors: tuple[float, ...] = (0.8, 1.3, 1.6)
    # The on-sale: in week onsale_week (0-based) on Tuesday 10:00 local, demand jumps by
    # onsale_spike and decays with a three-hour time constant.
    onsale_week: int = 2
    onsale_spike: float = 20.0
    decline_rate: float = 0.05
    checkout_completion: float = 0.5
    sms_per_order: float = 1.5
    sms_bad_number_rate: float = 0.03
    # Failures that are ours on a healthy day: a processor hiccup, a provider's unknown error.
    system_failure_rate: float = 0.0002  # of charge attempts (processing_error)
    sms_system_failure_rate: float = 0.0005  # of texts (30008)
    sms_price_usd: float = 0.0083
    webhook_error_rate: float = 0.002
    ticket_price_usd: float = 45.0
    refund_rate: float = 0.01
    dispute_rate: float = 0.001
    # Twilio auto-recharge: topped up by twilio_recharge_usd when below twilio_recharge_below_usd.
    twilio_recharge_below_usd: float = 10.0
    twilio_recharge_usd: float = 50.0

    @property
    def peak_orders_per_minute(self) -> float:
        """The busiest normal hour's rate (the on-sale spike apart)."""
        mean_hour = sum(HOURLY_SHAPE) / 24
        mean_day = sum(WEEKLY_SHAPE) / 7
        return (
            self.orders_per_day
            / 1440
            * max(HOURLY_SHAPE)
            / mean_hour
            * max(WEEKLY_SHAPE)
            / mean_day
        )


PROFILES: tuple[ShopProfile, ...] = (
    ShopProfile(
        name="club-10/day",
        orders_per_day=10,
        events=2,
        onsale_spike=50,
        decline_rate=0.08,
        checkout_completion=0.6,
        sms_bad_number_rate=0.05,
        ticket_price_usd=20,
    ),
    ShopProfile(
        name="theatre-120/day",
        orders_per_day=120,
        events=3,
        onsale_spike=30,
        decline_rate=0.06,
        checkout_completion=0.55,
        sms_bad_number_rate=0.03,
        ticket_price_usd=55,
    ),
    ShopProfile(
        name="venue-1k/day",
        orders_per_day=1000,
        events=4,
        onsale_spike=25,
        decline_rate=0.05,
        checkout_completion=0.5,
        sms_bad_number_rate=0.02,
        twilio_recharge_below_usd=20,
        twilio_recharge_usd=100,
    ),
    ShopProfile(
        name="promoter-5/min",
        orders_per_day=4000,
        events=5,
        onsale_spike=15,
        decline_rate=0.04,
        checkout_completion=0.45,
        sms_bad_number_rate=0.025,
        twilio_recharge_below_usd=50,
        twilio_recharge_usd=300,
    ),
    ShopProfile(
        name="arena-25/min",
        orders_per_day=17000,
        events=6,
        onsale_spike=12,
        decline_rate=0.035,
        checkout_completion=0.4,
        sms_bad_number_rate=0.015,
        twilio_recharge_below_usd=100,
        twilio_recharge_usd=1000,
    ),
    ShopProfile(
        name="ticketer-100/min",
        orders_per_day=68000,
        events=8,
        onsale_spike=10,
        decline_rate=0.035,
        checkout_completion=0.65,
        sms_bad_number_rate=0.01,
        webhook_error_rate=0.001,
        twilio_recharge_below_usd=300,
        twilio_recharge_usd=3000,
    ),
)
PROFILES_BY_NAME: dict[str, ShopProfile] = {p.name: p for p in PROFILES}
