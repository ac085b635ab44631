"""Who may post webhooks: a bearer token, basic auth users (bcrypt), or explicitly anyone."""

from __future__ import annotations

import hashlib
import hmac

from exporter.web.auth import BasicAuth


class Authenticator:
    """Checks an ``Authorization`` header against the configured credentials.

    The bearer token is compared as SHA-256 digests with ``hmac.compare_digest``: constant
    time whatever the length or content of the guess. Basic auth goes through the
    exporter's bcrypt :class:`BasicAuth`.
    """

    def __init__(
        self,
        *,
        bearer_token: str | None = None,
        basic: BasicAuth | None = None,
        unauthenticated: bool = False,
    ) -> None:
        if bearer_token is None and basic is None and not unauthenticated:
            raise ValueError("no credentials: give a bearer token or basic auth users")
        self._bearer = hashlib.sha256(bearer_token.encode()).digest() if bearer_token else None
        self._basic = basic
        self._open = unauthenticated and bearer_token is None and basic is None

    def allows(self, header: str | None) -> bool:
        """Whether the request may go on."""
        if self._open:
            return True
        if not header:
            return False
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer" and self._bearer is not None:
            given = hashlib.sha256(value.strip().encode("utf-8", "replace")).digest()
            return hmac.compare_digest(given, self._bearer)
        if scheme.lower() == "basic" and self._basic is not None:
            return self._basic.allows(header)
        return False
