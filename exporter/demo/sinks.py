"""Where the demo's Alertmanager delivers: local stand-ins for Slack, PagerDuty and SMTP.

Each one accepts what Alertmanager sends (Slack's incoming-webhook JSON, PagerDuty's Events
API v2, an SMTP conversation), answers like the real service, and records one
:class:`Notification` per delivery in an :class:`Inbox`, which also prints a line so the
terminal shows where every alert was routed. The SMS bridge's deliveries are recorded the
same way (:func:`sms_notification`). Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import json
import re
import socketserver
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_BODY = 1 << 20  # bytes: a notification is a few kilobytes
SOCKET_TIMEOUT = 10.0  # seconds a sink waits for a slow client

# The title every channel carries (alertmanager/templates: boxoffice.title).
_TITLE = re.compile(
    r"\[(?P<status>FIRING|RESOLVED)(?::\d+)?\] (?P<name>\S+)(?: \((?P<category>[^)]*)\))?"
    r"(?: (?P<severity>CRITICAL|HIGH|MEDIUM|LOW))?(?: tier (?P<tier>\S+))?"
)
# The SMS bridge's text (exporter/smsbridge/text.py): "HIGH tier 1: 1 firing: Name (cat)..."
_SMS_FIRING = re.compile(
    r"(?P<severity>CRITICAL|HIGH|MEDIUM|LOW|ALERT)(?: tier (?P<tier>\S+))?: \d+ firing: "
    r"(?P<name>[^ ,(]+)"
)
_SMS_RESOLVED = re.compile(r"RESOLVED: (?P<name>[^ ,(]+)")
# The owner's reports (alertmanager/templates: boxoffice.report.title): "DailyDigest: ...".
_REPORT = re.compile(r"(?P<name>DailyDigest|SalesTicker): ")


@dataclass(frozen=True, kw_only=True)
class Notification:
    """One delivery: which channel, to whom, about which alert group."""

    at: float  # wall-clock seconds when it arrived
    channel: str  # slack | pagerduty | email | sms
    target: str  # a Slack channel, the PagerDuty action, an email address, an SMS group
    status: str  # firing | resolved
    alertname: str
    severity: str  # lowercase; "" when the text does not say
    tier: str  # escalation tier; "" when the text does not say
    text: str  # the title or SMS as received
    body: str = ""  # a report's text (Slack attachment text, email body)


def from_title(
    at: float, channel: str, target: str, title: str, body: str = ""
) -> Notification | None:
    """A notification whose text starts with the bundle's title (or a report's: its
    ``body`` kept); None when it does not."""
    report = _REPORT.match(title)
    if report is not None:
        return Notification(
            at=at,
            channel=channel,
            target=target,
            status="firing",
            alertname=report["name"],
            severity="",
            tier="",
            text=title,
            body=body,
        )
    found = _TITLE.match(title)
    if found is None:
        return None
    return Notification(
        at=at,
        channel=channel,
        target=target,
        status=found["status"].lower(),
        alertname=found["name"],
        severity=(found["severity"] or "").lower(),
        tier=found["tier"] or "",
        text=title,
    )


def sms_notification(at: float, group: str, body: str) -> Notification | None:
    """An SMS the bridge sent to ``group``, read back from its text."""
    firing = _SMS_FIRING.match(body)
    if firing is not None:
        severity = firing["severity"].lower()
        return Notification(
            at=at,
            channel="sms",
            target=group,
            status="firing",
            alertname=firing["name"],
            severity="" if severity == "alert" else severity,
            tier=firing["tier"] or "",
            text=body,
        )
    resolved = _SMS_RESOLVED.match(body)
    if resolved is not None:
        return Notification(
            at=at,
            channel="sms",
            target=group,
            status="resolved",
            alertname=resolved["name"],
            severity="",
            tier="",
            text=body,
        )
    return None


class Inbox:
    """Where the demo's receivers hand each notification; thread-safe.

    The terminal gets one ROUTED line per alert group and tier, listing every channel it
    reached: deliveries of one Alertmanager flush arrive within a moment, so the inbox
    waits ``settle`` seconds after the first before printing them together.
    """

    def __init__(self, echo: Callable[[str], None] = lambda line: None, settle: float = 0.5):
        self._echo = echo
        self._settle = settle
        self._lock = threading.Lock()
        self._pending: list[Notification] = []
        self._timer: threading.Timer | None = None
        self._told: set[tuple[str, str, str]] = set()

    def add(self, notification: Notification | None) -> None:
        """Print ``notification`` with the others of its flush; None (unreadable) is dropped."""
        if notification is None:
            return
        with self._lock:
            self._pending.append(notification)
            if self._timer is None:
                self._timer = threading.Timer(self._settle, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Print what arrived since the last flush, grouped."""
        with self._lock:
            pending, self._pending, self._timer = self._pending, [], None
            lines = routed_lines(pending, self._told)
            # Slack and email carry the same text (email with CRLF line ends): shown once.
            texts = ((n.alertname, n.body.replace("\r\n", "\n").strip()) for n in pending)
            shown = {(name, text) for name, text in texts if text}
        for name, body in sorted(shown):
            lines += [f"REPORT  {name}: {line}" for line in body.splitlines()]
        for line in lines:
            self._echo(line)


_CHANNELS = ("slack", "pagerduty", "email", "sms")


