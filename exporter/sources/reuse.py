"""Last cycle's families, reused for a database whose series did not change.

One exporter over many shards rebuilds every series of every shard each cycle, although
most tiers of most shards do not change between two cycles: each series is a dict of its
labels and a sample object, and each new one costs the /metrics encoding its line again.
:class:`FamilyCache` keeps, per database and metric, the samples a family was built from
and the family itself; when the next cycle's samples are equal, the very same family object
is published again (so an encoder may also reuse what it wrote for it).

Only what was read this cycle is ever published: the cache is asked with this cycle's
samples and answers only when they are equal, so a database that fails publishes no cached
series, and one whose rows change gets new families at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import copysign

from prometheus_client.core import Metric

from exporter.sources.families import SharedLabels
from exporter.sources.guard import CardinalityGuard
from exporter.sources.querypack import MetricSpec
from exporter.sources.samples import Sample, to_family

Labels = tuple[tuple[str, str], ...]


def same_series(new: Sequence[Sample], old: Sequence[Sample]) -> bool:
    """Whether ``new`` publishes exactly the text ``old`` did: same labels, same values.

    Equal floats are written alike except zeros of opposite sign (``0.0`` and ``-0.0``);
    NaN equals nothing, so a NaN series is always rebuilt.
    """
    if new is old:
        return True
    if len(new) != len(old) or new != old:
        return False
    return all(
        copysign(1.0, n.value) == copysign(1.0, o.value)
        for n, o in zip(new, old, strict=True)
        if n.value == 0
    )


class FamilyCache:
    """Per (database, metric): the constant labels and samples a family was built from.

    The caller keeps one entry per guard key in step with the cardinality guard: it stores
    a family only when the guard kept every series (then the guard's choice is the samples
    themselves, and applying it again to equal samples would change nothing), and forgets
    the entry when the guard folded some.
    """

    def __init__(self) -> None:
        self._kept: dict[tuple[str, str], tuple[Labels, Sequence[Sample], Metric]] = {}

    def get(
        self, database: str, metric: str, labels: Labels, samples: Sequence[Sample]
    ) -> Metric | None:
        """The family built last time, if it was built from these labels and samples."""
        entry = self._kept.get((database, metric))
        if entry is None:
            return None
        kept_labels, kept_samples, family = entry
        if kept_labels != labels or not same_series(samples, kept_samples):
            return None
        return family

    def put(
        self,
        database: str,
        metric: str,
        labels: Labels,
        samples: Sequence[Sample],
        family: Metric,
    ) -> None:
        """Remember ``family``, built from ``labels`` and ``samples`` (not to be changed)."""
        self._kept[(database, metric)] = (labels, samples, family)

    def forget(self, database: str, metric: str) -> None:
        """Drop the entry: the last family of this metric was not built from its samples alone."""
        self._kept.pop((database, metric), None)


def guarded_family(
    spec: MetricSpec,
    samples: list[Sample],
    database: str,
    labels: Labels,
    *,
    guard: CardinalityGuard,
    key: str,
    cache: FamilyCache | None,
    shared: SharedLabels | None = None,
) -> tuple[Metric, int]:
    """The family of ``spec`` from one database's ``samples`` through the guard (its series
    under ``key``), each with the database's constant ``labels``; and how many series the
    guard folded. Last cycle's family when ``cache`` has one built from equal samples.
    """
    if cache is not None:
        again = cache.get(database, spec.name, labels, samples)
        if again is not None:
            return again, 0
    kept, folded = guard.apply(key, samples, spec.fold)
    # Built with the database's labels at once: relabelling afterwards doubled the work.
    built = to_family(spec, kept, dict(labels), shared)
    if cache is not None:
        # Past the limit the guard's choice depends on what it kept before: not reused.
        if guard.keeps_all(samples):
            cache.put(database, spec.name, labels, samples, built)
        else:
            cache.forget(database, spec.name)
    return built, folded
