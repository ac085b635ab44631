"""The shop's catalogue: events on sale in rotation, their tiers, and the on-sale event.

Capacities are sized from each profile's demand so that some tiers sell out (a success the
rules must not page for) and every third event has an eight-seat VIP tier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from exporter.quality.corpus import Labels, Window
from exporter.quality.profiles import ShopProfile

_CITIES = ("boston", "chicago", "denver", "austin", "seattle", "portland", "miami", "atlanta")
TIER_SHARE = {"ga": 0.8, "vip": 0.2}
TICKETS_PER_ORDER = 1.9
ONSALE_DECAY_S = 3 * 3600.0
_TINY_CAPACITY = 8


@dataclass(kw_only=True)
class Tier:
    """One ticket tier of one event, and what has happened to its seats."""

    event: str
    city: str
    tier: str
    capacity: int
    opens: float
    show: float
    onsale: bool = False
    sold: int = 0
    refunded: int = 0
    reserved: int = 0

    @property
    def labels(self) -> Labels:
        return (("city", self.city), ("event", self.event), ("tier", self.tier))

    @property
    def available(self) -> int:
        return self.capacity - self.sold + self.refunded - self.reserved

    def on_sale(self, t: float) -> bool:
        return self.opens <= t < self.show


def _local_midnight(t: float, tz: ZoneInfo) -> datetime:
    local = datetime.fromtimestamp(t, tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def onsale_moment(profile: ShopProfile, window: Window, tz: ZoneInfo) -> float:
    """Tuesday 10:00 local in the profile's on-sale week (weeks counted from the start)."""
    monday = _local_midnight(window.start, tz)
    monday -= timedelta(days=monday.weekday())
    moment = monday + timedelta(days=7 * profile.onsale_week + 1, hours=10)
    return moment.replace(tzinfo=tz).timestamp()


def catalogue(profile: ShopProfile, window: Window, onsale_at: float) -> list[Tier]:
    """Every tier that is on sale at some point of ``window``."""
    span = profile.event_days * 86400.0
    stagger = span / profile.events
    tiers: list[Tier] = []
    k = 0
    opens = window.start - span + stagger
    while opens < window.end:
        factor = profile.capacity_factors[k % len(profile.capacity_factors)]
        for tier, share in TIER_SHARE.items():
            demand = profile.orders_per_day * profile.event_days / profile.events
            capacity = max(1, round(demand * TICKETS_PER_ORDER * share * factor))
            if tier == "vip" and k % 3 == 0:
                capacity = _TINY_CAPACITY
            tiers.append(
                Tier(
                    event=f"show-{k:03d}",
                    city=_CITIES[k % len(_CITIES)],
                    tier=tier,
                    capacity=capacity,
                    opens=opens,
                    show=opens + span,
                )
            )
        k += 1
        opens += stagger
    # The on-sale event: sized to sell out within hours of the spike.
    burst = profile.orders_per_day / 86400 * (profile.onsale_spike - 1) * ONSALE_DECAY_S
    for tier, share in TIER_SHARE.items():
        tiers.append(
            Tier(
                event="onsale-tour",
                city="new-york",
                tier=tier,
                capacity=max(2, round(burst * TICKETS_PER_ORDER * share * 0.7)),
                opens=onsale_at,
                show=onsale_at + span,
                onsale=True,
            )
        )
    return tiers
