"""The idempotency store, SQLite and PostgreSQL alike: claim, confirm, reject, release, prune."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from exporter.smsbridge.payload import notification_from
from exporter.smsbridge.store import (
    IdempotencyStore,
    PostgresStore,
    SqliteStore,
    StoreError,
    message_key,
    thread_key,
)
from tests.support.alerts import alert, payment_alert, webhook

LEASE, WINDOW = 60.0, 3600.0
RECIPIENT = "+14155550101"


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], IdempotencyStore]]:
    """Opens stores on one shared location (a file, a database), closed after the test."""
    opened: list[IdempotencyStore] = []
    if request.param == "sqlite":
        location = str(tmp_path / "sms.sqlite")
        factory: Callable[[str], IdempotencyStore] = SqliteStore
    else:
        location = request.getfixturevalue("pg_dsn")
        factory = PostgresStore

    def make() -> IdempotencyStore:
        store = factory(location)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def _claim(store: IdempotencyStore, key: str, now: float) -> str:
    claim = store.claim(key, RECIPIENT, now=now, lease=LEASE, window=WINDOW)
    return claim.verdict + (" stale" if claim.stale else "")


def test_claim_then_confirm_deduplicates(open_store: Callable[[], IdempotencyStore]) -> None:
    store = open_store()
    assert _claim(store, "k1", 1000) == "send"
    store.confirm("k1", "SM1", now=1001)
    again = store.claim("k1", RECIPIENT, now=1002, lease=LEASE, window=WINDOW)
    assert (again.verdict, again.sid) == ("sent", "SM1")
    assert _claim(store, "k2", 1002) == "send"  # another recipient is its own record


def test_a_fresh_claim_is_busy_and_a_stale_one_is_taken_over(
    open_store: Callable[[], IdempotencyStore],
) -> None:
    store = open_store()
    assert _claim(store, "k", 1000) == "send"
    assert _claim(store, "k", 1000 + LEASE - 1) == "busy"  # still being sent
    assert _claim(store, "k", 1000 + LEASE + 1) == "send stale"  # its bridge died mid-send
    assert _claim(store, "k", 1000 + LEASE + 2) == "busy"  # the take-over is a claim too


def test_release_lets_the_retry_send_and_reject_is_final(
    open_store: Callable[[], IdempotencyStore],
) -> None:
    store = open_store()
    assert _claim(store, "retry", 1000) == "send"
    store.release("retry")
    assert _claim(store, "retry", 1001) == "send"
    assert _claim(store, "bad-number", 1000) == "send"
    store.reject("bad-number", 21211, now=1001)
    claim = store.claim("bad-number", RECIPIENT, now=1002, lease=LEASE, window=WINDOW)
    assert (claim.verdict, claim.error_code) == ("rejected", 21211)
    store.release("bad-number")  # only a claim is released, never a final record
    assert _claim(store, "bad-number", 1003) == "rejected"


def test_records_expire_after_the_window_and_are_pruned(
    open_store: Callable[[], IdempotencyStore],
) -> None:
    store = open_store()
    for i, key in enumerate(("old", "new")):
        assert _claim(store, key, 1000 + i * WINDOW) == "send"
        store.confirm(key, f"SM-{key}", now=1000 + i * WINDOW)
    assert _claim(store, "old", 1000 + WINDOW + 1) == "send"  # past the window: send again
    store.confirm("old", "SM-old-2", now=1000 + WINDOW + 1)
    assert store.prune(1000 + WINDOW + 1) == 1  # "new" (created at 1000 + WINDOW) only
    assert store.prune(2000 + WINDOW) == 1
    assert _claim(store, "new", 2000 + WINDOW) == "send"


def test_records_survive_reopening(open_store: Callable[[], IdempotencyStore]) -> None:
    first = open_store()
    assert _claim(first, "k", 1000) == "send"
    first.confirm("k", "SM1", now=1000)
    first.close()
    assert _claim(open_store(), "k", 1001) == "sent"


def test_concurrent_claims_let_exactly_one_send(
    open_store: Callable[[], IdempotencyStore],
) -> None:
    stores = [open_store(), open_store()]  # two bridges on one file or database
    verdicts: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def claim(store: IdempotencyStore) -> None:
        start.wait(5)
        verdict = _claim(store, "shared", 1000)
        with lock:
            verdicts.append(verdict)

    threads = [threading.Thread(target=claim, args=(stores[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(verdicts) == ["busy"] * 7 + ["send"]


def test_message_key_identity() -> None:
    base = webhook(payment_alert(), alert("InventoryLow", category="inventory"))
    key = message_key(notification_from(base), "+14155550101")
    reordered = webhook(alert("InventoryLow", category="inventory"), payment_alert())
    assert message_key(notification_from(reordered), "+14155550101") == key
    assert message_key(notification_from(base), "+14155550102") != key
    # Each Prometheus of an HA pair gives its own startsAt; the SMS is the same.
    other_replica = webhook(
        payment_alert(starts_at="2026-11-26T09:00:15Z"), alert("InventoryLow", category="inventory")
    )
    assert message_key(notification_from(other_replica), "+14155550101") == key
    one_resolved = webhook(
        payment_alert(), alert("InventoryLow", category="inventory", status="resolved")
    )
    assert message_key(notification_from(one_resolved), "+14155550101") != key
    assert "4155550101" not in key  # a hash: the store holds no phone numbers


def test_unusable_locations_are_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open the SQLite store"):
        SqliteStore(str(tmp_path / "missing" / "dir" / "sms.sqlite"))
    dsn = "postgresql://bridge:hunter2secret@127.0.0.1:1/nowhere"
    with pytest.raises(StoreError) as caught:
        PostgresStore(dsn, connect_timeout=1)
    assert "hunter2secret" not in str(caught.value)
    assert str(caught.value).startswith("cannot use the PostgreSQL store: ")


def test_postgresql_going_away_is_a_store_error(
    pg_server: str, new_database: Callable[[], str]
) -> None:
    dsn = new_database()
    store = PostgresStore(dsn, connect_timeout=1)
    try:
        assert _claim(store, "k", 1000) == "send"
        with psycopg.connect(pg_server, autocommit=True) as admin:
            name = conninfo_to_dict(dsn)["dbname"]
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        with pytest.raises(StoreError, match=r"^PostgreSQL store: "):
            store.claim("k2", RECIPIENT, now=1001, lease=LEASE, window=WINDOW)
    finally:
        store.close()


def test_recent_sends_count_each_sms_once(open_store: Callable[[], IdempotencyStore]) -> None:
    store = open_store()
    for key in ("a", "b", "c"):
        assert _claim(store, key, 1000) == "send"
    store.confirm("a", "SM1", now=1001)
    store.confirm("b", "SM2", now=1001)  # "c" is still being sent: it counts too
    assert store.recent_sends(RECIPIENT, 1000) == 3
    assert store.recent_sends(RECIPIENT, 1001.5) == 0
    assert store.recent_sends("+14155550199", 0) == 0
    store.release("c")
    assert store.recent_sends(RECIPIENT, 1000) == 2


def test_deferred_messages_wait_for_one_digest(open_store: Callable[[], IdempotencyStore]) -> None:
    store = open_store()
    for i, key in enumerate(("first", "second")):
        assert _claim(store, key, 1000 + i) == "send"
        store.defer(key, RECIPIENT, f"text {key}", now=1000 + i)
    assert _claim(store, "first", 1002) == "deferred"  # a retry does not send it again
    assert store.recent_sends(RECIPIENT, 0) == 0  # deferred messages were not sent
    assert store.deferred_recipients(now=1002, lease=LEASE) == [RECIPIENT]

    taken = store.take_deferred(RECIPIENT, now=1003, lease=LEASE)
    assert [(d.key, d.body, d.stale) for d in taken] == [
        ("first", "text first", False),
        ("second", "text second", False),
    ]
    assert store.deferred_recipients(now=1003, lease=LEASE) == []  # taken: in flight
    store.restore_deferred(["first", "second"])  # Twilio was down
    assert [d.key for d in store.take_deferred(RECIPIENT, now=1004, lease=LEASE)] == [
        "first",
        "second",
    ]
    assert store.prune(5000) == 0  # a message waiting to be sent is never pruned
    for key in ("first", "second"):
        store.confirm(key, "SM-digest", now=1005)
    assert store.recent_sends(RECIPIENT, 1000) == 1  # one SMS carried both
    assert _claim(store, "second", 1006) == "sent"
    assert store.deferred_recipients(now=1006, lease=LEASE) == []


def test_a_digest_left_by_a_dead_bridge_is_taken_again(
    open_store: Callable[[], IdempotencyStore],
) -> None:
    store = open_store()
    assert _claim(store, "k", 1000) == "send"
    store.defer("k", RECIPIENT, "text", now=1000)
    assert len(store.take_deferred(RECIPIENT, now=1001, lease=LEASE)) == 1  # then it died
    assert store.take_deferred(RECIPIENT, now=1002, lease=LEASE) == []
    again = store.take_deferred(RECIPIENT, now=1001 + LEASE + 1, lease=LEASE)
    assert [(d.key, d.stale) for d in again] == [("k", True)]


def _open_together(dsn: str, count: int) -> tuple[list[PostgresStore], list[str]]:
    barrier = threading.Barrier(count, timeout=10)
    opened: list[PostgresStore] = []
    failed: list[str] = []
    lock = threading.Lock()

    def start() -> None:
        barrier.wait()
        try:
            store = PostgresStore(dsn, max_size=1)
        except StoreError as exc:
            with lock:
                failed.append(str(exc))
            return
        with lock:
            opened.append(store)

    threads = [threading.Thread(target=start) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return opened, failed


def test_bridges_starting_together_on_a_fresh_database_all_open(
    new_database: Callable[[], str],
) -> None:
    """Issue 16 item 6: CREATE TABLE IF NOT EXISTS races on PostgreSQL's catalog
    (pg_type_typname_nsp_index); four stores start at once on a new database, four times."""
    for _round in range(4):
        opened, failed = _open_together(new_database(), 4)
        for store in opened:
            store.close()
        assert failed == []
        assert len(opened) == 4


def test_a_thread_that_moved_on_sends_a_repeated_text_again(
    open_store: Callable[[], IdempotencyStore],
) -> None:
    """Page, all-clear, then a new incident that reads like the first page: sent, as is its
    all-clear; the duplicates of each, while it is the thread's latest, are not."""
    store = open_store()

    def claim(key: str, now: float) -> str:
        found = store.claim(key, RECIPIENT, now=now, lease=LEASE, window=WINDOW, thread="t")
        return found.verdict

    assert claim("page", 1000) == "send"
    store.confirm("page", "SM1", now=1001, thread="t")
    assert claim("page", 1002) == "sent"  # the other Alertmanager's copy
    assert claim("all-clear", 1100) == "send"
    store.confirm("all-clear", "SM2", now=1101, thread="t")
    assert claim("all-clear", 1102) == "sent"
    assert claim("page", 1200) == "send"  # a new incident, within the window
    store.confirm("page", "SM3", now=1201, thread="t")
    assert claim("page", 1202) == "sent"
    assert claim("all-clear", 1300) == "send"
    # A claim without a thread deduplicates on the record alone, as before threads.
    assert store.claim("page", RECIPIENT, now=1301, lease=LEASE, window=WINDOW).verdict == "sent"


