"""Secrets given as a value or a ``*_file`` path, and the API sources' credentials.

Each secret is given either inline or as a ``*_file`` path (Docker/Kubernetes secrets).
:func:`secret_value` is the one way such a pair is resolved, for the exporter's DSNs and
API keys and the SMS bridge's tokens alike, so an empty one is refused the same way
everywhere. The API sources' resolved values are returned keyed by their settings path
and also join the set of secrets the log formatter and error messages scrub.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from exporter.config.errors import ConfigError
from exporter.config.settings import Settings
from exporter.config.typed import join

ErrorAt = Callable[[str, str], ConfigError]

_SECRET_HEADER_WORDS = ("authorization", "cookie", "token", "key", "secret", "password")


def is_secret_header(name: str) -> bool:
    """Whether an inline header's value is treated as a secret (kept out of logs)."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_HEADER_WORDS)


def read_secret_file(path: str, setting: str, error: ErrorAt) -> str:
    """The secret held in a file, surrounding whitespace dropped; an empty file is an error.

    An empty secret is never what was meant: an empty DSN would silently connect with
    libpq's local defaults, an empty token would only fail at the first request.
    """
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise error(setting, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise error(setting, "is not UTF-8 text") from None
    if not value:
        raise error(setting, "the file is empty")
    return value


def secret_value(inline: str | None, file: str | None, setting: str, error: ErrorAt) -> str | None:
    """Resolve a secret given inline at ``setting`` or as a path at ``setting + "_file"``.

    None when neither is given; giving both, an empty value or an empty file is an error.
    Every "value or file" secret of every configuration goes through here.
    """
    file_setting = f"{setting}_file"
    if inline is not None and file is not None:
        name = setting.rpartition(".")[2]
        raise error(file_setting, f"give {name} or {name}_file, not both")
    if file is not None:
        return read_secret_file(file, file_setting, error)
    if inline is None:
        return None
    if not inline.strip():
        raise error(setting, "must not be empty")
    return inline.strip()


def resolve_credentials(settings: Settings, error: ErrorAt) -> dict[str, str]:
    """Secrets of the enabled API sources by settings path; a missing one is an error."""
    found: dict[str, str] = {}
    stripe = settings.sources.stripe
    if stripe.enabled:
        key = secret_value(stripe.api_key, stripe.api_key_file, "sources.stripe.api_key", error)
        if key is None:
            raise error("sources.stripe.api_key", "is required when the Stripe source is enabled")
        found["sources.stripe.api_key"] = key
    twilio = settings.sources.twilio
    if twilio.enabled:
        if not twilio.account_sid:
            raise error(
                "sources.twilio.account_sid", "is required when the Twilio source is enabled"
            )
        token = secret_value(
            twilio.auth_token, twilio.auth_token_file, "sources.twilio.auth_token", error
        )
        if token is None:
            raise error(
                "sources.twilio.auth_token", "is required when the Twilio source is enabled"
            )
        found["sources.twilio.auth_token"] = token
    names: set[str] = set()
    for i, target in enumerate(settings.sources.http.targets):
        base = join("sources.http.targets", i)
        if target.name in names:
            raise error(join(base, "name"), f"duplicate target name {target.name!r}")
        names.add(target.name)
        for header, value in target.headers.items():
            if header in target.header_files:
                raise error(join(join(base, "header_files"), header), "also given in headers")
            if is_secret_header(header):
                found[join(join(base, "headers"), header)] = value
        for header, path in target.header_files.items():
            setting = join(join(base, "header_files"), header)
            found[setting] = read_secret_file(path, setting, error)
    return found
