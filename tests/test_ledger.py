"""The created-watermark ledger: each id counted once, scans resumed, memory bounded."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from exporter.sources.ledger import CreatedLedger, Query, Rules


@dataclass(frozen=True)
class Obj:
    id: str
    created: int
    status: str = "succeeded"


def _ledger(
    counted: list[str], *, start: int = 1000, overlap: int = 100, max_watched: int = 10
) -> CreatedLedger[Obj]:
    rules: Rules[Obj] = Rules(
        settled=lambda o: o.status != "pending",
        watch=lambda o: o.status == "pending",
        count=lambda o: counted.append(o.id),
    )
    return CreatedLedger(rules, start=start, overlap=overlap, max_watched=max_watched)


def test_first_scan_starts_at_start_and_ends_at_now() -> None:
    ledger = _ledger([])
    assert ledger.next_query(now=2000) == Query(1000, 2000, None)
    # The same scan is planned again until a page is taken.
    assert ledger.next_query(now=2500) == Query(1000, 2000, None)


def test_a_scan_resumes_after_the_last_id_and_then_moves_the_watermark() -> None:
    counted: list[str] = []
    ledger = _ledger(counted)
    ledger.next_query(now=2000)
    assert not ledger.take_page([Obj("c", 1900), Obj("b", 1800)], has_more=True)
    assert ledger.next_query(now=2600) == Query(1000, 2000, "b")
    assert ledger.take_page([Obj("a", 1500)], has_more=False)
    assert counted == ["c", "b", "a"]
    # Next scan: from overlap before the end of the last one up to now.
    assert ledger.next_query(now=2600) == Query(1900, 2600, None)


@pytest.mark.parametrize(
    ("pages", "expected"),
    [
        # The same id seen again in the overlap is not counted again.
        ([[Obj("a", 1950)], [Obj("b", 2050), Obj("a", 1950)]], ["a", "b"]),
        # A late object created before the watermark but inside the overlap is counted once.
        ([[Obj("a", 1950)], [Obj("late", 1920), Obj("a", 1950)]], ["a", "late"]),
        # Pending first, then final: counted once, when final.
        ([[Obj("p", 1950, "pending")], [Obj("p", 1950, "failed")]], ["p"]),
        # Final first, then seen with another status: not counted again.
        ([[Obj("f", 1950, "failed")], [Obj("f", 1950, "succeeded")]], ["f"]),
    ],
)
def test_each_id_counts_once(pages: list[list[Obj]], expected: list[str]) -> None:
    counted: list[str] = []
    ledger = _ledger(counted)
    for now, page in zip((2000, 2100), pages, strict=True):
        ledger.next_query(now)
        assert ledger.take_page(page, has_more=False)
    assert counted == expected


def test_counted_ids_are_forgotten_once_no_scan_can_list_them() -> None:
    ledger = _ledger([], overlap=100)
    ledger.next_query(now=2000)
    ledger.take_page([Obj("old", 1100), Obj("recent", 1950)], has_more=False)
    # The next scan lists from 1900: only "recent" can come back.
    assert ledger.counted() == 1


def test_watched_objects_behind_the_scan_are_reported_for_rereading() -> None:
    counted: list[str] = []
    ledger = _ledger(counted, overlap=100)
    ledger.next_query(now=2000)
    ledger.take_page([Obj("p", 1500, "pending"), Obj("q", 1950, "pending")], has_more=False)
    assert ledger.stale_watched(limit=5) == ["p"]  # q is still inside the next scan
    ledger.observe(Obj("p", 1500, "succeeded"))
    assert counted == ["p"]
    assert not ledger.watched.get("p")


def test_an_object_counted_at_first_sight_is_not_counted_again_when_reread() -> None:
    # Disputes: counted when first seen, watched while open, re-read after the window.
    counted: list[str] = []
    rules: Rules[Obj] = Rules(
        settled=lambda o: True,
        watch=lambda o: o.status == "open",
        count=lambda o: counted.append(o.id),
    )
    ledger = CreatedLedger(rules, start=1000, overlap=100, max_watched=10)
    ledger.next_query(now=2000)
    ledger.take_page([Obj("d", 1200, "open")], has_more=False)
    assert ledger.stale_watched(limit=5) == ["d"]
    ledger.observe(Obj("d", 1200, "open"))
    ledger.observe(Obj("d", 1200, "won"))
    assert counted == ["d"]
    assert not ledger.watched


def test_watched_objects_are_bounded_oldest_out_first() -> None:
    ledger = _ledger([], max_watched=3)
    ledger.next_query(now=2000)
    ledger.take_page([Obj(f"p{i}", 1500 + i, "pending") for i in range(5)], has_more=False)
    assert list(ledger.watched) == ["p2", "p3", "p4"]
    assert ledger.evicted == 2


def test_take_page_without_a_query_is_a_bug() -> None:
    with pytest.raises(RuntimeError):
        _ledger([]).take_page([], has_more=False)


def test_a_restarted_scan_lists_again_from_its_top_and_skips_what_it_counted() -> None:
    counted: list[str] = []
    ledger = _ledger(counted)
    ledger.next_query(now=2000)
    ledger.take_page([Obj("c", 1900), Obj("b", 1800)], has_more=True)
    ledger.restart_scan()
    assert ledger.next_query(now=2500) == Query(1000, 2000, None)
    ledger.take_page([Obj("c", 1900), Obj("b", 1800), Obj("a", 1500)], has_more=False)
    assert counted == ["c", "b", "a"]
