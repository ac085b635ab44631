"""Prometheus beside the demo: the demo profile's rules, 1s scrapes, alerts shown as they change."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exporter.config.errors import ConfigError
from exporter.demo.live import LiveSimulator
from exporter.demo.profile import write_demo_rules
from exporter.demo.supervisor import Supervisor, SupervisorError, start_prometheus
from exporter.demo.watch import AlertWatcher

DEFAULT_LISTEN = "127.0.0.1:9090"


def prometheus_wanted(asked: bool | None, thresholds: Path, echo: Callable[[str], None]) -> bool:
    """--prometheus, --no-prometheus, or by default: when the binary and the thresholds exist."""
    if asked is False:
        return False
    missing = []
    if shutil.which("prometheus") is None:
        missing.append("prometheus is not on PATH (Debian: apt install prometheus)")
    if not thresholds.is_file():
        missing.append(f"{thresholds} not found (run the demo from the repository)")
    if missing and asked:
        echo("boxoffice: demo continues without Prometheus: " + "; ".join(missing))
    return not missing


def _free(address: str) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket() as sock:
        try:
            sock.bind((host, int(port)))
        except OSError:
            return False
    return True


class PrometheusStack:
    """Everything the demo runs besides the exporter and the simulator; :meth:`stop` undoes it.

    A later change adds Alertmanager, the SMS bridge and the notification sinks here.
    """

    def __init__(
        self,
        thresholds: Path,
        speed: float,
        target: str,
        echo: Callable[[str], None],
        *,
        listen: str | None = None,
    ) -> None:
        self.thresholds, self.speed, self.target = thresholds, speed, target
        self.listen, self.echo = listen, echo
        self.directory = Path(tempfile.mkdtemp(prefix="boxoffice-demo-"))
        self.supervisor = Supervisor(self.directory, echo)
        self.watcher: AlertWatcher | None = None

    def start(self) -> None:
        """Generate the demo rules, start Prometheus, watch its alerts (SupervisorError)."""
        rules = write_demo_rules(self.thresholds, self.speed, self.directory / "rules")
        self.echo(f"rules: {self.thresholds} with waits compressed {self.speed:g}x")
        listen = self.listen or (DEFAULT_LISTEN if _free(DEFAULT_LISTEN) else None)
        prometheus = start_prometheus(self.supervisor, self.target, rules, listen=listen)
        self.watcher = AlertWatcher(prometheus.url, self.echo)
        self.watcher.start()

    def start_or_explain(self) -> None:
        """Start; on failure say why in one line and let the demo go on without Prometheus."""
        try:
            self.start()
        except (SupervisorError, ConfigError, ValueError, OSError) as exc:
            self.echo(f"boxoffice: demo continues without Prometheus: {exc}")
            self.stop()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.supervisor.stop_all()
        shutil.rmtree(self.directory, ignore_errors=True)


@dataclass
class Companions:
    """What the demo runs beside its exporter; started once it serves, stopped on exit."""

    stack: PrometheusStack | None = None
    live: LiveSimulator | None = None

    def start(self) -> None:
        if self.stack is not None:
            self.stack.start_or_explain()
        if self.live is not None:
            self.live.start()

    def stop(self) -> None:
        """The simulator first (it settles its writes), then the processes."""
        if self.live is not None:
            self.live.stop()
        if self.stack is not None:
            self.stack.stop()
