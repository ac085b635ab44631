"""Assemble a running bridge from its configuration, and run it until a signal."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from exporter.lifecycle import Failure, serve_until_signal
from exporter.logs import setup_logging
from exporter.smsbridge.ack import AckStore, Page, SilenceError
from exporter.smsbridge.app import SmsBridge, bridge_server
from exporter.smsbridge.auth import Authenticator
from exporter.smsbridge.balance import BalanceWatch, twilio_balance
from exporter.smsbridge.beats import Beats, MemoryBeats, StoredBeats
from exporter.smsbridge.config import BridgeConfig
from exporter.smsbridge.delivery import Delivery, Limit, Timing
from exporter.smsbridge.digest import DigestSender
from exporter.smsbridge.heartbeat import HeartbeatWatch
from exporter.smsbridge.inbound import Acknowledger, AckSettings
from exporter.smsbridge.metrics import BridgeMetrics
from exporter.smsbridge.sender import DryRunSender, Sender, TwilioSender
from exporter.smsbridge.store import IdempotencyStore, PostgresStore, SqliteStore, StoreError
from exporter.web.auth import BasicAuth
from exporter.web.limits import ServerLimits
from exporter.web.server import ExporterHTTPServer
from exporter.web.webconfig import WebConfig, load_web_config

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class RunningParts:
    """The parts a bridge holds, closed together."""

    server: ExporterHTTPServer
    store: IdempotencyStore | None
    registry: CollectorRegistry
    bridge: SmsBridge
    digests: DigestSender | None
    heartbeat: HeartbeatWatch | None = None
    balance: BalanceWatch | None = None

    def start(self) -> None:
        """Bind and serve; send digests, watch the heartbeat and the balance, all in the
        background."""
        self.server.start()
        for part in (self.digests, self.heartbeat, self.balance):
            if part is not None:
                part.start()

    def stop(self) -> None:
        """Stop serving (in-flight webhooks finish) and the background parts, then close
        the store."""
        self.server.shutdown()
        for part in (self.digests, self.heartbeat, self.balance):
            if part is not None:
                part.stop()
        if self.store is not None:
            self.store.close()


def open_store(config: BridgeConfig) -> IdempotencyStore:
    """PostgreSQL when store_dsn is given (shared by an HA pair), else the SQLite file."""
    if config.store_dsn is not None:
        return PostgresStore(config.store_dsn)
    return SqliteStore(config.settings.store)


def build_bridge(
    config: BridgeConfig,
    *,
    listen_address: str | None = None,
    store: IdempotencyStore | None = None,
    sender: Sender | None = None,
    limits: ServerLimits | None = None,
) -> RunningParts:
    """Everything the bridge needs, checked; nothing is served until ``start``."""
    settings = config.settings
    web_config = load_web_config(settings.web_config_file) if settings.web_config_file else None
    users = (web_config or WebConfig()).basic_auth_users
    authenticator = Authenticator(
        bearer_token=config.bearer_token,
        basic=BasicAuth(users) if users else None,
        unauthenticated=settings.unauthenticated,
    )
    if sender is None:
        if settings.dry_run:
            sender = DryRunSender()
        else:
            assert settings.account_sid is not None and config.auth_token is not None
            sender = TwilioSender(
                account_sid=settings.account_sid,
                auth_token=config.auth_token,
                from_number=settings.from_number,
                messaging_service_sid=settings.messaging_service_sid,
                api_base=settings.api_base,
            )
    if store is None and (not settings.dry_run or _acks_wanted(config)):
        store = open_store(config)
    registry = CollectorRegistry(auto_describe=True)
    metrics = BridgeMetrics(registry)
    timing = Timing(
        deadline=float(settings.deadline),
        request_timeout=float(settings.request_timeout),
        window=float(settings.dedup_window),
    )
    limit = Limit(settings.recipient_limit, float(settings.recipient_window))
    delivery = Delivery(
        store=None if settings.dry_run else store,
        sender=sender,
        metrics=metrics,
        timing=timing,
        limit=None if settings.dry_run else limit,
        dry_run=settings.dry_run,
    )
    digests = None
    if store is not None and not settings.dry_run:
        digests = DigestSender(
            store=store,
            sender=sender,
            metrics=metrics,
            limit=limit,
            timing=timing,
            max_segments=settings.max_segments,
        )
    beats: Beats = MemoryBeats() if store is None or settings.dry_run else StoredBeats(store)
    group = settings.heartbeat_group
    heartbeat = HeartbeatWatch(
        beats=beats,
        sender=sender,
        recipients=config.groups[group] if group else None,
        timeout=float(settings.heartbeat_timeout),
        request_timeout=float(settings.request_timeout),
        max_segments=settings.max_segments,
        metrics=metrics,
        registry=registry,
    )
    balance = None
    if not settings.dry_run and settings.account_sid and config.auth_token:
        fetch = twilio_balance(
            account_sid=settings.account_sid,
            auth_token=config.auth_token,
            api_base=settings.api_base,
            timeout=float(settings.request_timeout),
        )
        balance = BalanceWatch(fetch, registry=registry, interval=float(settings.balance_interval))
    acks, acknowledger = _acknowledgement(config, store, sender, registry)
    bridge = SmsBridge(
        groups=config.groups,
        heartbeat=heartbeat,
        acks=acks,
        acknowledger=acknowledger,
        delivery=delivery,
        metrics=metrics,
        authenticator=authenticator,
        max_body_bytes=settings.max_body_bytes,
        max_segments=settings.max_segments,
    )
    server = bridge_server(
        bridge,
        registry=registry,
        listen_address=listen_address or settings.listen_address,
        web_config=web_config,
        limits=limits,
    )
    return RunningParts(
        server=server,
        store=store,
        registry=registry,
        bridge=bridge,
        digests=digests,
        heartbeat=heartbeat,
        balance=balance,
    )


def _acks_wanted(config: BridgeConfig) -> bool:
    """ACK codes and replies: with alertmanager_url and an auth token to verify replies
    (a dry run too: it records the codes and takes replies, its texts are only logged)."""
    return config.settings.alertmanager_url is not None and config.auth_token is not None


def _acknowledgement(
    config: BridgeConfig,
    store: IdempotencyStore | None,
    sender: Sender,
    registry: CollectorRegistry,
) -> tuple[AckStore | None, Acknowledger | None]:
    """ACK codes and the inbound webhook, when wanted (:func:`_acks_wanted`)."""
    settings = config.settings
    if not _acks_wanted(config) or store is None or settings.alertmanager_url is None:
        return None, None
    acks = AckStore(store)
    acknowledger = Acknowledger(
        acks=acks,
        settings=AckSettings(
            alertmanager_url=settings.alertmanager_url,
            duration=float(settings.ack_duration),
            request_timeout=float(settings.request_timeout),
        ),
        sender=sender,
        auth_token=config.auth_token,
        inbound_url=settings.inbound_url,
        registry=registry,
        slack_url=config.ack_slack_url,
    )
    return acks, acknowledger


def run_bridge(config: BridgeConfig, *, address: str, echo: Callable[[str], None]) -> None:
    """Serve until SIGTERM or SIGINT (Failure: the store cannot open, ``address`` is taken)."""
    setup_logging(config.log_level, config.log_format, config.secrets)
    try:
        parts = build_bridge(config)
    except StoreError as exc:
        raise Failure(str(exc)) from exc

    def started() -> None:
        log.info("sms-bridge listening on %s", parts.server.url)
        echo(f"sms-bridge ready: {parts.server.url}/alerts/<group>")

    serve_until_signal(parts, address=address, on_started=started)


class UnknownPage(Failure):
    """No page with that code or alert name: bad input."""

    exit_code = 2


def acknowledge(config: BridgeConfig, target: str, *, by: str) -> tuple[Page, str]:
    """``boxoffice ack``: silence the higher tiers of a page, by its code or its alert's name
    (the latest page of it); the page and the silence ID. Failure when it cannot be done."""
    settings = config.settings
    if settings.alertmanager_url is None:
        raise Failure(f"{config.source}: sms_bridge.alertmanager_url: is not set")
    try:
        store = open_store(config)
    except StoreError as exc:
        raise Failure(str(exc)) from exc
    try:
        acks = AckStore(store)
        page = acks.page(target.upper()) or acks.by_alertname(target)
        if page is None:
            raise UnknownPage(f"no page with code or alert name {target!r} in the bridge's store")
        acknowledger = Acknowledger(
            acks=acks,
            settings=AckSettings(
                alertmanager_url=settings.alertmanager_url,
                duration=float(settings.ack_duration),
                request_timeout=float(settings.request_timeout),
            ),
            sender=None,
            auth_token=None,
            inbound_url=None,
            registry=None,
            slack_url=config.ack_slack_url,
        )
        try:
            return page, acknowledger.acknowledge(page, by=by)
        except SilenceError as exc:
            raise Failure(f"silence not created: {exc}") from exc
    except StoreError as exc:
        raise Failure(str(exc)) from exc
    finally:
        store.close()
