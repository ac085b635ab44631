"""Logging to standard error as logfmt or JSON lines, with known secrets scrubbed."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

REDACTED = "<redacted>"


class Redactor:
    """Replaces every known secret in a text (longest first, so a DSN goes before its password)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


class RedactingFormatter(logging.Formatter):
    """Formats a record as one line and replaces every known secret in it.

    Secrets (DSNs, passwords) are scrubbed from the finished line, so they cannot leak
    through a message argument, an exception text or a library's own log record.
    """

    def __init__(self, fmt: str, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._fmt_kind = fmt
        self.redact = Redactor(secrets)

    def format(self, record: logging.LogRecord) -> str:
        """One line: logfmt ``ts= level= logger= msg=`` or a JSON object."""
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        fields = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": message,
        }
        if self._fmt_kind == "json":
            line = json.dumps(fields)
        else:
            line = " ".join(f"{key}={_logfmt_value(value)}" for key, value in fields.items())
        return self.redact(line)


def _logfmt_value(value: str) -> str:
    if value and not any(c in value for c in ' ="\n\\'):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def setup_logging(level: str, fmt: str, secrets: Iterable[str] = ()) -> None:
    """Send every log record to stderr through the redacting formatter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter(fmt, secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # The Stripe SDK logs every request and API error at INFO; our sources report failures
    # themselves, so its lines only show up when debugging.
    logging.getLogger("stripe").setLevel("DEBUG" if level.lower() == "debug" else "WARNING")
