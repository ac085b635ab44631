"""The demo's notification half: Alertmanager on the generated configuration, the SMS bridge
and local receivers, so every alert shows where it was routed.

The Alertmanager configuration is the one `boxoffice generate` renders from
alertmanager/routing.yaml, with only what must differ on a laptop changed: receivers point
at local sinks (Slack, PagerDuty, SMTP) and the bridge, secrets are files in the demo's
directory, and the grouping waits are compressed by the demo's speed like the rules' waits.
The bridge runs in dry run (every SMS is printed, nothing is sent) unless a Twilio account
is given, as the end-to-end tests do with their local Twilio API.

The bridge closes the on-call loop as in production (docs/sms-bridge.md): it texts the
tier 1 SMS group when Alertmanager's Watchdog heartbeat stops for ``heartbeat_timeout``
(compressed by the speed), and each page of tier 1 or 2 ends with "Reply ACK <code>". A
reply is posted to its /twilio/inbound by the local Twilio API (``replies``), signed with
that API's auth token, and silences the page's higher tiers in the demo's Alertmanager.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from exporter.config.typed import Duration
from exporter.demo.sinks import ChatSinks, Inbox, SmtpSink, sms_notification
from exporter.demo.supervisor import Child, Supervisor, SupervisorError, free_port
from exporter.demo.twilio_server import LocalTwilioServer
from exporter.generate.alertmanager.config import TEMPLATE_FILE, alertmanager_config
from exporter.generate.alertmanager.routing import Routing, Timing, Timings
from exporter.generate.alertmanager.templates import templates
from exporter.generate.rules.ruleset import RuleSet
from exporter.smsbridge.config import BridgeConfig, load_bridge_config
from exporter.smsbridge.sender import Sent
from exporter.smsbridge.service import RunningParts, build_bridge

MIN_GROUP_WAIT = 1.0  # seconds: Alertmanager's grouping never waits less in the demo
HEARTBEAT_TIMEOUT = 300.0  # seconds: the bridge's default, compressed by the demo's speed
# seconds: several compressed heartbeat intervals, and the time the demo's Prometheus takes
# from the bridge's start to its first Watchdog (the bridge gives a fresh pipeline one timeout
# to prove itself; 5 s texted "ALERTING DOWN" at every start of a busy machine)
MIN_HEARTBEAT_TIMEOUT = 15.0


@dataclass(frozen=True, kw_only=True)
class TwilioAccount:
    """A Twilio API for the bridge to send through instead of its dry run."""

    account_sid: str
    auth_token: str
    api_base: str
    from_number: str = "+12025550100"


def alertmanager_binary() -> str | None:
    """Debian installs it as prometheus-alertmanager; upstream as alertmanager."""
    for name in ("prometheus-alertmanager", "alertmanager"):
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def demo_numbers(routing: Routing) -> dict[str, list[str]]:
    """An SMS group per group the routing names, each with one fictional number (555-01xx)."""
    groups = sorted({a.sms_group for a in routing.file.audiences.values() if a.sms_group})
    return {group: [f"+1202555{101 + i:04d}"] for i, group in enumerate(groups)}


def tier_one_group(routing: Routing) -> str | None:
    """The SMS group of tier 1's first audience that has one: who hears the pipeline is down."""
    audiences = routing.file.audiences
    for name in routing.tier_audiences("1"):
        audience = audiences.get(name)
        if audience is not None and audience.sms_group:
            return audience.sms_group
    return None


def heartbeat_timeout(routing: Routing, speed: float) -> float:
    """The bridge's heartbeat timeout compressed by ``speed``: never under three of the
    (compressed) heartbeat intervals, nor under MIN_HEARTBEAT_TIMEOUT."""
    interval = max(MIN_GROUP_WAIT, round(float(routing.file.heartbeat.interval) / speed))
    return max(MIN_HEARTBEAT_TIMEOUT, 3 * interval, round(HEARTBEAT_TIMEOUT / speed))


