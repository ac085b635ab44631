"""The cardinality guard: past a limit per metric, the remaining series fold into `other`."""

from __future__ import annotations

from collections.abc import Sequence

from exporter.sources.querypack import Fold
from exporter.sources.samples import Sample

OTHER = "other"


class CardinalityGuard:
    """Caps the series of each metric, preferring the ones it kept last time.

    Sticky choice keeps a dashboard's series from flickering between cycles when the
    number of label values hovers around the limit. Folded series are summed into one
    series whose label values are all ``other``; for metrics where a sum means nothing
    (timestamps) they are dropped. Either way the caller counts them.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the series limit must be at least 1")
        self._limit = limit
        # What was kept last time: the label sets, or (nothing folded) the samples
        # themselves, whose labels are only needed if the metric ever outgrows the limit.
        self._kept: dict[str, frozenset[tuple[str, ...]] | tuple[Sample, ...]] = {}

    def keeps_all(self, samples: Sequence[Sample]) -> bool:
        """Whether :meth:`apply` publishes ``samples`` as they are, whatever it kept before."""
        return len(samples) <= self._limit

    def apply(self, metric: str, samples: Sequence[Sample], fold: Fold) -> tuple[list[Sample], int]:
        """Return the samples to publish and how many series were folded or dropped."""
        if len(samples) <= self._limit:
            self._kept[metric] = tuple(samples)
            return list(samples), 0
        other = (OTHER,) * len(samples[0].labels)
        # A real series already labelled `other` joins the fold instead of taking a place.
        merged = [s for s in samples if s.labels == other] if fold == "sum" else []
        candidates = [s for s in samples if s.labels != other] if fold == "sum" else samples
        before = self._kept.get(metric, ())
        previous = before if isinstance(before, frozenset) else frozenset(s.labels for s in before)
        ranked = sorted(candidates, key=lambda s: (s.labels not in previous, -s.value, s.labels))
        room = self._limit - 1 if fold == "sum" else self._limit
        kept, rest = ranked[:room], ranked[room:]
        self._kept[metric] = frozenset(s.labels for s in kept)
        if fold == "sum":
            kept.append(Sample(other, sum(s.value for s in [*rest, *merged])))
        return kept, len(rest)
