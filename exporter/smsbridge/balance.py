"""The Twilio balance of the account the bridge pages through, as a gauge.

The exporter's Twilio source watches the shop's account; the bridge may send from another
one, and a page refused for lack of credit is a page lost. A background thread reads the
balance every ``balance_interval``, the first one interval after start (Twilio's Balance
resource, through the SDK) into
``boxoffice_sms_bridge_twilio_balance{currency}``; a failed read drops the series, so a
stale number never looks fresh, and counts in ``..._balance_errors_total{reason}``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from exporter.catalog import BRIDGE_TWILIO_BALANCE
from exporter.sources.pacing import BudgetedSession, SourceError
from exporter.sources.twilio_api import TwilioApi, make_client

log = logging.getLogger(__name__)

Fetch = Callable[[], tuple[float, str]]


def twilio_balance(*, account_sid: str, auth_token: str, api_base: str, timeout: float) -> Fetch:
    """Reads the balance through the Twilio SDK, each read within ``timeout`` seconds."""
    session = BudgetedSession()
    api = TwilioApi(
        make_client(account_sid, auth_token, api_base=api_base, session=session, timeout=timeout),
        account_sid,
    )

    def fetch() -> tuple[float, str]:
        session.begin(timeout)
        return api.balance()

    return fetch


class BalanceWatch:
    """Reads the balance now (``poll``) and then every ``interval`` seconds (``start``)."""

    def __init__(self, fetch: Fetch, *, registry: CollectorRegistry, interval: float) -> None:
        self._fetch = fetch
        self._interval = interval
        self._gauge = Gauge(
            BRIDGE_TWILIO_BALANCE,
            "Balance of the Twilio account the bridge sends through; at 0 Twilio refuses SMS.",
            ["currency"],
            registry=registry,
        )
        self._errors = Counter(
            "boxoffice_sms_bridge_balance_errors",
            "Failed reads of the Twilio balance, by reason; the balance series is dropped "
            "until a read succeeds.",
            ["reason"],
            registry=registry,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> bool:
        """Read once; False (series dropped) when Twilio cannot tell."""
        try:
            amount, currency = self._fetch()
        except SourceError as exc:
            self._errors.labels(exc.reason).inc()
            self._gauge.clear()
            log.warning("cannot read the Twilio balance: %s", exc)
            return False
        self._gauge.clear()
        self._gauge.labels(currency).set(amount)
        return True

    def start(self) -> None:
        """Poll every interval in a background thread until ``stop``."""
        self._thread = threading.Thread(target=self._loop, name="sms-balance", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        # The first read waits one interval too: a bridge restarting in a loop must not
        # spend Twilio's rate limit on balances, and the series appears within the interval.
        while not self._stop.wait(self._interval):
            try:
                self.poll()
            except Exception:  # a bug must not end the loop
                log.exception("balance read failed; trying again")

    def stop(self) -> None:
        """Stop the loop; a read in progress ends within its timeout."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