def compressed(timings: Timings, speed: float) -> Timings:
    """Each severity's grouping waits divided by ``speed``, none below a second."""

    def one(timing: Timing) -> Timing:
        def fast(value: Duration) -> Duration:
            return Duration(max(MIN_GROUP_WAIT, round(float(value) / speed)))

        return Timing(
            group_wait=fast(timing.group_wait),
            group_interval=fast(timing.group_interval),
            repeat_interval=fast(timing.repeat_interval),
        )

    return Timings(**{f.name: one(getattr(timings, f.name)) for f in dataclasses.fields(Timings)})


def _secret_file(path: Path, text: str) -> str:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    return str(path)


def local_routing(
    routing: Routing,
    directory: Path,
    *,
    chat_url: str,
    smtp: str,
    bridge_url: str,
    bridge_token: str,
    speed: float,
) -> Routing:
    """``routing`` with its receivers on this machine and its waits compressed by ``speed``."""
    f = routing.file
    secret_dir = directory / "secrets"
    secret_dir.mkdir(mode=0o700, exist_ok=True)
    slack = dataclasses.replace(
        f.slack, api_url_file=_secret_file(secret_dir / "slack_webhook_url", f"{chat_url}/slack")
    )
    interval = Duration(max(MIN_GROUP_WAIT, round(float(f.heartbeat.interval) / speed)))
    changes: dict[str, Any] = {
        "slack": slack,
        "timing": compressed(f.timing, speed),
        "heartbeat": dataclasses.replace(f.heartbeat, interval=interval),
        "templates_dir": str(directory / "templates"),
        # The reports' slots are wall-clock times: only their waits shrink.
        "digest": dataclasses.replace(f.digest, group_wait=Duration(MIN_GROUP_WAIT)),
        "ticker": dataclasses.replace(f.ticker, group_wait=Duration(MIN_GROUP_WAIT)),
    }
    if f.pagerduty is not None:
        key = _secret_file(secret_dir / "pagerduty_routing_key", secrets.token_hex(16))
        changes["pagerduty"] = dataclasses.replace(
            f.pagerduty, routing_key_file=key, service_key_file=None, url=f"{chat_url}/pagerduty"
        )
    if f.email is not None:
        password = _secret_file(secret_dir / "smtp_password", "demo")
        changes["email"] = dataclasses.replace(
            f.email, smarthost=smtp, auth_password_file=password, require_tls=False
        )
    if f.sms_bridge is not None:
        token = _secret_file(secret_dir / "sms_bridge_token", bridge_token)
        changes["sms_bridge"] = dataclasses.replace(
            f.sms_bridge, url=bridge_url, credentials_file=token, basic_auth=None
        )
    return dataclasses.replace(routing, file=dataclasses.replace(f, **changes))


@dataclass(frozen=True, kw_only=True)
class LoopSettings:
    """What closes the on-call loop: who hears the pipeline is down, and after how long;
    where acknowledgements go (all None: neither)."""

    heartbeat_group: str | None = None
    heartbeat_timeout: float | None = None
    alertmanager_url: str | None = None
    inbound_url: str | None = None
    auth_token: str | None = None  # signs replies (the local Twilio API's)


def bridge_config(
    directory: Path,
    groups: dict[str, list[str]],
    bearer_token: str,
    twilio: TwilioAccount | None,
    loop: LoopSettings | None = None,
) -> BridgeConfig:
    """The bridge's configuration: dry run, or sending through ``twilio``."""
    (directory / "secrets").mkdir(mode=0o700, exist_ok=True)
    section: dict[str, Any] = {
        "groups": groups,
        "bearer_token_file": _secret_file(directory / "secrets" / "bridge_bearer", bearer_token),
        "store": str(directory / "sms-bridge.sqlite"),
    }
    loop = loop or LoopSettings()
    if loop.heartbeat_group is not None:
        section["heartbeat_group"] = loop.heartbeat_group
    if loop.heartbeat_timeout is not None:
        section["heartbeat_timeout"] = f"{loop.heartbeat_timeout:g}s"
    if loop.alertmanager_url is not None and loop.inbound_url is not None:
        section.update(alertmanager_url=loop.alertmanager_url, inbound_url=loop.inbound_url)
    if twilio is None:
        section["dry_run"] = True
        if loop.auth_token is not None:
            token_path = directory / "secrets" / "twilio_token"
            section["auth_token_file"] = _secret_file(token_path, loop.auth_token)
    else:
        section.update(
            account_sid=twilio.account_sid,
            auth_token_file=_secret_file(directory / "secrets" / "twilio_token", twilio.auth_token),
            api_base=twilio.api_base,
            from_number=twilio.from_number,
            deadline="5s",
            request_timeout="2s",
        )
    path = directory / "sms-bridge.yml"
    path.write_text(yaml.safe_dump({"sms_bridge": section}), encoding="utf-8")
    return load_bridge_config(str(path), env={})


