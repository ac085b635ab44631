"""A live ticket shop writing the reference schema: buyers, payments, refunds, webhooks, texts.

Buyers arrive at the seller's time-of-day rate on a compressed clock (``speed``), open a
Stripe checkout session holding their tickets, and either abandon it (it expires) or pay
after a think time. A payment is an order inserted ``pending`` that completes or fails a
moment later; a buyer whose card fails may retry on the same session. Paid orders get a
confirmation SMS and, now and then, a full or partial refund. Every Stripe and Twilio
callback is a webhook log row. All writes follow docs/incremental.md's contract.

Clock, sleep and random numbers are injected; a run is bounded in time and in buyers; one
connection; on stop, payments in flight settle and open sessions are expired.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import psycopg

from exporter.db.shop import PAYMENT_METHODS, WEBHOOK_ERRORS
from exporter.demo.buyers import QUANTITIES, Inventory, Paid, Session, Tier, Timers
from exporter.demo.report import Tally
from exporter.demo.scenarios import (
    NORMAL,
    Effects,
    Phase,
    Scenario,
    Timeline,
    effects,
)
from exporter.demo.shape import DemoClock, arrival_rate, pick_weighted, poisson
from exporter.demo.store import ShopWriter

OVERSELL_BY = 3  # tickets past capacity the broken check lets through before the rush ends


@dataclass(frozen=True)
class SmsOutcome:
    """The final status of one confirmation text."""

    order_id: int
    status: str  # delivered | undelivered | failed
    error_code: str | None


class SmsGateway(Protocol):
    """Where confirmation texts go: Twilio, a local fake of it, or nowhere."""

    def deliver(self, outcome: SmsOutcome) -> None: ...


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Rates in the seller's (virtual) time; durations in virtual seconds."""

    peak_per_hour: float = 240.0  # checkout sessions in the busiest hour
    checkout_ttl: float = 1800.0  # Stripe's shortest session lifetime
    think_time: tuple[float, float] = (20.0, 240.0)
    processing: tuple[float, float] = (1.0, 6.0)  # pending -> completed/failed
    abandon_share: float = 0.05  # the seeds' healthy checkout converts over 95%
    retry_share: float = 0.5  # buyers trying another card after a failure
    refund_share: float = 0.02
    partial_refund_share: float = 0.005
    refund_after: tuple[float, float] = (600.0, 7200.0)
    webhook_retry: float = 120.0  # Stripe's first retry; doubled each time, 3 at most
    member_share: float = 0.25
    tick: float = 0.25  # real seconds between steps
    status_every: float = 10.0  # real seconds between status lines
    max_per_tick: int = 500  # bound on work per step


@dataclass(frozen=True)
class Limits:
    """A run ends at whichever comes first."""

    seconds: float
    buyers: int = 1_000_000


