"""Counts drawn from a seeded ``random.Random``: Poisson and binomial without numpy.

Small means are drawn exactly; large ones by the normal approximation, which is what keeps
four weeks of a hundred-orders-a-minute shop cheap to simulate.
"""

from __future__ import annotations

import math
import random

_EXACT_LIMIT = 30.0


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson count with the given mean (0 for a mean of 0 or less)."""
    if mean <= 0:
        return 0
    if mean > _EXACT_LIMIT:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit = math.exp(-mean)
    count = 0
    product = rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def binomial(rng: random.Random, n: int, p: float) -> int:
    """A binomial count of ``n`` trials with success probability ``p``."""
    if n <= 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    mean = n * p
    if n > 60 and mean > 10 and n * (1 - p) > 10:
        drawn = round(rng.gauss(mean, math.sqrt(mean * (1 - p))))
        return min(n, max(0, drawn))
    return sum(1 for _ in range(n) if rng.random() < p)


def split(rng: random.Random, n: int, shares: tuple[tuple[str, float], ...]) -> dict[str, int]:
    """``n`` events spread over labelled shares (which sum to 1)."""
    counts: dict[str, int] = {}
    left = n
    remaining = 1.0
    for i, (label, share) in enumerate(shares):
        if i == len(shares) - 1:
            counts[label] = left
            break
        taken = binomial(rng, left, min(1.0, share / remaining)) if remaining > 0 else 0
        counts[label] = taken
        left -= taken
        remaining -= share
    return counts
