"""What /metrics sends: format negotiation, gzip, and the encoded-body cache."""

from __future__ import annotations

import functools
import gzip
import io
import re
from collections.abc import Callable, Hashable, Iterable
from typing import Any, cast

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder, generate_latest
from prometheus_client.openmetrics.exposition import UNDERSCORES
from prometheus_client.openmetrics.exposition import generate_latest as _openmetrics_untyped
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from exporter.sources.families import parts_of

# The library's OpenMetrics encoder (untyped upstream), which Prometheus' scrapes choose.
openmetrics_latest = cast(Callable[..., bytes], _openmetrics_untyped)
# The library's own spelling of a value (Go's: `+Inf`, `1e+21`); untyped upstream.
_float_text = cast(Callable[[float], str], floatToGoString)
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Families of these types may carry samples that generate_latest moves or renames.
_PLAIN_TYPES = {"counter": "counter", "gauge": "gauge", "info": "gauge", "unknown": "untyped"}


class _Fixed(Collector):
    """A collector over families already collected (for the fallback encoding)."""

    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self._metrics


class PartTexts:
    """The text of each part of each family from the last encoding, keyed by the part.

    A family merged from several databases' families is made of their sample lists
    (:func:`exporter.sources.families.parts_of`), and a database whose series did not
    change publishes the very same list again (exporter.sources.reuse); a part's text
    depends on nothing but its samples and its family's name (samples and their label
    dicts are never changed once built). Entries hold their list, so an id is never taken
    for another object's. Only the last encoding's parts are kept: a part gone from the
    exposition costs nothing after one more encoding.
    """

    def __init__(self) -> None:
        # part id: (part, family name, its lines, whether OpenMetrics spells them alike)
        self.last: dict[int, tuple[list[Any], str, bytes, bool]] = {}


class _Unusual(Exception):
    """A sample this encoder does not spell exactly like the library."""


def encode_text(registry: CollectorRegistry, texts: PartTexts | None = None) -> bytes:
    """What ``generate_latest(registry)`` returns (text format 0.0.4), byte for byte.

    The library's encoder escapes every label name and value of every sample afresh; a
    cycle of 50 databases repeats the same few thousand ``name="value"`` pairs ~50,000
    times, so each pair is escaped once per encoding here, and with ``texts`` a part
    already encoded last time is not encoded again. Anything this encoder does not
    spell exactly like the library (names outside the legacy character set, timestamps,
    histograms, summaries, `_created` samples) goes to ``generate_latest`` whole;
    tests/test_encode_text.py compares the two on hostile families.
    """
    return b"".join(text_chunks(registry, texts))


def text_chunks(
    registry: CollectorRegistry, texts: PartTexts | None = None, *, openmetrics: bool = False
) -> list[bytes]:
    """:func:`encode_text`'s body in pieces, most of them kept in ``texts`` already: a
    caller that compresses them one by one never holds the whole uncompressed body.

    With ``openmetrics``, what prometheus_client's OpenMetrics 1.0.0 encoder writes with
    the `underscores` escaping (what Prometheus asks for): the same sample lines under the
    family's own name and type (`# TYPE x counter` for `x_total`, `info`, `unknown`),
    quotes escaped in HELP, and `# EOF`. A sample name it would rewrite (a colon), an
    exemplar, a unit or any sample the text encoder hands over goes to the library whole.
    """
    metrics = list(registry.collect())
    out: list[bytes] = []
    pairs: dict[tuple[str, str], str] = {}
    last = texts.last if texts is not None else {}
    now: dict[int, tuple[list[Any], str, bytes, bool]] = {}
    try:
        for metric in metrics:
            out.append(_header(metric, openmetrics))
            for part in parts_of(metric):
                hit = last.get(id(part))
                if hit is not None and hit[0] is part and hit[1] == metric.name:
                    entry = hit
                else:
                    lines, plain = _lines(metric.name, part, pairs)
                    entry = (part, metric.name, "".join(lines).encode(), plain)
                if openmetrics and not entry[3]:
                    raise _Unusual
                now[id(part)] = entry
                out.append(entry[2])
    except _Unusual:
        if openmetrics:
            return [openmetrics_latest(_Fixed(metrics), escaping=UNDERSCORES, version="1.0.0")]
        return [generate_latest(_Fixed(metrics))]
    if texts is not None:
        texts.last = now
    if openmetrics:
        out.append(b"# EOF\n")
    return out


