"""Inventory panels of the operations dashboard: tickets left per tier, coloured by the
inventory alerts of that tier."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge
from grafana_foundation_sdk.models import common

from exporter.generate.grafana.kit import (
    OK,
    SEVERITY_COLOURS,
    Board,
    query,
    reduce_last,
    runbook_links,
    steps,
)
from exporter.generate.grafana.queries import SELECTOR
from exporter.generate.thresholds import Thresholds

AVAILABLE = "boxoffice_inventory_available_tickets"
SOLD_OUT = "blue"  # a success, told once: not the colour of a page


def inventory_steps(th: Thresholds, tier: str | None) -> list[tuple[float | None, str]]:
    """Colours of available tickets for ``tier`` (None: tiers without a threshold of their
    own): oversold, sold out, critical, low, fine.

    The inventory alerts compare ``<=`` on whole tickets, so a threshold n starts at n + 1
    for the milder colour.
    """
    alerts = th.alerts
    pairs: list[tuple[float | None, str]] = []
    oversold, sold_out = alerts["InventoryOversold"], alerts["InventorySoldOut"]
    pairs.append((None, "dark-red" if oversold.enabled else OK))
    if sold_out.enabled:
        pairs.append((0, SOLD_OUT))
    levels = []
    for name in ("InventoryCritical", "InventoryLow"):
        alert = alerts[name]
        # As the alerts read them: a tier's own threshold, else the `default` one.
        limits = dict(alert.thresholds)
        limit = limits.get(tier or "default", limits.get("default"))
        if alert.enabled and limit is not None:
            levels.append((limit, SEVERITY_COLOURS[alert.severity or "medium"]))
    start = 1.0
    for limit, colour in sorted(levels):
        if limit + 1 > start:
            pairs.append((start, colour))
            start = limit + 1
    pairs.append((start, OK))
    return pairs


def inventory_panels(board: Board, th: Thresholds) -> None:
    board.row("Inventory")
    tiers = sorted(
        {
            k
            for name in ("InventoryLow", "InventoryCritical")
            for k, _ in th.alerts[name].thresholds
            if k != "default"
        }
    )
    panels: list[tuple[str, str, str | None]] = [
        (f"Tickets left: {tier}", f'{SELECTOR}, tier="{tier}"', tier) for tier in tiers
    ]
    if tiers:
        others = "|".join(tiers)
        panels.append(("Tickets left: other tiers", f'{SELECTOR}, tier!~"{others}"', None))
    width = max(6, 24 // max(1, len(panels)))
    for title, selector, tier in panels:
        board.add(
            bargauge.Panel()
            .title(title)
            .description(
                "Available tickets (capacity - sold + refunded - held by open checkouts) per "
                "event and city; colours are the inventory alert thresholds of this tier."
            )
            .with_target(
                query(
                    f"max by (event, city, tier) ({AVAILABLE}{{{selector}}})",
                    "{{city}} · {{event}} · {{tier}}",
                    instant=True,
                )
            )
            .unit("none")
            .decimals(0)
            .min(0)
            .display_mode(common.BarGaugeDisplayMode.BASIC)
            .orientation(common.VizOrientation.HORIZONTAL)
            .reduce_options(reduce_last())
            .thresholds(steps(*inventory_steps(th, tier)))
            .links(
                runbook_links(
                    th, "InventoryLow", "InventoryCritical", "InventorySoldOut", "InventoryOversold"
                )
            ),
            width=width,
            height=10,
        )
