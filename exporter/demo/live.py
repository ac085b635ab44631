"""The simulator on a background thread, as `boxoffice demo` runs it beside the exporter."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time
from time import monotonic
from zoneinfo import ZoneInfo

import psycopg

from exporter.db.shop import SELLER_TIMEZONE
from exporter.demo.scenarios import SCENARIOS, Timeline
from exporter.demo.shape import DemoClock
from exporter.demo.simulator import Limits, Settings, Simulator, SmsGateway
from exporter.demo.store import ShopWriter

MAX_RESUMES = 100  # database outages a demo rides out
RETRY_EVERY = 2.0  # seconds between connection attempts while the database is away


@dataclass(frozen=True, kw_only=True)
class LiveOptions:
    scenario: str | None = None
    speed: float = 60.0
    start_after: float = 60.0  # real seconds of normal sales before the incident
    incident_for: float = 180.0  # real seconds the incident lasts
    run_for: float = 4 * 3600.0  # real seconds; the simulator stops after this
    local_start: time = time(11, 0)  # the seller's clock when the demo starts
    seed: int | None = None
    # A seller busy enough for the payment rules' minimum traffic (20 payments in 5 minutes).
    peak_per_hour: float = 600.0


class LiveSimulator:
    """Starts the simulator on its own connection and thread; :meth:`stop` ends it cleanly."""

    def __init__(
        self,
        dsn: str,
        options: LiveOptions,
        echo: Callable[[str], None],
        *,
        sms: SmsGateway | None = None,
        today: datetime | None = None,
    ) -> None:
        if options.scenario is not None and options.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {options.scenario!r}")
        zone = ZoneInfo(SELLER_TIMEZONE)
        day = (today or datetime.now(zone)).astimezone(zone).date()
        self._clock = DemoClock(datetime.combine(day, options.local_start, zone), options.speed)
        self._dsn, self._options, self._echo, self._sms = dsn, options, echo, sms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-simulator", daemon=True)
        self.error: BaseException | None = None  # the last database error, None once resumed

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the simulator to settle and stop; wait for it (bounded)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        options = self._options
        scenario = SCENARIOS[options.scenario] if options.scenario else None
        timeline = Timeline(options.start_after, options.incident_for) if scenario else None
        started = monotonic()
        if scenario is not None:
            for note in scenario.notes:
                self._echo(f"note: {scenario.name} {note}")
        offset = 0.0
        for resumes in range(MAX_RESUMES):
            try:
                with psycopg.connect(self._dsn, autocommit=True, connect_timeout=5) as conn:
                    if offset:
                        self.error = None
                        failed, expired = ShopWriter(conn).settle_abandoned()
                        self._echo(
                            f"simulator: database back; {failed} payments in flight failed, "
                            f"{expired} open checkouts expired"
                        )
                    simulator = Simulator(
                        conn,
                        self._clock,
                        # A resumed run draws new ids: the first run's are taken.
                        rng=random.Random(None if options.seed is None else options.seed + resumes),
                        scenario=scenario,
                        timeline=timeline,
                        settings=Settings(peak_per_hour=options.peak_per_hour),
                        limits=Limits(options.run_for),
                        sms=self._sms,
                        report=self._echo,
                    )
                    simulator.run(self._stop, offset=offset)
                return
            except psycopg.OperationalError as exc:  # the server went away: wait for it
                self.error = exc
                self._echo(f"simulator paused: {_first_line(exc)}; retrying every 2s")
                if not self._wait_for_database():
                    return
                offset = monotonic() - started
            except psycopg.Error as exc:  # anything else is a bug: keep serving what is there
                self.error = exc
                self._echo(f"simulator stopped: {_first_line(exc)}")
                return

    def _wait_for_database(self) -> bool:
        """Until a connection succeeds (True) or the demo stops (False); bounded."""
        for _ in range(int(self._options.run_for / RETRY_EVERY) + 1):
            if self._stop.wait(RETRY_EVERY):
                return False
            try:
                with psycopg.connect(self._dsn, connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                continue
        return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
