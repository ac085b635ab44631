"""The simulated scrape: every sample the exporter would have served, step by step.

A corpus holds one list of values per series (``None`` where the series was absent from
that scrape) and turns itself into OpenMetrics text for ``promtool tsdb create-blocks-from
openmetrics``, labelled as the ``boxoffice`` scrape job's target so the rules see it exactly
as they see a real scrape.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Labels]

JOB = "boxoffice"
INSTANCE = "exporter:9798"


@dataclass(frozen=True, kw_only=True)
class Window:
    """Simulated time: ``steps`` scrapes ``interval`` seconds apart from ``start``."""

    start: float
    steps: int
    interval: int

    def at(self, step: int) -> float:
        return self.start + step * self.interval

    @property
    def end(self) -> float:
        return self.at(self.steps)


@dataclass
class Corpus:
    """Per-series values over a window; written once, then read by the backfill."""

    window: Window
    series: dict[SeriesKey, list[float | None]] = field(default_factory=dict)
    # Per injected incident (by its index in the schedule): the harm it did, in the unit
    # incidents.EFFECT_UNITS names for its kind.
    effects: dict[int, float] = field(default_factory=dict)

    def put(self, step: int, name: str, value: float, labels: Labels = ()) -> None:
        values = self.series.get((name, labels))
        if values is None:
            values = [None] * self.window.steps
            self.series[(name, labels)] = values
        values[step] = value

    def values(self, name: str, **labels: str) -> list[float | None]:
        """One series by name and exact labels (an all-absent list if never published)."""
        key = (name, tuple(sorted(labels.items())))
        return self.series.get(key, [None] * self.window.steps)

    def names(self) -> set[str]:
        return {name for name, _ in self.series}


def _selector(name: str, labels: Labels) -> str:
    scraped = {"instance": INSTANCE, "job": JOB, **dict(labels)}
    body = ",".join(f'{k}="{v}"' for k, v in sorted(scraped.items()))
    return f"{name}{{{body}}}"


def openmetrics_lines(corpus: Corpus) -> Iterator[str]:
    """OpenMetrics text, one family at a time and each series in time order, ``# EOF`` last."""
    window = corpus.window
    family = ""
    for name, labels in sorted(corpus.series):
        if name != family:
            yield f"# TYPE {name} unknown\n"
            family = name
        selector = _selector(name, labels)
        for step, value in enumerate(corpus.series[(name, labels)]):
            if value is not None:
                yield f"{selector} {value!r} {window.at(step):.0f}\n"
    yield "# EOF\n"


def _number(value: float) -> str:
    if math.isnan(value):  # a ratio of two empty increases
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def openmetrics_samples(series: dict[SeriesKey, list[tuple[float, float]]]) -> Iterator[str]:
    """OpenMetrics text of already-labelled samples (recording rule results), ``# EOF`` last."""
    family = ""
    for name, labels in sorted(series):
        if name != family:
            yield f"# TYPE {name} unknown\n"
            family = name
        body = ",".join(f'{k}="{v}"' for k, v in labels)
        selector = f"{name}{{{body}}}" if body else name
        for at, value in series[(name, labels)]:
            yield f"{selector} {_number(value)} {at:.0f}\n"
    yield "# EOF\n"
