"""What /metrics sends: format negotiation, gzip, and the encoded-body cache."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Hashable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` header allows gzip (``gzip;q=0`` refuses it)."""
    for item in accept_encoding.split(","):
        coding, *params = (p.strip() for p in item.split(";"))
        if coding.lower() != "gzip":
            continue
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


class ExpositionCache:
    """Encodes the registry once per version and format; scrapes in between reuse the bytes.

    ``version`` must change whenever what the collectors return changes. Without one,
    every scrape encodes afresh.
    """

    def __init__(self, registry: CollectorRegistry, version: Callable[[], Hashable] | None) -> None:
        self._registry = registry
        self._version = version
        self._cache: dict[tuple[str, bool], tuple[Hashable, bytes]] = {}

    def render(self, accept: str, gzipped: bool) -> tuple[bytes, str]:
        """The body for this Accept header (gzip-compressed when asked) and its content type."""
        encoder, content_type = choose_encoder(accept)
        if self._version is None:
            return _compress(encoder(self._registry), gzipped), content_type
        # Read the version before encoding: the body is then at least as new as its key, and
        # a change during encoding only costs the next scrape one more encoding.
        version = self._version()
        key = (content_type, gzipped)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == version:
            return cached[1], content_type
        body = _compress(encoder(self._registry), gzipped)
        self._cache[key] = (version, body)
        return body, content_type


def _compress(body: bytes, gzipped: bool) -> bytes:
    # Level 6 as Go's promhttp: level 9 costs several times the CPU for a few percent.
    return gzip.compress(body, compresslevel=6) if gzipped else body
