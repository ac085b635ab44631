"""HTTP basic auth against bcrypt hashes, as exporter-toolkit's ``basic_auth_users`` does it."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping

import bcrypt

CheckPassword = Callable[[bytes, bytes], bool]
"""``bcrypt.checkpw``'s shape: (password, stored hash) -> whether they match."""

_CACHE_SIZE = 1024
# bcrypt only ever reads this many bytes of a password; htpasswd and Go's bcrypt compare
# the same prefix, so longer passwords keep working instead of being refused.
_BCRYPT_MAX_PASSWORD = 72


class BasicAuth:
    """Checks ``Authorization: Basic`` headers; successful checks are cached.

    bcrypt costs tens of milliseconds by design, and a scrape every 15 s should not pay it
    each time: a success is remembered under an HMAC of (user, password, stored hash) with
    a key made at start, so the cache holds nothing a memory dump could brute-force fast,
    and a changed hash never matches an old entry. Only successes are cached, so guessing
    always pays bcrypt. Unknown users are checked against a decoy hash of the highest
    configured cost, so timing does not tell which user names exist.
    """

    def __init__(
        self, users: Mapping[str, str], *, check_password: CheckPassword = bcrypt.checkpw
    ) -> None:
        self._users = {user.encode(): hashed.encode() for user, hashed in users.items()}
        self._check_password = check_password
        self._key = secrets.token_bytes(32)
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()
        # One bcrypt at a time, as exporter-toolkit does: it is CPU-bound by design, and a
        # burst of bad requests should queue rather than take every core.
        self._bcrypt_lock = threading.Lock()
        cost = max((int(h[4:6]) for h in users.values()), default=10)
        self._decoy = bcrypt.hashpw(secrets.token_hex(16).encode(), bcrypt.gensalt(cost))

    def allows(self, header: str | None) -> bool:
        """True when the header names a configured user with the right password."""
        credentials = _credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        password = password[:_BCRYPT_MAX_PASSWORD]
        stored = self._users.get(user)
        digest = self._digest(user, password, stored or b"")
        with self._lock:
            # A keyed digest the client cannot compute: how long the lookup takes says
            # nothing about the secret.
            if stored is not None and digest in self._ok:
                self._ok.move_to_end(digest)
                return True
        with self._bcrypt_lock:
            matched = self._check_password(password, stored or self._decoy)
        if stored is None or not matched:
            return False
        with self._lock:
            self._ok[digest] = None
            if len(self._ok) > _CACHE_SIZE:
                self._ok.popitem(last=False)
        return True

    def _digest(self, *parts: bytes) -> bytes:
        # Length-prefixed, so no two different triples run together into the same bytes.
        framed = b"".join(len(p).to_bytes(4, "big") + p for p in parts)
        return hmac.new(self._key, framed, hashlib.sha256).digest()


def _credentials(header: str | None) -> tuple[bytes, bytes] | None:
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    return (user, password) if sep else None