def test_a_refused_or_deferred_text_moves_the_thread_too(
    open_store: Callable[[], IdempotencyStore],
) -> None:
    store = open_store()

    def claim(key: str, now: float) -> str:
        found = store.claim(key, RECIPIENT, now=now, lease=LEASE, window=WINDOW, thread="t")
        return found.verdict

    assert claim("page", 1000) == "send"
    store.reject("page", 21211, now=1000, thread="t")
    assert claim("all-clear", 1001) == "send"
    store.defer("all-clear", RECIPIENT, "all clear", now=1001, thread="t")
    assert claim("all-clear", 1002) == "deferred"
    assert claim("page", 1003) == "send"  # the refusal is history: try the new page
    store.confirm("page", "SM1", now=1003, thread="t")
    assert claim("all-clear", 1004) == "deferred"  # a text waiting for a digest stays once
    assert store.prune(2000) == 1  # the sent page; the deferred text waits, threads go
    assert claim("page", 2001) == "send"


def test_thread_key_is_the_group_and_recipient() -> None:
    firing = notification_from(webhook(payment_alert()))
    resolved = notification_from(webhook(payment_alert(status="resolved")))
    assert thread_key(firing, RECIPIENT) == thread_key(resolved, RECIPIENT)
    assert thread_key(firing, "+14155550102") != thread_key(firing, RECIPIENT)
    other = notification_from(webhook(payment_alert(), group_key='{}:{alertname="Other"}'))
    assert thread_key(other, RECIPIENT) != thread_key(firing, RECIPIENT)