def routed_lines(
    notifications: list[Notification], told: set[tuple[str, str, str]] | None = None
) -> list[str]:
    """One line per alert group (status, name, severity, tier) with every place it reached.

    ``told`` holds the firing groups already shown and not resolved since: showing one of
    them again says it is a reminder (Alertmanager's repeat_interval).
    """
    told = set() if told is None else told
    groups: dict[tuple[str, str, str, str], dict[str, set[str]]] = {}
    for n in notifications:
        # An SMS that says RESOLVED names neither severity nor tier: group by name.
        key = (
            (n.status, n.alertname, "", "")
            if n.status == "resolved"
            else (n.status, n.alertname, n.severity, n.tier)
        )
        groups.setdefault(key, {}).setdefault(n.channel, set()).add(n.target)
    lines = []
    for (status, name, severity, tier), channels in groups.items():
        what = f"{name} {severity.upper()} tier {tier}" if severity else name
        if status == "resolved":
            what = f"RESOLVED {what}"
            told -= {k for k in told if k[0] == name}
        elif not severity and not tier:
            pass  # a report (digest, ticker): each one is news, never a reminder
        elif (name, severity, tier) in told:
            what += " (reminder)"
        else:
            told.add((name, severity, tier))
        order = sorted(channels, key=lambda c: _CHANNELS.index(c) if c in _CHANNELS else 9)
        where = "; ".join(f"{c} {' '.join(sorted(channels[c]))}" for c in order)
        lines.append(f"ROUTED  {what} -> {where}")
    return lines


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _ThreadedTCP(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Serving:
    """A socketserver on 127.0.0.1 served by a daemon thread between start and stop."""

    def __init__(self, server: socketserver.TCPServer, name: str) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class ChatSinks(_Serving):
    """Slack's incoming webhook at ``/slack`` and PagerDuty's Events API v2 at ``/pagerduty``."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        sinks = self

        class Handler(BaseHTTPRequestHandler):
            timeout = SOCKET_TIMEOUT

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._answer(413, b"too large")
                    return
                raw = self.rfile.read(length)
                try:
                    document = json.loads(raw)
                except ValueError:
                    self._answer(400, b"invalid JSON")
                    return
                if self.path == "/slack":
                    sinks.slack(document)
                    self._answer(200, b"ok")
                elif self.path == "/pagerduty":
                    sinks.pagerduty(document)
                    body = {"status": "success", "message": "Event processed"}
                    self._answer(202, json.dumps(body).encode(), "application/json")
                else:
                    self._answer(404, b"no such sink")

            def _answer(self, status: int, body: bytes, kind: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the inbox prints what matters

        super().__init__(_Quiet(("127.0.0.1", 0), Handler), "demo-chat-sinks")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def slack(self, document: Mapping[str, Any]) -> None:
        attachments = document.get("attachments") or [{}]
        title = str(attachments[0].get("title") or document.get("text") or "")
        channel = str(document.get("channel") or "?")
        body = str(attachments[0].get("text") or "")
        self.inbox.add(from_title(time.time(), "slack", channel, title, body))

    def pagerduty(self, document: Mapping[str, Any]) -> None:
        action = str(document.get("event_action") or "?")
        summary = str((document.get("payload") or {}).get("summary") or "")
        self.inbox.add(from_title(time.time(), "pagerduty", action, summary))


class SmtpSink(_Serving):
    """Just enough SMTP (RFC 5321) for Alertmanager's email notifier, without TLS or AUTH."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = SOCKET_TIMEOUT

            def handle(self) -> None:
                sink.converse(self.rfile, self.wfile)

        super().__init__(_ThreadedTCP(("127.0.0.1", 0), Handler), "demo-smtp-sink")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def converse(self, rfile: Any, wfile: Any) -> None:
        """One SMTP session: greeting, commands, DATA until ``.``; bounded in size."""

        def reply(text: str) -> None:
            wfile.write(text.encode() + b"\r\n")
            wfile.flush()

        reply("220 boxoffice-demo ESMTP")
        recipients: list[str] = []
        for _ in range(1000):  # commands per session
            line = rfile.readline(4096)
            if not line:
                return
            verb = line.decode("ascii", "replace").strip().split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                reply("250 boxoffice-demo")
            elif verb == "MAIL":
                recipients = []
                reply("250 OK")
            elif verb == "RCPT":
                recipients.append(
                    line.decode("ascii", "replace").split(":", 1)[-1].strip(" <>\r\n")
                )
                reply("250 OK")
            elif verb == "DATA":
                reply("354 end with <CRLF>.<CRLF>")
                message = self._read_data(rfile)
                if message is None:
                    return
                self._received(message, recipients)
                reply("250 OK")
            elif verb in ("RSET", "NOOP"):
                reply("250 OK")
            elif verb == "QUIT":
                reply("221 bye")
                return
            else:
                reply("502 command not implemented")

    @staticmethod
    def _read_data(rfile: Any) -> bytes | None:
        lines: list[bytes] = []
        size = 0
        while size <= MAX_BODY:
            line = rfile.readline(MAX_BODY)
            if not line:
                return None
            if line in (b".\r\n", b".\n"):
                return b"".join(lines)
            if line.startswith(b".."):
                line = line[1:]  # dot-stuffing
            lines.append(line)
            size += len(line)
        return None

    def _received(self, raw: bytes, recipients: list[str]) -> None:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        subject = " ".join(str(message.get("Subject", "")).split())
        part = message.get_body(preferencelist=("plain",))
        body = part.get_content() if isinstance(part, email.message.EmailMessage) else ""
        now = time.time()
        for to in recipients or ["?"]:
            self.inbox.add(from_title(now, "email", to, subject, str(body)))