def _header(metric: Metric, openmetrics: bool) -> bytes:
    """A family's HELP and TYPE lines (:class:`_Unusual` for a type or name not plain)."""
    mtype = _PLAIN_TYPES.get(metric.type)
    if mtype is None or not _METRIC_NAME.fullmatch(metric.name):
        raise _Unusual
    doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
    if openmetrics:
        if metric.unit:
            raise _Unusual
        doc = doc.replace('"', r"\"")
        return f"# HELP {metric.name} {doc}\n# TYPE {metric.name} {metric.type}\n".encode()
    mname = metric.name
    if metric.type == "counter":
        mname += "_total"
    elif metric.type == "info":
        mname += "_info"
    return f"# HELP {mname} {doc}\n# TYPE {mname} {mtype}\n".encode()


def _lines(
    family: str, samples: list[Any], pairs: dict[tuple[str, str], str]
) -> tuple[list[str], bool]:
    """One text line per sample of ``family`` (``pairs``: each ``name="value"`` escaped
    once), and whether OpenMetrics writes these very lines (no colon in a sample name, no
    exemplar)."""
    moved = {family + suffix for suffix in ("_created", "_gsum", "_gcount")}
    lines = []
    plain = True
    for sample in samples:
        name = sample.name
        if sample.timestamp is not None or name in moved or not _METRIC_NAME.fullmatch(name):
            raise _Unusual
        if sample.exemplar is not None or not _LABEL_NAME.fullmatch(name):
            plain = False
        labels = sample.labels
        if labels:
            texts = []
            for item in sorted(labels.items()):
                text = pairs.get(item)
                if text is None:
                    key, value = item
                    if not _LABEL_NAME.fullmatch(key):
                        raise _Unusual
                    escaped = value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
                    text = pairs[item] = f'{key}="{escaped}"'
                texts.append(text)
            lines.append(f"{name}{{{','.join(texts)}}} {_float_text(sample.value)}\n")
        else:
            lines.append(f"{name} {_float_text(sample.value)}\n")
    return lines, plain


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
        self._texts = PartTexts()

    def render(self, accept: str, gzipped: bool) -> tuple[bytes, str]:
        """The body for this Accept header (gzip-compressed when asked) and its content type."""
        chosen, content_type = choose_encoder(accept)
        library = cast(Callable[[CollectorRegistry], bytes], chosen)

        def encoder(registry: CollectorRegistry) -> list[bytes]:
            if chosen is generate_latest:
                return text_chunks(registry, self._texts)
            if _is_openmetrics_1(chosen):
                return text_chunks(registry, self._texts, openmetrics=True)
            return [library(registry)]

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


def _is_openmetrics_1(encoder: object) -> bool:
    """Whether ``choose_encoder`` chose OpenMetrics 1.0.0 with `underscores` escaping."""
    return (
        isinstance(encoder, functools.partial)
        and encoder.func is openmetrics_latest
        and encoder.keywords == {"escaping": UNDERSCORES, "version": "1.0.0"}
    )


def _compress(chunks: list[bytes], gzipped: bool) -> bytes:
    if not gzipped:
        return b"".join(chunks)
    # Level 6 as Go's promhttp: level 9 costs several times the CPU for a few percent.
    # Chunk by chunk: the uncompressed body (8 MB at 50 databases) is never held whole.
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6) as stream:
        for chunk in chunks:
            stream.write(chunk)
    return out.getvalue()
