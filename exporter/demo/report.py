"""What the simulator did: running totals and the status lines the terminal shows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(kw_only=True)
class Counts:
    sessions: int = 0
    paid: int = 0
    failed: int = 0
    expired: int = 0
    tickets: int = 0
    refunds: int = 0
    webhooks: int = 0
    webhook_errors: int = 0
    texts: int = 0
    texts_failed: int = 0
    turned_away: int = 0  # buyers who found their tier sold out


class Tally:
    """Totals since the start, and the same counts since the last status line."""

    def __init__(self) -> None:
        self.total = Counts()
        self.interval = Counts()

    def add(self, name: str, n: int = 1) -> None:
        for counts in (self.total, self.interval):
            setattr(counts, name, getattr(counts, name) + n)

    def start_interval(self) -> None:
        self.interval = Counts()

    def status_line(self) -> str:
        return "last interval: " + describe(self.interval)

    def totals_line(self) -> str:
        return describe(self.total)


def describe(c: Counts) -> str:
    payments = c.paid + c.failed
    failed = f" ({c.failed / payments:.0%} failed)" if payments else ""
    parts = [
        f"{c.sessions} checkouts",
        f"{c.paid} paid / {c.failed} failed{failed}",
        f"{c.tickets} tickets",
        f"{c.expired} expired",
        f"{c.refunds} refunds",
        f"{c.webhooks} webhooks ({c.webhook_errors} errors)",
        f"{c.texts} SMS ({c.texts_failed} failed)",
    ]
    if c.turned_away:
        parts.append(f"{c.turned_away} found it sold out")
    return ", ".join(parts)