class EchoSender:
    """The dry run's SMS: recorded in the inbox (group and text) instead of sent. Texts a
    person must read whole are also printed (``SMS`` lines): a page's "Reply ACK <code>",
    and the bridge's own texts (the pipeline down or back, an acknowledgement's answer)."""

    def __init__(
        self,
        inbox: Inbox,
        groups: dict[str, list[str]],
        echo: Callable[[str], None] = lambda line: None,
    ) -> None:
        self._inbox = inbox
        self._group_of = {n: g for g, numbers in groups.items() for n in numbers}
        self._echo = echo
        self._lock = threading.Lock()
        self._count = 0
        self.texts: list[tuple[str, str]] = []  # (group, text), in the order sent

    def send(self, to: str, body: str, *, timeout: float) -> Sent:
        group = self._group_of.get(to, to)
        with self._lock:
            self._count += 1
            count = self._count
            self.texts.append((group, body))
        notification = sms_notification(time.time(), group, body)
        if notification is None or "Reply ACK" in body:
            self._echo(f"SMS     {group}: {body}")
        self._inbox.add(notification)
        return Sent(f"dry-run-{count}")

    def sent(self, group: str) -> list[str]:
        """The texts sent to ``group`` so far."""
        with self._lock:
            return [text for to, text in self.texts if to == group]


def start_alertmanager(supervisor: Supervisor, config: Path, *, listen: str | None = None) -> Child:
    """Start the Alertmanager on PATH, clustering off, its data in the supervisor's directory."""
    binary = alertmanager_binary()
    if binary is None:
        raise SupervisorError("alertmanager is not on PATH")
    listen = listen or f"127.0.0.1:{free_port()}"
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.path={supervisor.directory / 'alertmanager-data'}",
        f"--web.listen-address={listen}",
        "--cluster.listen-address=",
        "--log.level=warn",
    ]
    return supervisor.start("alertmanager", argv, f"http://{listen}", "/-/ready")


