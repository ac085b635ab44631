"""A healthy shop's raw exporter series, with incidents injected on top.

The model is aggregate, not per buyer: each scrape interval draws checkout sessions from the
seasonal demand, completes a share of them a few minutes later (so completion dips while an
on-sale surge opens sessions faster than they close), charges the completed ones with issuer
declines on top, and sends the SMS and webhooks that follow. Every series is the one
SPEC 4.2 names, with the labels the exporter publishes. This module is long because it is one
state machine; splitting it would scatter the shop's state over several files.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

from exporter.quality.catalogue import (
    ONSALE_DECAY_S,
    TICKETS_PER_ORDER,
    TIER_SHARE,
    Tier,
    catalogue,
    onsale_moment,
)
from exporter.quality.corpus import Corpus, Window
from exporter.quality.incidents import Incident, Kind
from exporter.quality.profiles import (
    BAD_NUMBER_CODES,
    DECLINE_CODES,
    HOURLY_SHAPE,
    WEEKLY_SHAPE,
    ShopProfile,
)
from exporter.quality.sampling import binomial, poisson, split

_COMPLETE_AFTER_S = 300
_EXPIRE_AFTER_S = 1800
_PROVIDER_CODES = (("30008", 0.6), ("30001", 0.4))
_TESTING_CODES = (("card_declined", 0.6), ("incorrect_cvc", 0.3), ("expired_card", 0.1))
_COMPONENTS = ("database", "redis", "stripe")


class _Shop:
    """The shop's running state; ``step`` advances it one scrape interval and records it."""

    def __init__(
        self,
        profile: ShopProfile,
        window: Window,
        incidents: tuple[Incident, ...],
        tz: ZoneInfo,
        rng: random.Random,
    ) -> None:
        self.p = profile
        self.w = window
        self.incidents = incidents
        self.tz = tz
        self.rng = rng
        self.corpus = Corpus(window=window)
        self.onsale_at = onsale_moment(profile, window, tz)
        self.tiers = catalogue(profile, window, self.onsale_at)
        self.pending: dict[int, list[tuple[Tier, int, int, bool]]] = {}
        self.c: defaultdict[str, float] = defaultdict(float)
        self.codes: dict[str, dict[str, float]] = {"pay": {}, "sms": {}}
        self.last_paid = window.start - 600.0
        self.twilio_balance = profile.twilio_recharge_below_usd + profile.twilio_recharge_usd
        self.stripe_pending_usd = 0.0
        self.disputes_open = 0.0
        self.backlog = 0.0
        self.last_success: dict[str, float] = {}
        self.oversold: tuple[Tier, int] | None = None
        self.system_failed = 0
        mean_hour = sum(HOURLY_SHAPE) / 24
        mean_day = sum(WEEKLY_SHAPE) / 7
        self.hourly = [h / mean_hour for h in HOURLY_SHAPE]
        self.weekly = [d / mean_day for d in WEEKLY_SHAPE]

    def _active(self, t: float, kind: Kind) -> Incident | None:
        for incident in self.incidents:
            if incident.kind is kind and incident.start <= t < incident.end:
                return incident
        return None

    def _harm(self, incident: Incident, amount: float) -> None:
        """Tally what ``incident`` cost the shop (see incidents.EFFECT_UNITS)."""
        index = self.incidents.index(incident)
        self.corpus.effects[index] = self.corpus.effects.get(index, 0.0) + amount

    def _add(self, name: str, amount: float) -> float:
        self.c[name] = self.c.get(name, 0.0) + amount
        return self.c[name]

    def _count_codes(self, group: str, counts: dict[str, int]) -> None:
        bucket = self.codes[group]
        for code, n in counts.items():
            bucket[code] = bucket.get(code, 0.0) + n

    def _completion(self, t: float) -> float:
        rate = self.p.checkout_completion
        drift = self._active(t, Kind.CONVERSION_DRIFT)
        if drift is not None:
            rate *= 1 - 0.5 * min(1.0, (t - drift.start) / 86400)
        if self._active(t, Kind.CHECKOUT_BROKEN) is not None:
            rate = 0.0
        return rate

    def _open_sessions(self, step: int, t: float) -> int:
        local = datetime.fromtimestamp(t, self.tz)
        base = self.p.orders_per_day / 86400 * self.w.interval
        seasonal = base * self.hourly[local.hour] * self.weekly[local.weekday()]
        spike = 0.0
        if t >= self.onsale_at:
            spike = (
                base * (self.p.onsale_spike - 1) * math.exp(-(t - self.onsale_at) / ONSALE_DECAY_S)
            )
        live = [x for x in self.tiers if x.on_sale(t) and not x.onsale]
        events = max(1, len({x.event for x in live}))
        complete_in = max(1, round(_COMPLETE_AFTER_S / self.w.interval))
        expire_in = max(complete_in + 1, round(_EXPIRE_AFTER_S / self.w.interval))
        completion = self._completion(t)
        created = 0
        for tier in self.tiers:
            if not tier.on_sale(t):
                continue
            orders = spike if tier.onsale else seasonal / events
            mean = orders * TIER_SHARE[tier.tier] / max(self.p.checkout_completion, 0.05)
            n = poisson(self.rng, mean)
            seats = max(0, tier.available)
            n = min(n, (seats + 1) // 2)
            if n == 0:
                continue
            created += n
            lost = n * (self.p.checkout_completion - completion)
            if lost > 0:
                # Expected, not drawn: the tally must not move the random stream.
                cause = self._active(t, Kind.CHECKOUT_BROKEN) or self._active(
                    t, Kind.CONVERSION_DRIFT
                )
                if cause is not None:
                    self._harm(cause, lost)
            hold = min(2 * n, seats)
            tier.reserved += hold
            completing = binomial(self.rng, n, completion)
            hold_completing = min(hold, 2 * completing)
            due = self.pending.setdefault(step + complete_in, [])
            due.append((tier, completing, hold_completing, True))
            due = self.pending.setdefault(step + expire_in, [])
            due.append((tier, n - completing, hold - hold_completing, False))
        return created

    def _close_sessions(self, step: int, t: float) -> tuple[int, int, int, float]:
        """Sessions due now: (orders paid, sessions expired, tickets sold, revenue)."""
        paid = expired = tickets = 0
        revenue = 0.0
        outage = self._active(t, Kind.PROCESSOR_OUTAGE)
        broken = self._active(t, Kind.CHECKOUT_BROKEN)
        system_failed = 0
        for tier, sessions, hold, completes in self.pending.pop(step, []):
            tier.reserved -= hold
            if not completes:
                expired += sessions
                continue
            completing = sessions
            if outage is not None:
                failed = binomial(self.rng, completing, outage.severity)
                system_failed += failed
                self._harm(outage, failed)
                expired += failed
                completing -= failed
            wanted = completing + poisson(self.rng, completing * (TICKETS_PER_ORDER - 1))
            room = max(0, tier.capacity - tier.sold + tier.refunded - max(0, tier.reserved))
            sold = min(wanted, room)
            orders = min(completing, sold)
            expired += completing - orders
            if broken is not None:
                # A buyer who opened checkout before it broke cannot pay either: sessions in
                # flight expire (the draws still happen, so the random stream is unchanged).
                binomial(self.rng, sold, self.p.refund_rate)
                self._harm(broken, orders)
                expired += orders
                continue
            tier.sold += sold
            refunded = binomial(self.rng, sold, self.p.refund_rate)
            tier.refunded += refunded
            self._add("refund_usd", refunded * self.p.ticket_price_usd)
            paid += orders
            tickets += sold
            revenue += sold * self.p.ticket_price_usd
        self.system_failed = system_failed
        return paid, expired, tickets, revenue

    def _oversell(self, t: float) -> None:
        incident = self._active(t, Kind.OVERSELL)
        if incident is not None and self.oversold is None:
            live = [x for x in self.tiers if x.on_sale(t)]
            if live:
                tier = min(live, key=lambda x: x.available)
                extra = max(0, tier.available) + int(incident.severity)
                tier.sold += extra
                self.oversold = (tier, extra)
        elif incident is None and self.oversold is not None:
            tier, extra = self.oversold
            tier.refunded += extra  # the double-sold seats are refunded: the fix
            self.oversold = None

    def _payments(self, t: float, paid: int) -> int:
        """Failed charge attempts this step: issuer declines, card testing, system failures."""
        p, rng = self.p, self.rng
        declines = poisson(rng, paid * p.decline_rate / (1 - p.decline_rate))
        codes = split(rng, declines, DECLINE_CODES)
        testing = self._active(t, Kind.CARD_TESTING)
        if testing is not None:
            # Bots test cards at their own pace, whatever the shop's size.
            per_minute = max(p.orders_per_day / 1440, 1.0) * testing.severity
            attempts = poisson(rng, per_minute * self.w.interval / 60)
            rejected = binomial(rng, attempts, 0.9)
            for code, n in split(rng, rejected, _TESTING_CODES).items():
                codes[code] = codes.get(code, 0) + n
            self._add("testing_ok", attempts - rejected)
        hiccups = poisson(rng, paid * p.system_failure_rate)
        codes["processing_error"] = self.system_failed + hiccups
        self._count_codes("pay", codes)
        return sum(codes.values())

    def _messaging(self, t: float, paid: int) -> tuple[int, float]:
        """SMS reaching a final status this step, and their cost."""
        p, rng = self.p, self.rng
        sms = poisson(rng, paid * p.sms_per_order)
        drain = self._active(t, Kind.TWILIO_DRAIN)
        pumped = 0
        if drain is not None:
            # SMS pumping with auto-recharge failing: the balance runs dry by the incident's end.
            left = (drain.end - t) / self.w.interval
            pumped = round(max(0.0, self.twilio_balance - 1.0) / max(left, 1.0) / p.sms_price_usd)
        codes = split(rng, binomial(rng, sms, p.sms_bad_number_rate), BAD_NUMBER_CODES)
        codes["30008"] = binomial(rng, sms - sum(codes.values()), p.sms_system_failure_rate)
        provider = self._active(t, Kind.SMS_PROVIDER_FAILURE)
        if provider is not None:
            lost = binomial(rng, sms - sum(codes.values()), provider.severity)
            self._harm(provider, lost)
            for code, n in split(rng, lost, _PROVIDER_CODES).items():
                codes[code] = codes.get(code, 0) + n
        self._count_codes("sms", codes)
        cost = (sms + pumped) * p.sms_price_usd
        self.twilio_balance -= cost
        if drain is None and self.twilio_balance < p.twilio_recharge_below_usd:
            self.twilio_balance += p.twilio_recharge_usd
        return sms + pumped, cost

    def _webhooks(self, t: float, stripe_events: int) -> tuple[int, int, float]:
        """Stripe webhooks logged and failed this step, and events still pending delivery."""
        delivered = stripe_events
        failed = binomial(self.rng, stripe_events, self.p.webhook_error_rate)
        if self._active(t, Kind.WEBHOOK_STALL) is not None:
            failed = stripe_events  # our handler errors; Stripe keeps retrying
            self.backlog += stripe_events
        elif self._active(t, Kind.ENDPOINT_DISABLED) is not None:
            delivered = failed = 0  # Stripe stopped sending
            self.backlog += stripe_events
        else:
            self.backlog = 0.0
        # Events a few seconds old are still pending their first delivery.
        pending = poisson(self.rng, stripe_events / self.w.interval * 3) + self.backlog
        return delivered, failed, pending

    def step(self, step: int) -> None:
        """Advance one scrape interval and record what the exporter serves at its end."""
        t = self.w.at(step)
        p, rng = self.p, self.rng
        self._oversell(t)
        created = self._open_sessions(step, t)
        paid, expired, tickets, revenue = self._close_sessions(step, t)
        if paid:
            self.last_paid = t - rng.uniform(0, self.w.interval)
        failed = self._payments(t, paid)
        messages, cost = self._messaging(t, paid)
        delivered, stripe_failed, pending = self._webhooks(t, 2 * (paid + failed) + 1)
        disputes = poisson(rng, paid * p.dispute_rate)
        self.disputes_open = self.disputes_open * math.exp(-self.w.interval / 604800) + disputes
        self.stripe_pending_usd = (
            self.stripe_pending_usd * math.exp(-self.w.interval / 172800) + revenue
        )
        counters = {
            "sessions_created": created,
            "sessions_completed": paid,
            "sessions_expired": expired,
            "payments": paid + failed,
            "attempts": paid + failed,
            "revenue": revenue,
            "paid": paid,
            "tickets": tickets,
            "sms": messages,
            "sms_cost": cost,
            "wh_stripe": delivered,
            "wh_stripe_failed": stripe_failed,
            "wh_twilio": messages,
            "wh_twilio_failed": binomial(rng, messages, p.webhook_error_rate),
            "disputes": disputes,
            "stripe_refunds": binomial(rng, paid, p.refund_rate),
        }
        for name, amount in counters.items():
            self._add(name, amount)
        self._record(step, t, pending=pending)

    def _source_live(self, t: float, source: str) -> bool:
        if self._active(t, Kind.EXPORTER_DOWN) is not None:
            return False
        down = self._active(t, Kind.SOURCE_DOWN)
        return down is None or down.target != source

    def _record(self, step: int, t: float, *, pending: float) -> None:
        put = self.corpus.put
        c = self.c
        exporter_up = self._active(t, Kind.EXPORTER_DOWN) is None
        put(step, "up", 1.0 if exporter_up else 0.0)
        if not exporter_up:
            return
        put(step, "boxoffice_build_info", 1.0, (("version", "0.1.0"),))
        for source in ("postgres", "stripe", "twilio", "http"):
            live = self._source_live(t, source)
            labels = (("source", source),)
            if live:
                self.last_success[source] = t
            else:
                self._add(f"errors_{source}", 1)
                put(
                    step,
                    "boxoffice_source_errors_total",
                    c[f"errors_{source}"],
                    (*labels, ("reason", "timeout")),
                )
            put(step, "boxoffice_source_up", 1.0 if live else 0.0, labels)
            put(step, "boxoffice_source_duration_seconds", 0.2 if live else 10.0, labels)
            if source in self.last_success:
                put(
                    step,
                    "boxoffice_source_last_success_timestamp_seconds",
                    self.last_success[source],
                    labels,
                )
        if self._source_live(t, "postgres"):
            self._record_postgres(step, t)
        if self._source_live(t, "stripe"):
            put(step, "boxoffice_stripe_charges_total", c["attempts"] + c["testing_ok"])
            for code, n in self.codes["pay"].items():
                kind = "system" if code == "processing_error" else "customer_decline"
                classed = (("failure_class", kind), ("failure_code", code))  # sorted
                put(step, "boxoffice_stripe_charges_failed_total", n, classed)
            put(step, "boxoffice_stripe_refunds_total", c["stripe_refunds"])
            put(step, "boxoffice_stripe_disputes_total", c["disputes"])
            put(step, "boxoffice_stripe_disputes_open", float(round(self.disputes_open)))
            put(
                step,
                "boxoffice_stripe_balance",
                round(self.stripe_pending_usd, 2),
                (("currency", "usd"), ("state", "pending")),
            )
            put(
                step, "boxoffice_stripe_balance", 0.0, (("currency", "usd"), ("state", "available"))
            )
            put(step, "boxoffice_stripe_events_pending_webhooks", float(pending))
            off = self._active(t, Kind.ENDPOINT_DISABLED) is not None
            put(
                step,
                "boxoffice_stripe_webhook_endpoints",
                0.0 if off else 1.0,
                (("status", "enabled"),),
            )
            put(
                step,
                "boxoffice_stripe_webhook_endpoints",
                1.0 if off else 0.0,
                (("status", "disabled"),),
            )
        if self._source_live(t, "twilio"):
            put(step, "boxoffice_sms_messages_total", c["sms"])
            for code, n in self.codes["sms"].items():
                put(step, "boxoffice_sms_messages_failed_total", n, (("error_code", code),))
            put(step, "boxoffice_sms_cost_total", round(c["sms_cost"], 4), (("currency", "usd"),))
            put(
                step,
                "boxoffice_twilio_balance",
                round(self.twilio_balance, 2),
                (("currency", "usd"),),
            )
        if self._source_live(t, "http"):
            self._record_http(step, t)

    def _record_postgres(self, step: int, t: float) -> None:
        put = self.corpus.put
        c = self.c
        for tier in self.tiers:
            if not tier.on_sale(t):
                continue
            put(step, "boxoffice_tickets_sold_total", float(tier.sold), tier.labels)
            put(step, "boxoffice_tickets_refunded_total", float(tier.refunded), tier.labels)
            put(step, "boxoffice_inventory_capacity_tickets", float(tier.capacity), tier.labels)
            put(
                step,
                "boxoffice_inventory_reserved_tickets",
                float(max(0, tier.reserved)),
                tier.labels,
            )
            put(step, "boxoffice_inventory_available_tickets", float(tier.available), tier.labels)
            put(step, "boxoffice_event_start_timestamp_seconds", tier.show, tier.labels[:2])
        put(step, "boxoffice_payments_total", c["payments"])
        for code, n in self.codes["pay"].items():
            put(step, "boxoffice_payments_failed_total", n, (("failure_code", code),))
        put(step, "boxoffice_revenue_total", round(c["revenue"], 2), (("currency", "usd"),))
        put(step, "boxoffice_refunds_total", round(c["refund_usd"], 2), (("currency", "usd"),))
        # The paid-orders breakdown, as one series: what the average order value reads.
        paid_labels = (
            ("city", "all"),
            ("currency", "usd"),
            ("member", "false"),
            ("payment_method", "card"),
            ("tier", "all"),
        )
        put(step, "boxoffice_orders_paid_total", c["paid"], paid_labels)
        put(step, "boxoffice_orders_paid_revenue_total", round(c["revenue"], 2), paid_labels)
        put(step, "boxoffice_last_paid_order_timestamp_seconds", round(self.last_paid))
        put(step, "boxoffice_checkout_sessions_created_total", c["sessions_created"])
        put(step, "boxoffice_checkout_sessions_completed_total", c["sessions_completed"])
        put(step, "boxoffice_checkout_sessions_expired_total", c["sessions_expired"])
        open_now = sum(max(0, x.reserved) for x in self.tiers) / 2
        put(step, "boxoffice_checkout_sessions_open", float(round(open_now)))
        for provider in ("stripe", "twilio"):
            labels = (("provider", provider),)
            put(step, "boxoffice_webhook_events_total", c[f"wh_{provider}"], labels)
            put(step, "boxoffice_webhook_events_failed_total", c[f"wh_{provider}_failed"], labels)

    def _record_http(self, step: int, t: float) -> None:
        put = self.corpus.put
        target = (("target", "app"),)
        probe_down = self._active(t, Kind.PROBE_FAILING) is not None
        put(step, "boxoffice_probe_success", 0.0 if probe_down else 1.0, target)
        put(step, "boxoffice_probe_status_code", 503.0 if probe_down else 200.0, target)
        put(
            step, "boxoffice_probe_duration_seconds", round(self.rng.uniform(0.04, 0.25), 3), target
        )
        sick = self._active(t, Kind.COMPONENT_UNHEALTHY)
        for i, component in enumerate(_COMPONENTS):
            down = sick is not None and int(sick.severity * 7) % len(_COMPONENTS) == i
            put(
                step,
                "boxoffice_app_component_up",
                0.0 if down else 1.0,
                (*target, ("component", component)),
            )


def simulate(
    profile: ShopProfile,
    window: Window,
    incidents: tuple[Incident, ...] = (),
    *,
    timezone: str = "America/New_York",
    seed: int = 0,
) -> Corpus:
    """The exporter's series for ``profile`` over ``window``, with ``incidents`` injected."""
    rng = random.Random(seed)  # noqa: S311 - simulated traffic, reproducible by seed
    shop = _Shop(profile, window, incidents, ZoneInfo(timezone), rng)
    for step in range(window.steps):
        shop.step(step)
    return shop.corpus
