"""The terminal's view of Prometheus' alerts: one line when an alert fires, one when it resolves."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import requests

Key = tuple[tuple[str, str], ...]
Firing = dict[Key, tuple[Mapping[str, str], int]]  # one alert -> its labels, highest tier
_HIDDEN = {"alertname", "severity", "escalation", "category", "job", "instance"}


def _describe(labels: Mapping[str, str]) -> str:
    rest = ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in _HIDDEN)
    text = f"{labels.get('alertname', '?')} severity={labels.get('severity', '?')}"
    return text + (f" {{{rest}}}" if rest else "")


def transitions(before: Firing, alerts: Iterable[Mapping[str, Any]]) -> tuple[Firing, list[str]]:
    """Firing alerts now and the lines saying what changed since ``before``.

    The generated rules repeat an alert per escalation tier; the terminal shows the alert
    once, then each tier it reaches, then its resolution.
    """
    now: Firing = {}
    for alert in alerts:
        if alert.get("state") != "firing":
            continue
        labels = dict(alert["labels"])
        tier = int(labels.get("escalation", "1") or 1)
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "escalation"))
        if key not in now or now[key][1] < tier:
            now[key] = (labels, tier)
    lines = []
    for key in sorted(now.keys() | before.keys()):
        if key not in now:
            lines.append(f"ALERT RESOLVED  {_describe(before[key][0])}")
        elif key not in before:
            lines.append(f"ALERT FIRING    {_describe(now[key][0])} tier={now[key][1]}")
        elif now[key][1] > before[key][1]:
            lines.append(f"ALERT ESCALATED {_describe(now[key][0])} tier={now[key][1]}")
    return now, lines


class AlertWatcher:
    """Polls ``/api/v1/alerts`` every ``interval`` seconds on a thread until stopped."""

    def __init__(
        self,
        url: str,
        echo: Callable[[str], None],
        *,
        interval: float = 1.0,
        max_polls: int = 4 * 3600,
    ) -> None:
        self.url = url
        self.echo = echo
        self.interval = interval
        self.max_polls = max_polls
        self.firing: Firing = {}
        self.seen: list[str] = []  # every line shown, in order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-alerts", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def poll(self) -> None:
        """One look at Prometheus; failures are quiet (Prometheus may be restarting)."""
        try:
            response = requests.get(f"{self.url}/api/v1/alerts", timeout=2)
            alerts = response.json()["data"]["alerts"]
        except (requests.RequestException, ValueError, KeyError, TypeError):
            return
        self.firing, lines = transitions(self.firing, alerts)
        for line in lines:
            self.seen.append(line)
            self.echo(line)

    def _run(self) -> None:
        for _ in range(self.max_polls):
            if self._stop.wait(self.interval):
                return
            self.poll()
