"""Prometheus' alert state machine replayed over query results: pending, firing, resolved.

The rule manager cannot evaluate the past, so the benchmark asks Prometheus for each alert
expression's value at every evaluation step (``query_range``) and applies ``for`` and
``keep_firing_for`` here, the way ``rules/alerting.go`` does at each evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class Episode:
    """One notification: an alert series from its first firing evaluation to its resolution."""

    alert: str
    severity: str
    labels: Labels
    start: float
    # The first evaluation at which it no longer fired (the window's end if still firing).
    end: float
    # A notify="once", "digest" or "ticker" alert: news for the business channel or the
    # owner's reports, never a page nor noise.
    informational: bool = False
    # The expression's value when it started firing (what the description would show), for
    # reading a run's dump; None where it was held while its source was blind.
    value: float | None = None


def replay(
    active: Mapping[Labels, Iterable[float]],
    times: list[float],
    *,
    for_s: float,
    keep_firing_for_s: float = 0.0,
    held: Callable[[Labels, float], bool] | None = None,
) -> list[tuple[Labels, float, float]]:
    """Firing intervals ``(labels, start, end)`` of each series of an alert.

    ``active`` holds, per output series, the evaluation times at which the expression
    returned it; ``times`` are all evaluation times in order. ``held(labels, t)`` says whether
    a series that fired at the previous evaluation is kept active at ``t`` although absent
    (the rules' ALERTS self-reference while a source is down).
    """
    intervals: list[tuple[Labels, float, float]] = []
    for labels, when in active.items():
        present = set(when)
        active_since: float | None = None
        firing_since: float | None = None
        keep_since: float | None = None
        for t in times:
            on = t in present or (firing_since is not None and held is not None and held(labels, t))
            if on:
                keep_since = None
                if active_since is None:
                    active_since = t
                if firing_since is None and t - active_since >= for_s:
                    firing_since = t
                continue
            if firing_since is not None and keep_firing_for_s > 0:
                keep_since = t if keep_since is None else keep_since
                if t - keep_since < keep_firing_for_s:
                    continue
            if firing_since is not None:
                intervals.append((labels, firing_since, t))
            active_since = firing_since = keep_since = None
        if firing_since is not None:
            intervals.append((labels, firing_since, times[-1] + (times[1] - times[0])))
    return sorted(intervals, key=lambda item: (item[1], item[0]))
