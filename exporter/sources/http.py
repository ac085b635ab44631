"""The HTTP health source: probes each target; a JSON health body yields one series per component.

A target that fails (refused, timed out, wrong status) is a failed *probe*
(``boxoffice_probe_success 0``), which is what the probe exists to report; the source itself
only fails when a body that was meant to be a health document cannot be read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
from prometheus_client.core import Metric

from exporter.sources.base import Collection, Failure
from exporter.sources.families import family

MAX_BODY = 1 << 20  # a health document is small; never hold more than this
DEFAULT_PATHS = ("services", "components", "checks", "details")
UP_WORDS = frozenset({"healthy", "up", "ok", "pass", "passing", "true", "green"})


@dataclass(frozen=True, kw_only=True)
class Target:
    """One endpoint to probe (headers already hold the secrets read from files)."""

    name: str
    url: str
    method: str = "GET"
    expected_status: int = 200
    timeout: float = 5.0
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    components_path: str | None = None


@dataclass(frozen=True, kw_only=True)
class Probe:
    """The outcome of probing one target."""

    target: str
    success: bool
    duration: float
    status: int  # 0 when no response came back
    components: dict[str, bool] = field(default_factory=dict)
    problem: str | None = None  # why the health body could not be read, when it was expected


class HealthBodyError(ValueError):
    """A health body that cannot be read as components."""


def component_up(value: Any) -> bool:
    """Whether one component's entry says it is healthy (``{"status": "healthy"}``, "UP", true)."""
    if isinstance(value, Mapping):
        value = value.get("status", value.get("state"))
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in UP_WORDS


def parse_components(document: Any, path: str | None) -> dict[str, bool]:
    """Components and whether each is up, from a decoded health document (pure).

    With ``path`` (dotted, e.g. ``status.services``) the mapping must be there; without it,
    the first of ``services``, ``components``, ``checks``, ``details`` found is used, and a
    document with none of them has no components.
    """
    if path is None:
        if not isinstance(document, Mapping):
            return {}
        found = next((document[key] for key in DEFAULT_PATHS if key in document), None)
        if found is None:
            return {}
        where = next(key for key in DEFAULT_PATHS if key in document)
    else:
        found = document
        for key in path.split("."):
            if not isinstance(found, Mapping) or key not in found:
                raise HealthBodyError(f"no {path!r} in the health document")
            found = found[key]
        where = path
    if not isinstance(found, Mapping):
        raise HealthBodyError(f"{where!r} in the health document is not a mapping")
    return {str(name): component_up(value) for name, value in found.items()}


def http_families(probes: Sequence[Probe]) -> list[Metric]:
    """The HTTP source's metric families (pure)."""
    success = family("boxoffice_probe_success")
    duration = family("boxoffice_probe_duration_seconds")
    status = family("boxoffice_probe_status_code")
    components = family("boxoffice_app_component_up")
    for probe in sorted(probes, key=lambda p: p.target):
        success.add_metric([probe.target], 1.0 if probe.success else 0.0)
        duration.add_metric([probe.target], probe.duration)
        status.add_metric([probe.target], float(probe.status))
        for name in sorted(probe.components):
            components.add_metric([probe.target, name], 1.0 if probe.components[name] else 0.0)
    return [success, duration, status, components]


class HttpSource:
    """Probes every target concurrently on each collection."""

    name = "http"

    def __init__(
        self,
        *,
        targets: Sequence[Target],
        session: requests.Session,
        interval: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not targets:
            raise ValueError("the HTTP source needs at least one target")
        self.interval = interval
        self.timeout = max(t.timeout for t in targets)
        self._targets = tuple(targets)
        self._session = session
        self._monotonic = monotonic
        self._pool = ThreadPoolExecutor(
            max_workers=min(8, len(self._targets)), thread_name_prefix="probe"
        )

    def collect(self) -> Collection:
        """Probe all targets; only unreadable health bodies count as source failures."""
        probes = list(self._pool.map(self.probe, self._targets))
        failures = tuple(
            Failure("decode", f"target {p.target!r}: {p.problem}") for p in probes if p.problem
        )
        return Collection(tuple(http_families(probes)), failures)

    def probe(self, target: Target) -> Probe:
        """Request one target and read its health body."""
        started = self._monotonic()
        try:
            with self._session.request(
                target.method,
                target.url,
                headers=dict(target.headers),
                timeout=target.timeout,
                stream=True,
            ) as answer:
                body = _read_bounded(answer, started + target.timeout, self._monotonic)
                status = answer.status_code
        except requests.RequestException:
            return Probe(
                target=target.name,
                success=False,
                duration=self._monotonic() - started,
                status=0,
            )
        duration = self._monotonic() - started
        success = status == target.expected_status
        components, problem = _components(body, target.components_path)
        return Probe(
            target=target.name,
            success=success,
            duration=duration,
            status=status,
            components=components,
            problem=problem,
        )

    def close(self) -> None:
        """Stop the probe threads and close the session."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()


def _read_bounded(answer: requests.Response, deadline: float, now: Callable[[], float]) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in answer.iter_content(chunk_size=65536):
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY or now() > deadline:
            break
    return b"".join(chunks)[:MAX_BODY]


def _components(body: bytes, path: str | None) -> tuple[dict[str, bool], str | None]:
    if not body.strip():
        return {}, ("the health body is empty" if path else None)
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}, ("the health body is not valid JSON" if path else None)
    try:
        return parse_components(document, path), None
    except HealthBodyError as exc:
        return {}, str(exc)
