"""The alerting pipeline's heartbeat: Alertmanager's Watchdog in, "pipeline down" SMS out.

The generated rules hold an always-firing ``Watchdog`` alert that Alertmanager sends to
``POST /heartbeat`` every ``heartbeat.interval`` of routing.yaml. Each one is recorded
(:mod:`exporter.smsbridge.beats`). A background check, a few times per ``timeout``, finds
when none arrived for ``heartbeat_timeout`` and texts the heartbeat group, itself, through
Twilio, that the alerting pipeline is down: Prometheus, Alertmanager or the path between
them and this bridge is broken, so no alert reaches anyone. It texts once, and once more
when heartbeats arrive again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge

from exporter.catalog import BRIDGE_PIPELINE_DOWN
from exporter.smsbridge.beats import Beat, Beats, Telling
from exporter.smsbridge.metrics import BridgeMetrics
from exporter.smsbridge.sender import Sender, SendError, mask
from exporter.smsbridge.store import StoreError
from exporter.smsbridge.text import fit, measure

log = logging.getLogger(__name__)


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M UTC")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f}s"


def pipeline_text(telling: Telling, *, now: float) -> str:
    """The SMS for a change of the pipeline's state."""
    if telling.state == "down":
        return (
            f"boxoffice ALERTING DOWN: no heartbeat from Alertmanager since "
            f"{_clock(telling.last_beat)} ({_minutes(now - telling.last_beat)}). Alerts may "
            "reach nobody: check Prometheus, Alertmanager and the SMS bridge."
        )
    return (
        f"boxoffice alerting back: Alertmanager's heartbeat arrives again since "
        f"{_clock(telling.since)}. Alerts are delivered again."
    )


class HeartbeatMetrics:
    """The heartbeat's series on the bridge's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        prefix = "boxoffice_sms_bridge"
        self.received = Counter(
            f"{prefix}_heartbeats_received",
            "Watchdog heartbeats received from Alertmanager (POST /heartbeat).",
            registry=registry,
        )
        self.last = Gauge(
            f"{prefix}_last_heartbeat_timestamp_seconds",
            "When the last heartbeat arrived (at any bridge sharing the store).",
            registry=registry,
        )
        self.down = Gauge(
            BRIDGE_PIPELINE_DOWN,
            "1 while no heartbeat arrived for heartbeat_timeout: the alerting pipeline is down.",
            registry=registry,
        )
        self.texts = Counter(
            f"{prefix}_pipeline_texts_sent",
            "SMS telling the heartbeat group that the alerting pipeline is down or back.",
            ["state"],
            registry=registry,
        )
        for state in ("down", "up"):
            self.texts.labels(state)


class HeartbeatWatch:
    """Records heartbeats; ``check`` (or the ``start``-ed loop) texts changes of state."""

    def __init__(
        self,
        *,
        beats: Beats,
        sender: Sender,
        recipients: Sequence[str] | None,
        timeout: float,
        request_timeout: float,
        max_segments: int,
        metrics: BridgeMetrics,
        registry: CollectorRegistry,
        wall: Callable[[], float] = time.time,
        interval: float | None = None,
    ) -> None:
        self._beats = beats
        self._sender = sender
        self._recipients = tuple(recipients or ())
        self._timeout = timeout
        self._request_timeout = request_timeout
        self._max_segments = max_segments
        self._metrics = metrics
        self._own = HeartbeatMetrics(registry)
        self._wall = wall
        # A few checks per timeout: the text goes out at most a quarter timeout late.
        self._interval = interval if interval is not None else min(max(timeout / 4, 0.2), 15.0)
        # Recipients already texted per telling, so a retry after a failure texts the rest.
        self._texted: dict[tuple[str, float], set[str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def lease(self) -> float:
        """How long a claim to text protects the texting bridge."""
        return self._request_timeout * max(1, len(self._recipients)) + 5.0

    def received(self) -> None:
        """A heartbeat arrived; StoreError when it cannot be recorded."""
        beat = self._beats.beat(self._wall())
        self._own.received.inc()
        self._show(beat)

    def check(self) -> Telling | None:
        """Look once; text the group when the state changed. What was texted, if anything."""
        now = self._wall()
        beat, telling = self._beats.check(now=now, timeout=self._timeout, lease=self.lease)
        self._show(beat)
        if telling is None:
            return None
        if not self._recipients:
            log.warning(
                "alerting pipeline %s (no heartbeat_group to text)",
                "DOWN: no heartbeat" if telling.state == "down" else "back",
            )
            self._beats.finish(telling, told=True)
            return telling
        told = self._tell(telling, now)
        self._beats.finish(telling, told=told)
        return telling if told else None

    def _tell(self, telling: Telling, now: float) -> bool:
        if telling.state == "down":
            log.error("alerting pipeline DOWN: no heartbeat since %s", _clock(telling.last_beat))
        else:
            log.warning("alerting pipeline back: heartbeats arrive again")
        body = fit(pipeline_text(telling, now=now), self._max_segments)
        done = self._texted.setdefault((telling.state, telling.since), set())
        for to in self._recipients:
            if to in done:
                continue
            try:
                sent = self._sender.send(to, body, timeout=self._request_timeout)
            except SendError as exc:
                self._metrics.failed.labels(exc.reason).inc()
                log.warning("pipeline %s SMS to %s not sent: %s", telling.state, mask(to), exc)
                continue
            done.add(to)
            self._metrics.sent.inc()
            self._metrics.segments.inc(measure(body).segments)
            self._own.texts.labels(telling.state).inc()
            log.info("pipeline %s SMS to %s sent as %s", telling.state, mask(to), sent.sid)
        if len(done) < len(self._recipients):
            return False
        del self._texted[(telling.state, telling.since)]
        return True

    def _show(self, beat: Beat) -> None:
        self._own.last.set(beat.last_beat)
        self._own.down.set(1 if beat.state == "down" else 0)

    def start(self) -> None:
        """Record the start (a grace of one timeout), then check in a background thread."""
        self._show(self._beats.start(self._wall()))
        self._thread = threading.Thread(target=self._loop, name="sms-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.check()
            except StoreError as exc:
                log.warning("cannot check the heartbeat: %s", exc)
            except Exception:  # a bug must not end the watch: the pipeline would go unwatched
                log.exception("heartbeat check failed; trying again")

    def stop(self) -> None:
        """Stop the loop; a text being sent finishes (bounded by the request timeouts)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.lease + 5)