class Simulator:
    def __init__(
        self,
        conn: psycopg.Connection[Any],
        demo_clock: DemoClock,
        *,
        rng: random.Random,
        scenario: Scenario | None = None,
        timeline: Timeline | None = None,
        settings: Settings = Settings(),
        baseline: Effects = NORMAL,
        limits: Limits,
        sms: SmsGateway | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        report: Callable[[str], None] = lambda line: None,
        on_phase: Callable[[Phase], None] = lambda phase: None,
    ) -> None:
        if scenario is not None and timeline is None:
            raise ValueError("a scenario needs a timeline")
        self.writer = ShopWriter(conn)
        self.conn = conn
        self.demo_clock = demo_clock
        self.rng = rng
        self.scenario = scenario
        self.timeline = timeline
        self.settings = settings
        self.baseline = baseline
        self.limits = limits
        self.sms = sms
        self.clock = clock
        self.sleep = sleep
        self.report = report
        self.on_phase = on_phase
        self.tally = Tally()
        self.inventory = Inventory(self.writer.on_sale_tiers())
        self.timers = Timers()
        self.focus: list[Tier] = []
        self.phase = Phase.BASELINE
        self._sessions: dict[str, Session] = {}
        self._buyers = 0

    # --- running -----------------------------------------------------------------------

    def run(self, stop: threading.Event, *, offset: float = 0.0) -> Tally:
        """Step every ``tick`` until ``stop``, the time limit or the buyer limit; then settle.

        ``offset`` resumes a run that has been going for that many seconds (the timeline
        and the seller's clock continue where they were)."""
        start = self.clock() - offset
        if offset:
            self.report(self._say(offset, "resumed: " + self._intro()))
        else:
            self.report(self._say(0.0, self._intro()))
        last = offset
        next_status = offset + self.settings.status_every
        steps = int(self.limits.seconds / self.settings.tick) + 2
        try:
            for _ in range(steps):
                elapsed = self.clock() - start
                if stop.is_set() or elapsed >= self.limits.seconds:
                    break
                self.step(elapsed, elapsed - last)
                last = elapsed
                if elapsed >= next_status:
                    self.report(self._say(elapsed, self.tally.status_line()))
                    self.tally.start_interval()
                    next_status += self.settings.status_every
                if self.sleep is not None:
                    self.sleep(self.settings.tick)
                elif stop.wait(self.settings.tick):
                    break
        finally:
            self.finish(self.clock() - start)
        return self.tally

    def step(self, elapsed: float, dt: float) -> None:
        """Everything due at ``elapsed`` real seconds, in one transaction."""
        phase = self.timeline.phase(elapsed) if self.timeline else Phase.BASELINE
        changed = phase is not self.phase
        with self.conn.transaction():
            if changed:
                self._enter(phase, elapsed)
            now = effects(self.scenario, phase, self.baseline)
            for action, subject in self.timers.due(elapsed, self.settings.max_per_tick):
                self._act(action, subject, elapsed, now)
            self._arrivals(elapsed, dt, now)
        if changed:  # after the commit: the phase's first writes are visible to others
            self.on_phase(phase)

    def finish(self, elapsed: float) -> None:
        """Settle payments in flight and expire the sessions still open (bounded)."""
        with self.conn.transaction():
            now = effects(self.scenario, self.phase, self.baseline)
            for action, subject in self.timers.drain():
                if action == "settle":
                    self._act(action, subject, elapsed, now)
            for session in list(self._sessions.values()):
                self._expire(session, elapsed, now, early=True)
        self.report(self._say(elapsed, "stopped: " + self.tally.totals_line()))

    # --- the shop ----------------------------------------------------------------------

    def _arrivals(self, elapsed: float, dt: float, now: Effects) -> None:
        local = self.demo_clock.local(elapsed)
        rate = arrival_rate(local, self.settings.peak_per_hour, self.demo_clock.speed, now.demand)
        count = min(poisson(self.rng, rate * dt), self.settings.max_per_tick)
        for _ in range(count):
            if self._buyers >= self.limits.buyers:
                return
            self._buyers += 1
            self._arrive(elapsed, now)

    def _arrive(self, elapsed: float, now: Effects) -> None:
        focused = bool(self.focus) and self.rng.random() < now.focus_share
        unchecked = focused and now.oversell  # the inventory check lets this buyer through
        if unchecked:
            tier: Tier | None = self.focus[0] if self.focus[0].left > -OVERSELL_BY else None
        else:
            tier = self.inventory.choose(self.rng, self.focus if focused else None)
        if tier is None or (tier.left <= 0 and not unchecked):
            self.tally.add("turned_away")
            return
        quantity = int(pick_weighted(self.rng, QUANTITIES))
        if unchecked:
            quantity = max(1, min(quantity, tier.left + OVERSELL_BY))
        else:
            quantity = min(quantity, tier.left)  # the app's inventory check
        session = Session(
            id=f"cs_demo_{self.rng.getrandbits(96):024x}",
            tier=tier,
            quantity=quantity,
            expires_at=elapsed + self._real(self.settings.checkout_ttl),
        )
        self.writer.open_session(session.id, tier.row.id, quantity, session.expires_at - elapsed)
        tier.taken += quantity
        self._sessions[session.id] = session
        self.tally.add("sessions")
        if self.rng.random() < self.settings.abandon_share:
            self.timers.add(session.expires_at, "expire", session)
        else:
            self.timers.add(elapsed + self._real_between(self.settings.think_time), "pay", session)

    def _act(self, action: str, subject: object, elapsed: float, now: Effects) -> None:
        if action == "pay" and isinstance(subject, Session):
            self._pay(subject, elapsed)
        elif action == "settle" and isinstance(subject, Session):
            self._settle(subject, elapsed, now)
        elif action == "expire" and isinstance(subject, Session):
            if subject.pending is not None:  # a payment in flight settles first
                self.timers.add(elapsed + self.settings.tick, "expire", subject)
            else:
                self._expire(subject, elapsed, now, early=False)
        elif action == "refund" and isinstance(subject, Paid):
            self._refund(subject, elapsed, now)
        elif action == "webhook" and isinstance(subject, tuple):
            self._webhook(subject[0], subject[1], now, elapsed, attempt=subject[2])

    def _pay(self, session: Session, elapsed: float) -> None:
        if session.done:
            return
        if elapsed >= session.expires_at:  # a retry too late: the session lapses now
            self.timers.add(elapsed, "expire", session)
            return
        tier = session.tier.row
        member = self.rng.random() < self.settings.member_share
        discount = self.rng.choice((0.10, 0.15, 0.20)) if member else 0.0
        amount = round(session.quantity * tier.price_cents * (1 - discount))
        session.amount_cents = amount
        session.pending = self.writer.place_order(
            session.id,
            tier.id,
            session.quantity,
            amount,
            tier.currency,
            pick_weighted(self.rng, PAYMENT_METHODS),
            member,
            f"buyer{self.rng.randrange(150_000)}@example.com",
        )
        self.timers.add(elapsed + self._real_between(self.settings.processing), "settle", session)

    def _settle(self, session: Session, elapsed: float, now: Effects) -> None:
        order_id = session.pending
        if order_id is None:
            return
        session.pending = None
        if self.rng.random() < now.failure_share:
            self.writer.fail(order_id, pick_weighted(self.rng, now.failure_codes))
            self.tally.add("failed")
            self._webhook("stripe", "payment_intent.payment_failed", now, elapsed)
            if self.rng.random() < self.settings.retry_share:
                self.timers.add(elapsed + self._real_between((10.0, 60.0)), "pay", session)
            else:
                self.timers.add(session.expires_at, "expire", session)
            return
        self.writer.pay(order_id, session.id)
        self._close(session)
        self.tally.add("paid")
        self.tally.add("tickets", session.quantity)
        self._webhook("stripe", "payment_intent.succeeded", now, elapsed)
        self._webhook("stripe", "checkout.session.completed", now, elapsed)
        self._text(order_id, now, elapsed)
        amount = session.amount_cents
        draw = self.rng.random()
        if draw < self.settings.refund_share + self.settings.partial_refund_share:
            full = draw < self.settings.refund_share
            paid = Paid(
                order_id=order_id,
                tier=session.tier,
                quantity=session.quantity,
                amount_cents=amount,
                full=full,
            )
            self.timers.add(
                elapsed + self._real_between(self.settings.refund_after), "refund", paid
            )

    def _refund(self, paid: Paid, elapsed: float, now: Effects) -> None:
        # A partial refund is a goodwill credit: the buyer keeps the tickets.
        amount = paid.amount_cents if paid.full else round(paid.amount_cents * 0.3)
        self.writer.refund(paid.order_id, amount, paid.full)
        if paid.full:
            paid.tier.taken -= paid.quantity
        self.tally.add("refunds")
        self._webhook("stripe", "charge.refunded", now, elapsed)

    def _expire(self, session: Session, elapsed: float, now: Effects, *, early: bool) -> None:
        if session.done:
            return
        self._close(session)
        self.writer.expire(session.id, now=early)
        session.tier.taken -= session.quantity
        self.tally.add("expired")
        if not early:
            self._webhook("stripe", "checkout.session.expired", now, elapsed)

    def _text(self, order_id: int, now: Effects, elapsed: float) -> None:
        failed = self.rng.random() < now.sms_failure_share
        code = pick_weighted(self.rng, now.sms_errors) if failed else None
        status = ("undelivered" if self.rng.random() < 0.7 else "failed") if failed else "delivered"
        if self.sms is not None:
            self.sms.deliver(SmsOutcome(order_id, status, code))
        self.tally.add("texts")
        self.tally.add("texts_failed", int(failed))
        self._webhook("twilio", "message.status", now, elapsed)

    def _webhook(
        self, provider: str, event_type: str, now: Effects, elapsed: float, attempt: int = 0
    ) -> None:
        error = None
        if self.rng.random() < now.webhook_error_share:
            error = self.rng.choice(now.webhook_errors or WEBHOOK_ERRORS)
        self.writer.webhook(provider, event_type, error)
        self.tally.add("webhooks")
        self.tally.add("webhook_errors", int(error is not None))
        if error is not None and provider == "stripe" and attempt < 3:
            due = elapsed + self._real(self.settings.webhook_retry * 2**attempt)
            self.timers.add(due, "webhook", (provider, event_type, attempt + 1))

    def _close(self, session: Session) -> None:
        session.done = True
        self._sessions.pop(session.id, None)

    # --- timeline ----------------------------------------------------------------------

    def _enter(self, phase: Phase, elapsed: float) -> None:
        self.phase = phase
        scenario = self.scenario
        if scenario is None:
            return
        if phase is Phase.INCIDENT:
            if scenario.focus == "fewest_left_ga":
                self.focus = self.inventory.fewest_left_ga()
            elif scenario.focus == "fewest_left_event":
                self.focus = self.inventory.fewest_left_event()
            where = ", ".join(f"{t.row.event} {t.row.tier} ({t.left} left)" for t in self.focus)
            expect = ", ".join(scenario.expected_alerts)
            text = f"INCIDENT {scenario.name}: {scenario.summary}"
            self.report(self._say(elapsed, text + (f" [{where}]" if where else "")))
            self.report(self._say(elapsed, f"  expect: {expect}"))
        elif phase is Phase.RECOVERY:
            if scenario.incident.oversell:
                for tier in self.focus:
                    if tier.left < 0:
                        seats = -tier.left + 5
                        self.writer.add_seats(tier.row.id, seats)
                        tier.row = replace(tier.row, capacity=tier.row.capacity + seats)
            self.focus = []
            self.report(self._say(elapsed, f"RECOVERY {scenario.name}: {scenario.fix}"))

    def _intro(self) -> str:
        tiers = len(self.inventory.tiers)
        text = f"selling {tiers} tiers of events on sale at {self.demo_clock.speed:g}x speed"
        if self.scenario is not None and self.timeline is not None:
            text += (
                f"; {self.scenario.name} starts at +{self.timeline.start_after:g}s "
                f"and lasts {self.timeline.duration:g}s"
            )
        return text

    def _say(self, elapsed: float, text: str) -> str:
        local = self.demo_clock.local(elapsed)
        return f"[{elapsed:+6.0f}s {local:%a %H:%M}] {text}"

    def _real(self, virtual_seconds: float) -> float:
        return self.demo_clock.real(virtual_seconds)

    def _real_between(self, bounds: tuple[float, float]) -> float:
        return self._real(self.rng.uniform(*bounds))
