"""What the incremental engine's totals publish: the pack's series and a reconciliation's drift.

Pure functions of the exact integer totals (:mod:`exporter.sources.streams`) and the live
tiers; :mod:`exporter.sources.incremental` reads both from the database.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from exporter.sources import streams as st
from exporter.sources.querypack import MetricSpec
from exporter.sources.samples import Sample, major_units

# The default-pack metrics the engine computes (the rest keep their SQL: index-driven gauges).
ENGINE_METRICS = frozenset(
    {
        "boxoffice_tickets_sold_total",
        "boxoffice_tickets_refunded_total",
        "boxoffice_inventory_capacity_tickets",
        "boxoffice_inventory_reserved_tickets",
        "boxoffice_inventory_available_tickets",
        "boxoffice_payments_total",
        "boxoffice_payments_failed_total",
        "boxoffice_revenue_total",
        "boxoffice_orders_paid_total",
        "boxoffice_orders_paid_tickets_total",
        "boxoffice_orders_paid_revenue_total",
        "boxoffice_refunds_total",
        "boxoffice_checkout_sessions_created_total",
        "boxoffice_checkout_sessions_completed_total",
        "boxoffice_checkout_sessions_expired_total",
        "boxoffice_webhook_events_total",
        "boxoffice_webhook_events_failed_total",
    }
)

# Which metrics each quantity feeds, for the drift a reconciliation reports.
_FEEDS: dict[str, tuple[str, ...]] = {
    st.PAID: ("boxoffice_payments_total",),
    st.SOLD: ("boxoffice_tickets_sold_total", "boxoffice_inventory_available_tickets"),
    st.REVENUE: ("boxoffice_revenue_total",),
    st.FAILED: ("boxoffice_payments_failed_total", "boxoffice_payments_total"),
    st.ORDERS_BY: ("boxoffice_orders_paid_total",),
    st.TICKETS_BY: ("boxoffice_orders_paid_tickets_total",),
    st.REVENUE_BY: ("boxoffice_orders_paid_revenue_total",),
    st.REFUNDED_TICKETS: (
        "boxoffice_tickets_refunded_total",
        "boxoffice_inventory_available_tickets",
    ),
    st.REFUNDED_AMOUNT: ("boxoffice_refunds_total",),
    st.SESSIONS_CREATED: ("boxoffice_checkout_sessions_created_total",),
    st.SESSIONS_COMPLETED: ("boxoffice_checkout_sessions_completed_total",),
    st.SESSIONS_EXPIRED: ("boxoffice_checkout_sessions_expired_total",),
    st.WEBHOOKS: ("boxoffice_webhook_events_total",),
    st.WEBHOOKS_FAILED: ("boxoffice_webhook_events_failed_total",),
}


@dataclass(frozen=True, kw_only=True)
class Tier:
    """A ticket tier of an event on sale: its labels, capacity and current reservations."""

    tier_id: str
    event: str
    city: str
    tier: str
    capacity: int
    reserved: int


def render(
    specs: Sequence[MetricSpec], totals: st.Totals, tiers: Sequence[Tier]
) -> list[tuple[MetricSpec, list[Sample]]]:
    """The default-pack series the engine computes, exactly as the pack's SQL would give them."""

    def amount(quantity: str, *key: str) -> int:
        return totals.get((quantity, *key), 0)

    # The totals per quantity, once: scanning (and sorting) every total for each metric
    # cost more than the rest of the cycle at a few thousand keys.
    by_quantity: dict[str, list[tuple[tuple[str, ...], int]]] = {}
    for key, value in totals.items():
        by_quantity.setdefault(key[0], []).append((key, value))

    def keyed(quantity: str) -> dict[str, int]:
        return {key[1]: value for key, value in by_quantity.get(quantity, ())}

    # One label tuple per tier, shared by the five per-tier metrics.
    tier_labels = [(t, (t.event, t.city, t.tier)) for t in tiers]

    def per_tier(value: Callable[[Tier], float]) -> list[Sample]:
        return [Sample(labels, float(value(t))) for t, labels in tier_labels]

    def money(quantity: str) -> list[Sample]:
        return [
            Sample((cur,), major_units(float(v), cur)) for cur, v in sorted(keyed(quantity).items())
        ]

    def breakdown(quantity: str) -> list[Sample]:
        return [Sample(key[1:], float(v)) for key, v in sorted(by_quantity.get(quantity, ()))]

    def breakdown_money(quantity: str) -> list[Sample]:
        return [Sample(s.labels, major_units(s.value, s.labels[-1])) for s in breakdown(quantity)]

    def labelled(quantity: str) -> list[Sample]:
        return [Sample((k,), float(v)) for k, v in sorted(keyed(quantity).items())]

    failed = sum(keyed(st.FAILED).values())
    builders: dict[str, Callable[[], list[Sample]]] = {
        "boxoffice_tickets_sold_total": lambda: per_tier(lambda t: amount(st.SOLD, t.tier_id)),
        "boxoffice_tickets_refunded_total": lambda: per_tier(
            lambda t: amount(st.REFUNDED_TICKETS, t.tier_id)
        ),
        "boxoffice_inventory_capacity_tickets": lambda: per_tier(lambda t: t.capacity),
        "boxoffice_inventory_reserved_tickets": lambda: per_tier(lambda t: t.reserved),
        "boxoffice_inventory_available_tickets": lambda: per_tier(
            lambda t: (
                t.capacity
                - amount(st.SOLD, t.tier_id)
                + amount(st.REFUNDED_TICKETS, t.tier_id)
                - t.reserved
            )
        ),
        "boxoffice_payments_total": lambda: [Sample((), float(amount(st.PAID) + failed))],
        "boxoffice_payments_failed_total": lambda: labelled(st.FAILED),
        "boxoffice_revenue_total": lambda: money(st.REVENUE),
        "boxoffice_orders_paid_total": lambda: breakdown(st.ORDERS_BY),
        "boxoffice_orders_paid_tickets_total": lambda: breakdown(st.TICKETS_BY),
        "boxoffice_orders_paid_revenue_total": lambda: breakdown_money(st.REVENUE_BY),
        "boxoffice_refunds_total": lambda: money(st.REFUNDED_AMOUNT),
        "boxoffice_checkout_sessions_created_total": lambda: [
            Sample((), float(amount(st.SESSIONS_CREATED)))
        ],
        "boxoffice_checkout_sessions_completed_total": lambda: [
            Sample((), float(amount(st.SESSIONS_COMPLETED)))
        ],
        "boxoffice_checkout_sessions_expired_total": lambda: [
            Sample((), float(amount(st.SESSIONS_EXPIRED)))
        ],
        "boxoffice_webhook_events_total": lambda: labelled(st.WEBHOOKS),
        "boxoffice_webhook_events_failed_total": lambda: labelled(st.WEBHOOKS_FAILED),
    }
    return [(spec, builders[spec.name]()) for spec in specs]


def drift_by_metric(full: st.Totals, incremental: st.Totals) -> dict[str, float]:
    """Sum of absolute differences per metric, in the metric's own units (money: major)."""
    out = {name: 0.0 for names in _FEEDS.values() for name in names}
    for key in full.keys() | incremental.keys():
        diff = abs(full.get(key, 0) - incremental.get(key, 0))
        if not diff:
            continue
        quantity = key[0]
        # Money keys end with their currency.
        value = major_units(float(diff), key[-1]) if quantity in _MONEY else float(diff)
        for name in _FEEDS[quantity]:
            out[name] += value
    return out


_MONEY = frozenset({st.REVENUE, st.REFUNDED_AMOUNT, st.REVENUE_BY})