class Notifier:
    """Sinks, the bridge and Alertmanager, started in that order and stopped in reverse."""

    def __init__(
        self,
        routing: Routing,
        ruleset: RuleSet,
        supervisor: Supervisor,
        inbox: Inbox,
        *,
        speed: float,
        twilio: TwilioAccount | None = None,
        listen: str | None = None,
        replies: LocalTwilioServer | None = None,
    ) -> None:
        self.routing, self.ruleset, self.supervisor = routing, ruleset, supervisor
        self.inbox, self.speed, self.twilio, self.listen = inbox, speed, twilio, listen
        # The local Twilio API that posts the phones' replies to the bridge (signed with its
        # auth token, which is the bridge's with ``twilio`` too: give the same account).
        self.replies = replies
        self.groups = demo_numbers(routing)
        self.oncall = tier_one_group(routing)
        self.chat: ChatSinks | None = None
        self.smtp: SmtpSink | None = None
        self.bridge: RunningParts | None = None
        self.sender: EchoSender | None = None  # the dry run's, once started
        self.alertmanager: Child | None = None

    def start(self, echo: Callable[[str], None]) -> Child:
        """Start everything; return Alertmanager (SupervisorError, ConfigError, OSError)."""
        directory = self.supervisor.directory
        self.chat, self.smtp = ChatSinks(self.inbox), SmtpSink(self.inbox)
        self.chat.start()
        self.smtp.start()
        token = secrets.token_hex(16)
        # Both addresses are chosen first: the bridge silences in this Alertmanager, and
        # Alertmanager's configuration names the bridge.
        self.listen = self.listen or f"127.0.0.1:{free_port()}"
        bridge_listen = f"127.0.0.1:{free_port()}"
        inbound_url = f"http://{bridge_listen}/twilio/inbound"
        loop = LoopSettings(
            heartbeat_group=self.oncall,
            heartbeat_timeout=heartbeat_timeout(self.routing, self.speed),
            alertmanager_url=f"http://{self.listen}" if self.replies is not None else None,
            inbound_url=inbound_url if self.replies is not None else None,
            auth_token=self.replies.auth_token if self.replies is not None else None,
        )
        config = bridge_config(directory, self.groups, token, self.twilio, loop)
        self.sender = EchoSender(self.inbox, self.groups, echo) if self.twilio is None else None
        self.bridge = build_bridge(config, listen_address=bridge_listen, sender=self.sender)
        self.bridge.start()
        mode = "dry run: texts are printed" if self.twilio is None else self.twilio.api_base
        echo(f"sms-bridge ready: {self.bridge.server.url} ({mode})")
        echo(
            f"sms-bridge: texts {self.oncall or 'nobody'} when Alertmanager's heartbeat stops "
            f"for {loop.heartbeat_timeout:g}s"
        )
        if self.replies is not None:
            self.replies.inbound_url = inbound_url
            self._explain_replies(echo)
        routing = local_routing(
            self.routing,
            directory,
            chat_url=self.chat.url,
            smtp=self.smtp.address,
            bridge_url=self.bridge.server.url,
            bridge_token=token,
            speed=self.speed,
        )
        (directory / "templates").mkdir(exist_ok=True)
        (directory / "templates" / TEMPLATE_FILE).write_text(
            templates(routing, routing.source), encoding="utf-8"
        )
        am_config = directory / "alertmanager.yml"
        am_config.write_text(
            alertmanager_config(routing, self.ruleset, f"{routing.source} (demo)"),
            encoding="utf-8",
        )
        self.alertmanager = start_alertmanager(self.supervisor, am_config, listen=self.listen)
        return self.alertmanager

    def _explain_replies(self, echo: Callable[[str], None]) -> None:
        assert self.replies is not None
        phone = self.groups[self.oncall][0] if self.oncall in self.groups else "+12025550101"
        echo(
            "sms-bridge: pages end with 'Reply ACK <code>'; reply from the on-call phone "
            f"with: curl -d From={phone} -d Body=ACK {self.replies.url}/demo/reply"
        )

    def stop_alertmanager(self) -> None:
        """Stop Alertmanager alone (the heartbeat stops: the bridge will text the on-call)."""
        if self.alertmanager is not None:
            self.supervisor.stop(self.alertmanager)
            self.alertmanager = None

    def restart_alertmanager(self) -> Child:
        """Start Alertmanager again on its address and data (SupervisorError)."""
        config = self.supervisor.directory / "alertmanager.yml"
        self.alertmanager = start_alertmanager(self.supervisor, config, listen=self.listen)
        return self.alertmanager

    def reply(self, group: str, body: str) -> int:
        """The first phone of ``group`` texts ``body`` back: the bridge's answer status."""
        if self.replies is None:
            raise ValueError("no local Twilio API posts replies in this demo")
        return self.replies.reply(self.groups[group][0], body)

    def stop(self) -> None:
        """The bridge and the sinks; the supervisor stops Alertmanager with the others."""
        if self.bridge is not None:
            self.bridge.stop()
            self.bridge = None
        for sink in (self.chat, self.smtp):
            if sink is not None:
                sink.stop()
        self.chat = self.smtp = None
        self.inbox.flush()
