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
# bcrypt costs we check: 4 is bcrypt's least; past 14 one check takes about a second of a
# core (each step doubles it; 10, htpasswd's default, is about 60 ms), and since checks run
# one at a time a few guesses would stall every scrape. Go's bcrypt accepts up to 31, which
# hangs for days: we refuse it at load instead.
_BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
MIN_BCRYPT_COST = 4
MAX_BCRYPT_COST = 14
# bcrypt only ever reads this many bytes of a password; htpasswd and Go's bcrypt compare
# the same prefix, so longer passwords keep working instead of being refused.
_BCRYPT_MAX_PASSWORD = 72


class BasicAuth:
    """Checks ``Authorization: Basic`` headers; successful checks are cached.

    bcrypt costs tens of milliseconds by design, and a scrape every 15 s should not pay it
    each time: a success is remembered under an HMAC of (user, password, stored hash) with
    a key made at start, so the cache holds nothing a memory dump could brute-force fast,
    and a changed hash never matches an old entry. Only successes are cached, so guessing
    always pays bcrypt.

    An unknown user is checked against a decoy hash whose cost is that of one configured
    user, chosen by a keyed hash of the name (:meth:`_decoy_for`): with one user every
    unknown name costs what that user does; with users of different costs an unknown name
    costs what some real user costs, always the same for the same name, so timing does not
    tell which names exist; and a single slow hash makes only its share of unknown names
    slow, not all of them. Costs above :data:`MAX_BCRYPT_COST` are refused.
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
        costs = sorted(bcrypt_cost(h) for h in users.values()) or [10]
        self._decoys = [_decoy(cost) for cost in costs]
        # Keyed by the configured hashes (random salts the client never sees): the same
        # unknown name picks the same decoy after a restart, as a real user's cost persists.
        self._decoy_key = hashlib.sha256(b"\0".join(sorted(self._users.values()))).digest()

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
            matched = self._check_password(password, stored or self._decoy_for(user))
        if stored is None or not matched:
            return False
        with self._lock:
            self._ok[digest] = None
            if len(self._ok) > _CACHE_SIZE:
                self._ok.popitem(last=False)
        return True

    def _decoy_for(self, user: bytes) -> bytes:
        """The decoy hash an unknown ``user`` is checked against: one per configured user,
        so each cost is picked in proportion to the users that have it."""
        pick = hmac.new(self._decoy_key, user, hashlib.sha256).digest()
        return self._decoys[int.from_bytes(pick[:8], "big") % len(self._decoys)]

    def _digest(self, *parts: bytes) -> bytes:
        # Length-prefixed, so no two different triples run together into the same bytes.
        framed = b"".join(len(p).to_bytes(4, "big") + p for p in parts)
        return hmac.new(self._key, framed, hashlib.sha256).digest()


def bcrypt_cost(hashed: str) -> int:
    """The cost of a ``$2a$``/``$2b$``/``$2y$`` hash; ValueError past the allowed range."""
    cost = int(hashed[4:6])
    if cost > MAX_BCRYPT_COST:
        raise ValueError(f"bcrypt cost {cost} is above the maximum {MAX_BCRYPT_COST}")
    if cost < MIN_BCRYPT_COST:
        raise ValueError(f"bcrypt cost {cost} is below the minimum {MIN_BCRYPT_COST}")
    return cost


def _decoy(cost: int) -> bytes:
    # checkpw hashes with the salt and cost of the stored value and compares: a fresh salt
    # and random digits cost a real check, without paying a hashpw here at start-up.
    digits = "".join(secrets.choice(_BCRYPT_ALPHABET) for _ in range(31))
    return bcrypt.gensalt(cost) + digits.encode()


def _credentials(header: str | None) -> tuple[bytes, bytes] | None:
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    return (user, password) if sep else None
