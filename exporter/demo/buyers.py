"""The simulator's view of the shop: tiers and what is left, buyers, a timer queue."""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from exporter.demo.store import TierRow

QUANTITIES: tuple[tuple[str, float], ...] = (("1", 0.55), ("2", 0.30), ("3", 0.10), ("4", 0.05))
_TIER_WEIGHT = {"ga": 0.8, "vip": 0.2}


@dataclass
class Tier:
    row: TierRow
    taken: int  # sold - refunded + held by open sessions

    @property
    def left(self) -> int:
        return self.row.capacity - self.taken


@dataclass(kw_only=True)
class Session:
    id: str
    tier: Tier
    quantity: int
    expires_at: float  # real seconds since the start
    pending: int | None = None  # id of the order being paid right now
    amount_cents: int = 0  # what the latest order charges
    done: bool = False


@dataclass(kw_only=True)
class Paid:
    order_id: int
    tier: Tier
    quantity: int
    amount_cents: int
    full: bool  # a full refund is due, else a partial one


@dataclass(order=True, kw_only=True)
class _Timer:
    due: float
    seq: int
    action: str = field(compare=False)
    subject: object = field(compare=False)


class Timers:
    """Things due later (a buyer paying, a session expiring, a refund), earliest first."""

    def __init__(self) -> None:
        self._heap: list[_Timer] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, due: float, action: str, subject: object) -> None:
        timer = _Timer(due=due, seq=next(self._seq), action=action, subject=subject)
        heapq.heappush(self._heap, timer)

    def due(self, now: float, limit: int) -> list[tuple[str, object]]:
        """Pop up to ``limit`` timers due at ``now``."""
        out: list[tuple[str, object]] = []
        while self._heap and self._heap[0].due <= now and len(out) < limit:
            timer = heapq.heappop(self._heap)
            out.append((timer.action, timer.subject))
        return out

    def drain(self) -> list[tuple[str, object]]:
        """Every timer left, earliest first, emptying the queue."""
        out = [(t.action, t.subject) for t in sorted(self._heap)]
        self._heap.clear()
        return out


class Inventory:
    """On-sale tiers; picks where a new buyer goes, honouring capacity like the app does."""

    def __init__(self, rows: Iterable[TierRow]) -> None:
        self.tiers = [Tier(row, row.taken) for row in rows]

    def fewest_left_ga(self) -> list[Tier]:
        """The GA tier closest to selling out; one just sold out (0 left) counts: buyers
        still ask for it, so it is where a broken check oversells first."""
        candidates = [t for t in self.tiers if t.row.tier == "ga" and t.left >= 0]
        return [min(candidates, key=lambda t: (t.left, t.row.id))] if candidates else []

    def fewest_left_event(self) -> list[Tier]:
        left: dict[str, int] = {}
        for tier in self.tiers:
            left[tier.row.event] = left.get(tier.row.event, 0) + max(0, tier.left)
        open_events = [(n, e) for e, n in left.items() if n > 0]
        if not open_events:
            return []
        event = min(open_events)[1]
        return [t for t in self.tiers if t.row.event == event]

    def choose(self, rng: random.Random, among: list[Tier] | None = None) -> Tier | None:
        """The tier a buyer wants, GA four times as likely as VIP, sold out or not.

        None when there is nothing on sale at all.
        """
        candidates = among or self.tiers
        if not candidates:
            return None
        weights = [_TIER_WEIGHT.get(t.row.tier, 0.5) for t in candidates]
        return rng.choices(candidates, weights=weights, k=1)[0]
