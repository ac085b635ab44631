"""How many buyers arrive when: a compressed demo clock and the seller's time-of-day shape.

Pure functions only. The demo clock maps real seconds since the start to a local time of
the seller ("virtual" time) at ``speed`` virtual seconds per real second, so a sales day
can play in minutes while the rows written still carry the database's real ``now()``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from exporter.db.shop import HOURLY, WEEKDAY

_PEAK = max(HOURLY) * max(WEEKDAY)


@dataclass(frozen=True)
class DemoClock:
    """Real seconds since the start -> the seller's local (virtual) time."""

    start: datetime  # aware, in the seller's zone
    speed: float  # virtual seconds per real second

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("the demo clock needs an aware start time")
        if self.speed <= 0:
            raise ValueError(f"speed must be > 0, got {self.speed:g}")

    def local(self, elapsed: float) -> datetime:
        """The seller's local time ``elapsed`` real seconds after the start."""
        return self.start + timedelta(seconds=elapsed * self.speed)

    def real(self, virtual_seconds: float) -> float:
        """How many real seconds a virtual duration takes at this speed."""
        return virtual_seconds / self.speed


def demand_shape(local: datetime) -> float:
    """Relative demand at a local time, 1.0 at the busiest hour of the busiest weekday.

    Linear between hour midpoints, so demand ramps instead of jumping on the hour.
    """
    hour = local.hour + local.minute / 60 + local.second / 3600 - 0.5
    low = math.floor(hour)
    frac = hour - low
    weekday = WEEKDAY[local.weekday()]
    value = HOURLY[low % 24] * (1 - frac) + HOURLY[(low + 1) % 24] * frac
    return value * weekday / _PEAK


def arrival_rate(local: datetime, peak_per_hour: float, speed: float, demand: float) -> float:
    """Checkout sessions started per real second.

    ``peak_per_hour`` is the seller's busiest hour in virtual time; ``demand`` the
    incident's multiplier (0 stops sales, 8 is a flash sale).
    """
    return peak_per_hour / 3600 * demand_shape(local) * speed * max(0.0, demand)


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw; bounded work whatever the mean."""
    if mean <= 0:
        return 0
    if mean > 50:  # normal approximation: Knuth's method would loop ~mean times
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, product, count = math.exp(-mean), rng.random(), 0
    while product > limit and count < 1000:
        product *= rng.random()
        count += 1
    return count


def pick_weighted(rng: random.Random, choices: tuple[tuple[str, float], ...]) -> str:
    """One name from ``(name, weight)`` pairs."""
    names = [name for name, _ in choices]
    return rng.choices(names, weights=[w for _, w in choices], k=1)[0]
