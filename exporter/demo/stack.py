"""Prometheus and Alertmanager beside the demo: the demo profile's rules, 1s scrapes, alerts
shown as they change and each notification where it was delivered."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests
import yaml

from exporter.config.errors import ConfigError
from exporter.config.listen import parse_listen_address
from exporter.demo.alerting import Notifier, TwilioAccount, alertmanager_binary
from exporter.demo.live import LiveSimulator
from exporter.demo.local_twilio import LocalTwilio
from exporter.demo.profile import MIN_WINDOW, demo_profile
from exporter.demo.sinks import Inbox
from exporter.demo.supervisor import (
    Child,
    Supervisor,
    SupervisorError,
    free_port,
    start_prometheus,
    write_prometheus_config,
)
from exporter.demo.twilio_server import LocalTwilioServer
from exporter.demo.watch import AlertWatcher
from exporter.generate.alertmanager.routing_load import load_routing

DEFAULT_LISTEN = "127.0.0.1:9090"


def prometheus_wanted(asked: bool | None, thresholds: Path, echo: Callable[[str], None]) -> bool:
    """--prometheus, --no-prometheus, or by default: when the binary and the thresholds exist."""
    missing = "prometheus is not on PATH (Debian: apt install prometheus)"
    found = shutil.which("prometheus") is not None
    return _wanted("Prometheus", asked, (found, missing), thresholds, echo)


def alertmanager_wanted(asked: bool | None, routing: Path, echo: Callable[[str], None]) -> bool:
    """--alertmanager, --no-alertmanager, or by default: when the binary and routing exist."""
    missing = "alertmanager is not on PATH (Debian: apt install prometheus-alertmanager)"
    found = alertmanager_binary() is not None
    return _wanted("Alertmanager", asked, (found, missing), routing, echo)


def _wanted(
    what: str,
    asked: bool | None,
    binary: tuple[bool, str],
    needs: Path,
    echo: Callable[[str], None],
) -> bool:
    """False when switched off or something is missing; says what when it was asked for."""
    if asked is False:
        return False
    found, why = binary
    missing = [] if found else [why]
    if not needs.is_file():
        missing.append(f"{needs} not found (run the demo from the repository)")
    if missing and asked:
        echo(f"boxoffice: demo continues without {what}: " + "; ".join(missing))
    return not missing


def _free(address: str) -> bool:
    host, port = parse_listen_address(address)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class PrometheusStack:
    """Everything the demo runs besides the exporter and the simulator; :meth:`stop` undoes it.

    Prometheus with the demo profile's rules and, when ``routing`` names a routing.yaml
    and Alertmanager is installed, the notification half (:class:`Notifier`): Alertmanager
    on the generated configuration, the SMS bridge and local receivers, each delivery
    printed as a NOTIFY line.
    """

    def __init__(
        self,
        thresholds: Path,
        speed: float,
        target: str,
        echo: Callable[[str], None],
        *,
        listen: str | None = None,
        routing: Path | None = None,
        twilio: TwilioAccount | None = None,
        replies: LocalTwilioServer | None = None,
        inbox: Inbox | None = None,
        min_window: float = MIN_WINDOW,
        poll: float = 1.0,
        settle: float | None = None,
        reports_after: float | None = None,
    ) -> None:
        self.thresholds, self.speed, self.target = thresholds, speed, target
        self.echo, self.routing = echo, routing
        # Both addresses are chosen now: the exporter's status page, configured before any
        # of this starts, reads from them (status_page.prometheus_url, alertmanager_url).
        self.listen = listen or (
            DEFAULT_LISTEN if _free(DEFAULT_LISTEN) else f"127.0.0.1:{free_port()}"
        )
        self.alertmanager_listen = f"127.0.0.1:{free_port()}" if routing is not None else None
        self.twilio, self.min_window, self.poll = twilio, min_window, poll
        self.reports_after = reports_after  # seconds to the digest's slot (profile.py)
        self.replies = replies  # the local Twilio API that posts the phones' replies
        # Rules wait until Prometheus holds a full shortest window of data: a ratio over the
        # few samples of its first seconds is noise, and would page.
        self.settle = min_window if settle is None else settle
        self.rules_loaded = threading.Event()
        self._timer: threading.Timer | None = None
        self.directory = Path(tempfile.mkdtemp(prefix="boxoffice-demo-"))
        self.supervisor = Supervisor(self.directory, echo)
        self.inbox = Inbox(echo) if inbox is None else inbox
        self.watcher: AlertWatcher | None = None
        self.notifier: Notifier | None = None
        self.prometheus: Child | None = None

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.listen}"

    @property
    def alertmanager_url(self) -> str | None:
        """Where Alertmanager will listen, when the stack runs one."""
        return f"http://{self.alertmanager_listen}" if self.alertmanager_listen else None

    @property
    def alertmanager(self) -> Child | None:
        return self.notifier.alertmanager if self.notifier is not None else None

    def start(self) -> None:
        """Generate the demo rules, start Alertmanager and Prometheus, watch the alerts
        (SupervisorError, ConfigError, ValueError, OSError)."""
        ruleset, rules = demo_profile(
            self.thresholds,
            self.speed,
            self.directory / "rules",
            min_window=self.min_window,
            reports_after=self.reports_after,
        )
        self.echo(f"rules: {self.thresholds} with waits compressed {self.speed:g}x")
        th = ruleset.thresholds.file
        if self.reports_after is not None:
            self.echo(
                f"reports: daily digest at {th.digest.evening} ({th.timezone}) and the sales "
                "ticker each minute with sales, in the local Slack inbox (REPORT lines)"
            )
        alertmanager = None
        if self.routing is not None:
            routing = load_routing(str(self.routing), str(self.routing))
            self.notifier = Notifier(
                routing,
                ruleset,
                self.supervisor,
                self.inbox,
                speed=self.speed,
                twilio=self.twilio,
                replies=self.replies,
                listen=self.alertmanager_listen,
            )
            alertmanager = self.notifier.start(self.echo).url.removeprefix("http://")
        listen = self.listen
        self.prometheus = start_prometheus(
            self.supervisor,
            self.target,
            # While it settles, only the always-firing Watchdog: the bridge hears the heartbeat.
            rule_files=heartbeat_only(rules, self.directory) if self.settle else rules,
            listen=listen,
            alertmanager=alertmanager,
        )
        if self.settle:
            self.echo(f"rules: evaluated once Prometheus holds {self.settle:g}s of data")
            self._timer = threading.Timer(self.settle, self._load_rules, (rules, alertmanager))
            self._timer.daemon = True
            self._timer.start()
        else:
            self.rules_loaded.set()
        self.watcher = AlertWatcher(self.prometheus.url, self.echo, interval=self.poll)
        self.watcher.start()

    def _load_rules(self, rules: list[Path], alertmanager: str | None) -> None:
        """Give Prometheus its rules (a configuration reload)."""
        assert self.prometheus is not None
        write_prometheus_config(self.directory, self.target, rules, "1s", alertmanager)
        try:
            answer = requests.post(f"{self.prometheus.url}/-/reload", timeout=10)
        except requests.RequestException as exc:
            self.echo(f"boxoffice: Prometheus did not take its rules: {exc}")
            return
        if answer.status_code != 200:
            self.echo(f"boxoffice: Prometheus did not take its rules: {answer.text.strip()}")
            return
        self.rules_loaded.set()
        self.echo("rules: loaded")

    def start_or_explain(self) -> None:
        """Start; on failure say why in one line and let the demo go on without Prometheus."""
        try:
            self.start()
        except (SupervisorError, ConfigError, ValueError, OSError) as exc:
            self.echo(f"boxoffice: demo continues without Prometheus: {exc}")
            self.stop()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.watcher is not None:
            self.watcher.stop()
        self.supervisor.stop_all()  # Prometheus, then Alertmanager: nothing sends any more
        if self.notifier is not None:
            self.notifier.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def heartbeat_only(rules: list[Path], directory: Path) -> list[Path]:
    """A rule file holding only the Watchdog rule of ``rules`` (none when it has none)."""
    kept: list[dict[str, object]] = []
    for path in rules:
        for group in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups", []):
            watchdog = [r for r in group.get("rules", []) if r.get("alert") == "Watchdog"]
            if watchdog:
                kept.append({**group, "rules": watchdog})
    if not kept:
        return []
    out = directory / "heartbeat.rules.yml"
    out.write_text(yaml.safe_dump({"groups": kept}, sort_keys=False), encoding="utf-8")
    return [out]


@dataclass
class Companions:
    """What the demo runs beside its exporter; started once it serves, stopped on exit."""

    stack: PrometheusStack | None = None
    live: LiveSimulator | None = None
    # Started by its configure(), before the exporter, unless the config has a Twilio source.
    twilio: LocalTwilio = field(default_factory=LocalTwilio)

    def start(self) -> None:
        """The simulator first: Prometheus, starting a few seconds later, then watches a shop
        already trading rather than one whose first checkouts have not converted yet."""
        if self.live is not None:
            self.live.start()
        if self.stack is not None:
            self.stack.start_or_explain()

    def stop(self) -> None:
        """The simulator first (it settles its writes), then the local Twilio, the processes."""
        if self.live is not None:
            self.live.stop()
        self.twilio.stop()
        if self.stack is not None:
            self.stack.stop()
