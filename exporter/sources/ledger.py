"""Counting API objects exactly once: a `created` watermark, an overlap window and de-duplication.

Pure bookkeeping with no I/O, so every rule is tested without a server. A
:class:`CreatedLedger` plans list queries (``created`` between two bounds, a cursor to
resume from) and remembers what it has counted; the source feeds it the pages it fetched.

How a scan works: it lists objects created in ``[watermark - overlap, upper]`` newest first,
``upper`` being the time the scan started. A scan may take several cycles (a page cap per
cycle); the cursor carries over, so nothing is dropped. When it reaches the end, the
watermark moves to ``upper`` and the next scan starts again ``overlap`` before it, which
catches objects that became visible late. Ids counted are kept only while they can still
appear in a scan (created at or after ``watermark - overlap``), which bounds the memory.

Objects that are not final yet (a pending charge, an open dispute) are *watched*: while
they are inside the scanned range the scans see them change; once they fall behind it the
source re-reads them one by one (:meth:`CreatedLedger.stale_watched`).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)


class Created(Protocol):
    """What the ledger needs of an object: its id and creation time (Unix seconds)."""

    @property
    def id(self) -> str: ...

    @property
    def created(self) -> int: ...


T = TypeVar("T", bound=Created)


@dataclass(frozen=True)
class Query:
    """One list request: objects created in ``[lower, upper]``, after ``cursor`` if set."""

    lower: int
    upper: int
    cursor: str | None


@dataclass(frozen=True)
class Rules(Generic[T]):
    """When an object counts and when it stays watched, and what counting it does."""

    settled: Callable[[T], bool]  # counted now (once per id)
    watch: Callable[[T], bool]  # re-read until this turns False
    count: Callable[[T], None]


class CreatedLedger(Generic[T]):
    """Scan state, counted ids and watched ids of one list endpoint."""

    def __init__(self, rules: Rules[T], *, start: int, overlap: int, max_watched: int) -> None:
        self._rules = rules
        self._overlap = overlap
        self._max_watched = max_watched
        self.watermark = start + overlap  # the first scan starts at `start`
        self._scan: Query | None = None
        self._counted: dict[str, int] = {}
        # id -> (created, counted already): counted ids outlive the window while watched.
        self.watched: OrderedDict[str, tuple[int, bool]] = OrderedDict()
        self.evicted = 0

    @property
    def lower(self) -> int:
        """Oldest creation time the scans still list."""
        return self.watermark - self._overlap

    def next_query(self, now: int) -> Query:
        """The request to make next: the running scan's, or a new scan's first page."""
        if self._scan is None:
            self._scan = Query(self.lower, max(now, self.lower), None)
        return self._scan

    def take_page(self, items: list[T], has_more: bool) -> bool:
        """Record one page of the running scan; True when the scan is complete."""
        scan = self._scan
        if scan is None:
            raise RuntimeError("take_page without next_query")
        for item in items:
            self.observe(item)
        if has_more and items:
            self._scan = Query(scan.lower, scan.upper, items[-1].id)
            return False
        self._scan = None
        self.watermark = max(self.watermark, scan.upper)
        self._forget_before(self.lower)
        return True

    def observe(self, item: T) -> None:
        """Count an object the first time it is settled; keep watching it while asked."""
        was_counted = item.id in self._counted or self.watched.get(item.id, (0, False))[1]
        counted_now = not was_counted and self._rules.settled(item)
        if counted_now:
            self._counted[item.id] = item.created
            self._rules.count(item)
        if self._rules.watch(item):
            self.watched[item.id] = (item.created, was_counted or counted_now)
            self.watched.move_to_end(item.id)
            while len(self.watched) > self._max_watched:
                dropped, _state = self.watched.popitem(last=False)
                self.evicted += 1
                log.warning("watching too many objects; no longer following %s", dropped)
        else:
            self.watched.pop(item.id, None)

    def stale_watched(self, limit: int) -> list[str]:
        """Up to ``limit`` watched ids the scans no longer reach, least recently read first."""
        lower = (self._scan or Query(self.lower, 0, None)).lower
        return [oid for oid, (created, _c) in self.watched.items() if created < lower][:limit]

    def restart_scan(self) -> None:
        """List the running scan again from its first page (its cursor became invalid)."""
        if self._scan is not None:
            self._scan = Query(self._scan.lower, self._scan.upper, None)

    def forget(self, oid: str) -> None:
        """Stop watching an object (it no longer exists)."""
        self.watched.pop(oid, None)

    def counted(self) -> int:
        """How many ids are remembered as counted (for tests and the memory bound)."""
        return len(self._counted)

    def _forget_before(self, lower: int) -> None:
        self._counted = {oid: c for oid, c in self._counted.items() if c >= lower}
