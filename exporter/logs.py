"""Logging to standard error as logfmt or JSON lines, with known secrets scrubbed."""

from __future__ import annotations

import base64
import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

REDACTED = "<redacted>"


# Secrets by shape, for what no configuration names: a library's debug line with a token in
# a URL's query string or userinfo, an upstream echoing an Authorization header.
_SECRET_WORDS = r"token|key|secret|passw(?:or)?d|pwd|sig(?:nature)?|auth|credential|session"  # noqa: S105 - names, not a secret
_SHAPES = (
    re.compile(rf"(?i)([?&;][\w.~-]*(?:{_SECRET_WORDS})[\w.~-]*=)[^&#\s\\\"'<>]+"),
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+(?=@)"),
    re.compile(
        # Quotes may come escaped (JSON or logfmt of a message that held JSON).
        r"(?i)((?:proxy-)?authorization(?:\\?[\"'])?\s*[:=]\s*(?:\\?[\"'])?"
        r"(?:(?:basic|bearer|token|digest|negotiate)\s+)?)[^\s\\\"',;}]+"
    ),
)


class Redactor:
    """Replaces every known secret in a text, and secrets recognisable by their shape.

    Known secrets go longest first (a DSN before its password), each also in the forms an
    upstream may echo it: the credentials after an auth scheme, base64, and decoded Basic.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            forms |= _forms(secret)
        self._secrets = sorted((s for s in forms if len(s) >= 4), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        for shape in _SHAPES:
            text = shape.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
        return text


def _forms(secret: str) -> set[str]:
    if not secret:
        return set()
    forms = {secret}
    scheme, _, credentials = secret.partition(" ")
    if credentials and scheme.isalpha():
        forms.add(credentials.strip())
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                decoded = ""
            forms |= {decoded, decoded.partition(":")[2]} if decoded else set()
    for form in list(forms):
        raw = form.encode()
        forms |= {base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()}
    return {f for f in forms if f}


class RedactingFormatter(logging.Formatter):
    """Formats a record as one line and replaces every known secret in it.

    Secrets (DSNs, passwords) are scrubbed from the finished line, so they cannot leak
    through a message argument, an exception text or a library's own log record: every
    logger (urllib3, psycopg, the SDKs) propagates to the root handler that uses this.
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
