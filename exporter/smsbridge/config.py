"""The `sms_bridge` section checked and resolved: numbers, secrets, sender, store."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict

from exporter.config.credentials import ErrorAt, secret_value
from exporter.config.errors import ConfigError, blamed
from exporter.config.loader import load_settings
from exporter.config.settings import SmsBridgeSettings
from exporter.config.typed import join

_E164 = re.compile(r"\+[1-9]\d{6,14}")
_GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_BASE = "sms_bridge"


@dataclass(frozen=True, kw_only=True)
class BridgeConfig:
    """Everything `boxoffice sms-bridge` runs from, checked; secrets kept out of repr."""

    source: str
    settings: SmsBridgeSettings
    groups: Mapping[str, tuple[str, ...]]
    log_level: str
    log_format: str
    bearer_token: str | None = dataclasses.field(repr=False)
    auth_token: str | None = dataclasses.field(repr=False)
    store_dsn: str | None = dataclasses.field(repr=False)
    secrets: frozenset[str] = dataclasses.field(repr=False)
    ack_slack_url: str | None = dataclasses.field(default=None, repr=False)


def load_bridge_config(
    path: str | None,
    *,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, tuple[object, str]] | None = None,
) -> BridgeConfig:
    """Load the configuration file and check the `sms_bridge` section only."""
    source, settings, origins = load_settings(path, env=env, flags=flags)

    def error(setting: str, reason: str) -> ConfigError:
        return blamed(origins, source, setting, reason)

    bridge = settings.sms_bridge
    groups = _groups(bridge, error)
    bearer = secret_value(
        bridge.bearer_token, bridge.bearer_token_file, join(_BASE, "bearer_token"), error
    )
    if not bridge.unauthenticated and bearer is None and bridge.web_config_file is None:
        raise error(
            join(_BASE, "bearer_token"),
            "the bridge needs credentials: give bearer_token(_file) or basic_auth_users in "
            "web_config_file, or run with --unauthenticated",
        )
    if bridge.heartbeat_group is not None and bridge.heartbeat_group not in groups:
        raise error(
            join(_BASE, "heartbeat_group"),
            f"names no group (groups: {', '.join(sorted(groups))})",
        )
    if bridge.alertmanager_url is not None and bridge.inbound_url is None:
        raise error(
            join(_BASE, "inbound_url"),
            "is required with alertmanager_url: Twilio signs replies for that URL",
        )
    if bridge.dry_run:
        # Nothing is sent, but a given token still verifies replies (acknowledgements).
        where = join(_BASE, "auth_token")
        token = secret_value(bridge.auth_token, bridge.auth_token_file, where, error)
    else:
        token = _twilio(bridge, error)
    store_dsn = secret_value(
        bridge.store_dsn, bridge.store_dsn_file, join(_BASE, "store_dsn"), error
    )
    slack = secret_value(None, bridge.ack_slack_url_file, join(_BASE, "ack_slack_url"), error)
    secrets = {s for s in (bearer, token, store_dsn, slack) if s}
    if store_dsn is not None:
        try:
            password = conninfo_to_dict(store_dsn).get("password")
        except psycopg.ProgrammingError:
            raise error(
                join(_BASE, "store_dsn"), "is not a valid libpq connection string"
            ) from None
        if password:
            secrets.add(str(password))
    return BridgeConfig(
        source=source,
        settings=bridge,
        groups=groups,
        log_level=settings.log.level,
        log_format=settings.log.format,
        bearer_token=bearer,
        auth_token=token,
        store_dsn=store_dsn,
        secrets=frozenset(secrets),
        ack_slack_url=slack,
    )


def _groups(bridge: SmsBridgeSettings, error: ErrorAt) -> dict[str, tuple[str, ...]]:
    base = join(_BASE, "groups")
    if not bridge.groups:
        raise error(base, "name at least one group of recipients")
    found: dict[str, tuple[str, ...]] = {}
    for name, numbers in bridge.groups.items():
        where = join(base, name)
        if not _GROUP.fullmatch(name):
            raise error(where, "group names are letters, digits, '_', '.' and '-' (URL-safe)")
        if not numbers:
            raise error(where, "must list at least one number")
        seen: set[str] = set()
        for i, number in enumerate(numbers):
            if not _E164.fullmatch(number):
                raise error(join(where, i), "must be an E.164 number like +14155552671")
            if number in seen:
                raise error(join(where, i), "listed twice in this group")
            seen.add(number)
        found[name] = tuple(numbers)
    return found


def _twilio(bridge: SmsBridgeSettings, error: ErrorAt) -> str:
    if not bridge.account_sid:
        raise error(join(_BASE, "account_sid"), "is required (or run with --dry-run)")
    token = secret_value(
        bridge.auth_token, bridge.auth_token_file, join(_BASE, "auth_token"), error
    )
    if token is None:
        raise error(join(_BASE, "auth_token"), "is required (or auth_token_file, or --dry-run)")
    if (bridge.from_number is None) == (bridge.messaging_service_sid is None):
        raise error(join(_BASE, "from_number"), "give from_number or messaging_service_sid")
    if bridge.from_number is not None and not _E164.fullmatch(bridge.from_number):
        raise error(join(_BASE, "from_number"), "must be an E.164 number like +14155552671")
    return token
