"""The demo's notification half: Alertmanager on the generated configuration, the SMS bridge
and local receivers, so every alert shows where it was routed.

The Alertmanager configuration is the one `boxoffice generate` renders from
alertmanager/routing.yaml, with only what must differ on a laptop changed: receivers point
at local sinks (Slack, PagerDuty, SMTP) and the bridge, secrets are files in the demo's
directory, and the grouping waits are compressed by the demo's speed like the rules' waits.
The bridge runs in dry run (every SMS is printed, nothing is sent) unless a Twilio account
is given, as the end-to-end tests do with their local Twilio API.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from exporter.config.typed import Duration
from exporter.demo.sinks import ChatSinks, Inbox, SmtpSink, sms_notification
from exporter.demo.supervisor import Child, Supervisor, SupervisorError, free_port
from exporter.generate.alertmanager.config import TEMPLATE_FILE, alertmanager_config
from exporter.generate.alertmanager.routing import Routing, Timing, Timings
from exporter.generate.alertmanager.templates import templates
from exporter.generate.rules.ruleset import RuleSet
from exporter.smsbridge.config import BridgeConfig, load_bridge_config
from exporter.smsbridge.sender import Sent
from exporter.smsbridge.service import RunningParts, build_bridge

MIN_GROUP_WAIT = 1.0  # seconds: Alertmanager's grouping never waits less in the demo


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
    changes: dict[str, Any] = {
        "slack": slack,
        "timing": compressed(f.timing, speed),
        "templates_dir": str(directory / "templates"),
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


def bridge_config(
    directory: Path,
    groups: dict[str, list[str]],
    bearer_token: str,
    twilio: TwilioAccount | None,
) -> BridgeConfig:
    """The bridge's configuration: dry run, or sending through ``twilio``."""
    (directory / "secrets").mkdir(mode=0o700, exist_ok=True)
    section: dict[str, Any] = {
        "groups": groups,
        "bearer_token_file": _secret_file(directory / "secrets" / "bridge_bearer", bearer_token),
        "store": str(directory / "sms-bridge.sqlite"),
    }
    if twilio is None:
        section["dry_run"] = True
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
    """The dry run's SMS: recorded in the inbox (group and text) instead of sent."""

    def __init__(self, inbox: Inbox, groups: dict[str, list[str]]) -> None:
        self._inbox = inbox
        self._group_of = {n: g for g, numbers in groups.items() for n in numbers}
        self._count = 0

    def send(self, to: str, body: str, *, timeout: float) -> Sent:
        self._count += 1
        group = self._group_of.get(to, to)
        self._inbox.add(sms_notification(time.time(), group, body))
        return Sent(f"dry-run-{self._count}")


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
    ) -> None:
        self.routing, self.ruleset, self.supervisor = routing, ruleset, supervisor
        self.inbox, self.speed, self.twilio, self.listen = inbox, speed, twilio, listen
        self.groups = demo_numbers(routing)
        self.chat: ChatSinks | None = None
        self.smtp: SmtpSink | None = None
        self.bridge: RunningParts | None = None
        self.alertmanager: Child | None = None

    def start(self, echo: Callable[[str], None]) -> Child:
        """Start everything; return Alertmanager (SupervisorError, ConfigError, OSError)."""
        directory = self.supervisor.directory
        self.chat, self.smtp = ChatSinks(self.inbox), SmtpSink(self.inbox)
        self.chat.start()
        self.smtp.start()
        token = secrets.token_hex(16)
        config = bridge_config(directory, self.groups, token, self.twilio)
        sender = EchoSender(self.inbox, self.groups) if self.twilio is None else None
        self.bridge = build_bridge(config, listen_address="127.0.0.1:0", sender=sender)
        self.bridge.start()
        mode = "dry run: texts are printed" if self.twilio is None else self.twilio.api_base
        echo(f"sms-bridge ready: {self.bridge.server.url} ({mode})")
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
