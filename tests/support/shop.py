"""A small shop for simulator tests: a few events on sale, the simulator on a thread, and the
SQL invariants of docs/incremental.md's write contract."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from exporter.demo.scenarios import Effects, Phase, Scenario, Timeline
from exporter.demo.shape import DemoClock
from exporter.demo.simulator import Limits, Settings, Simulator, SmsGateway
from tests.support.data import add_event, add_tier

# A Thursday noon at the seller's: business hours, near the lunch peak.
NOON = datetime(2026, 11, 26, 12, 0, tzinfo=ZoneInfo("America/New_York"))
# A quiet baseline: scenario tests compare an incident with the time around it.
QUIET = Effects(failure_share=0.01, webhook_error_share=0.0, sms_failure_share=0.0)


def small_catalog(conn: psycopg.Connection[Any], *, scarce_ga: int = 40) -> None:
    """Three events on sale: Austin nearly sold out, Denver and Chicago with plenty left."""
    for slug, city, ga, vip in (
        ("austin-2026-12-20", "Austin", scarce_ga, 20),
        ("denver-2027-01-10", "Denver", 3000, 500),
        ("chicago-2027-01-24", "Chicago", 3000, 500),
    ):
        event = add_event(conn, slug, city, days_ahead=30)
        add_tier(conn, event, "ga", price_cents=14900, capacity=ga)
        add_tier(conn, event, "vip", price_cents=39900, capacity=vip)


# Each query returns rows that break the contract; a run must leave none.
CONTRACT = {
    "paid orders have paid_at, others do not": """
        SELECT id FROM orders
        WHERE (payment_status IN ('completed', 'refunded')) <> (paid_at IS NOT NULL)""",
    "failed orders have a failure code, others do not": """
        SELECT id FROM orders WHERE (payment_status = 'failed') <> (failure_code IS NOT NULL)""",
    "refunds are stamped, after payment, and never more than the amount": """
        SELECT id FROM orders
        WHERE (refunded_amount_cents > 0) <> (refunded_at IS NOT NULL)
           OR refunded_at < paid_at OR refunded_amount_cents > amount_total_cents""",
    "a refunded order is refunded in full": """
        SELECT id FROM orders
        WHERE payment_status = 'refunded' AND refunded_amount_cents <> amount_total_cents""",
    "orders are paid after they are created": """
        SELECT id FROM orders WHERE paid_at < created_at""",
    "complete sessions have completed_at, others do not": """
        SELECT id FROM checkout_sessions WHERE (status = 'complete') <> (completed_at IS NOT NULL)""",
    "a complete session has exactly one paid order": """
        SELECT s.id FROM checkout_sessions s
        WHERE s.status = 'complete' AND (SELECT count(*) FROM orders o
              WHERE o.checkout_session_id = s.id AND o.paid_at IS NOT NULL) <> 1""",
    "no other session has a paid order": """
        SELECT s.id FROM checkout_sessions s JOIN orders o ON o.checkout_session_id = s.id
        WHERE s.status <> 'complete' AND o.paid_at IS NOT NULL""",
    "an order matches its session's tier and quantity": """
        SELECT o.id FROM orders o JOIN checkout_sessions s ON s.id = o.checkout_session_id
        WHERE o.tier_id <> s.tier_id OR o.quantity <> s.quantity""",
    "webhook errors carry the error, processed rows none": """
        SELECT id FROM webhook_logs WHERE (status = 'error') <> (last_error IS NOT NULL)""",
    "after a stop nothing is left pending or open": """
        SELECT id::text FROM orders WHERE payment_status = 'pending'
        UNION ALL SELECT id FROM checkout_sessions WHERE status = 'open'""",
}


def contract_violations(conn: psycopg.Connection[Any]) -> dict[str, list[Any]]:
    """Rule -> offending ids (at most 5 each), for every rule that is broken."""
    found = {}
    for rule, query in CONTRACT.items():
        rows = conn.execute(query + " LIMIT 5").fetchall()  # type: ignore[arg-type]
        if rows:
            found[rule] = [r[0] for r in rows]
    return found


class FakeClock:
    """Time that moves only when the simulator sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def simulator(
    conn: psycopg.Connection[Any],
    *,
    speed: float,
    seconds: float,
    start: datetime = NOON,
    seed: int = 1,
    scenario: Scenario | None = None,
    timeline: Timeline | None = None,
    settings: Settings | None = None,
    baseline: Effects | None = None,
    sms: SmsGateway | None = None,
    fake_clock: FakeClock | None = None,
    on_phase: Callable[[Phase], None] = lambda phase: None,
    lines: list[str] | None = None,
) -> Simulator:
    """A simulator with the tests' defaults; a fake clock runs it as fast as the database allows."""
    kwargs: dict[str, Any] = {}
    if fake_clock is not None:
        kwargs.update(clock=fake_clock, sleep=fake_clock.sleep)
    return Simulator(
        conn,
        DemoClock(start, speed),
        rng=random.Random(seed),
        scenario=scenario,
        timeline=timeline,
        settings=settings or Settings(peak_per_hour=120, status_every=2.0),
        baseline=baseline or Effects(),
        limits=Limits(seconds),
        sms=sms,
        on_phase=on_phase,
        report=(lines.append if lines is not None else lambda line: None),
        **kwargs,
    )


@dataclass(kw_only=True)
class Played:
    """A simulator on a thread, with an event per phase it has entered."""

    thread: threading.Thread
    stop: threading.Event
    phases: dict[Phase, threading.Event] = field(
        default_factory=lambda: {p: threading.Event() for p in Phase}
    )
    reached: set[Phase] = field(default_factory=set)
    errors: list[BaseException] = field(default_factory=list)
    entered_at: dict[Phase, float] = field(default_factory=dict)  # wall clock, after the commit

    def entered(self, phase: Phase) -> None:
        self.entered_at[phase] = time.time()
        self.reached.add(phase)
        self.phases[phase].set()

    def wait(self, phase: Phase, timeout: float = 30.0) -> None:
        self.phases[phase].wait(timeout)
        assert not self.errors, self.errors
        assert phase in self.reached, f"the simulator never reached {phase.value}"

    def join(self, timeout: float = 30.0) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the simulator did not stop in time"
        assert not self.errors, self.errors


@contextmanager
def playing(dsn: str, **options: Any) -> Iterator[Played]:
    """Run ``simulator(**options)`` on its own connection and thread until it ends."""
    stop = threading.Event()
    played = Played(thread=threading.Thread(), stop=stop)

    def body() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                sim = simulator(conn, on_phase=played.entered, **options)
                sim.run(stop)
        except BaseException as exc:  # reported by wait() and join()
            played.errors.append(exc)
        finally:
            for event in played.phases.values():
                event.set()  # nobody waits for a phase that will not come

    played.thread = threading.Thread(target=body, name="demo-simulator", daemon=True)
    played.thread.start()
    try:
        yield played
    finally:
        stop.set()
        played.thread.join(30)
