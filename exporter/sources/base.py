"""What every data source gives the scheduler: one collection's families and failures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client.core import Metric

# The self-metrics counting what a resource bound cut (catalog names).
ROWS_TRUNCATED = "boxoffice_query_rows_truncated_total"
LABELS_TRUNCATED = "boxoffice_label_values_truncated_total"
CUT_FAMILIES = (ROWS_TRUNCATED, LABELS_TRUNCATED)


@dataclass(frozen=True)
class Failure:
    """Why (part of) a collection failed; ``message`` is safe to log (no secrets).

    ``reason`` is one of :data:`exporter.catalog.REASONS`.
    """

    reason: str
    message: str
    cause: str = ""  # the bare cause, without the context ``message`` adds


@dataclass(frozen=True)
class Collection:
    """The outcome of one collection cycle.

    A source that fails part-way returns the families it could compute together with
    the failures; the source counts as up only when there are no failures.
    """

    families: tuple[Metric, ...] = ()
    failures: tuple[Failure, ...] = ()
    dropped: Mapping[str, int] = field(default_factory=dict)
    # What a bound cut, by (self-metric name, metric): rows not fetched, labels shortened.
    cut: Mapping[tuple[str, str], int] = field(default_factory=dict)
    # A leased API source (sources/lease.py): True polled as the leader, False stood by
    # (nothing collected); None: not leased.
    leader: bool | None = None

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.failures

    @property
    def collected(self) -> bool:
        """True when the cycle collected and nothing failed: a standby collects nothing."""
        return self.ok and self.leader is not False


class Source(Protocol):
    """A data source the scheduler runs in the background on its own interval."""

    name: str
    interval: float
    timeout: float

    def collect(self) -> Collection:
        """Fetch from the outside world and compute the metric families."""

    def close(self) -> None:
        """Release connections; called once at shutdown."""
