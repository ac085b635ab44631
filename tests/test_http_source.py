"""The HTTP health source with a real requests session against local endpoints."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
import requests
from prometheus_client import CollectorRegistry

from exporter.sources.base import Collection
from exporter.sources.http import HttpSource, Target
from tests.support.fake_health import FakeHealth
from tests.support.fakehttp import Hang, Reply, serving


@pytest.fixture
def health() -> Iterator[FakeHealth]:
    with serving(FakeHealth()) as server:
        yield server  # type: ignore[misc]


def _registry(result: Collection) -> CollectorRegistry:
    class Fixed:
        def collect(self) -> object:
            return result.families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())  # type: ignore[arg-type]
    return registry


def _collect(*targets: Target) -> tuple[Collection, CollectorRegistry]:
    source = HttpSource(targets=targets, session=requests.Session(), interval=1.0)
    try:
        result = source.collect()
    finally:
        source.close()
    return result, _registry(result)


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/health"


def test_one_unhealthy_component_is_reported_and_the_probe_still_succeeds(
    health: FakeHealth,
) -> None:
    health.set_service("stripe", "unhealthy")
    result, registry = _collect(Target(name="app", url=f"{health.url}/health"))
    assert result.ok
    get = registry.get_sample_value
    assert get("boxoffice_probe_success", {"target": "app"}) == 1
    assert get("boxoffice_probe_status_code", {"target": "app"}) == 200
    assert 0 < (get("boxoffice_probe_duration_seconds", {"target": "app"}) or 0) < 2
    assert get("boxoffice_app_component_up", {"target": "app", "component": "database"}) == 1
    assert get("boxoffice_app_component_up", {"target": "app", "component": "stripe"}) == 0


def test_probe_failures_are_probe_results_not_source_failures(health: FakeHealth) -> None:
    health.status = 503
    result, registry = _collect(
        Target(name="degraded", url=f"{health.url}/health"),
        Target(name="refused", url=_refused_url(), timeout=1.0),
        Target(name="missing", url=f"{health.url}/nope"),
    )
    assert result.ok, result.failures
    get = registry.get_sample_value
    assert get("boxoffice_probe_success", {"target": "degraded"}) == 0
    assert get("boxoffice_probe_status_code", {"target": "degraded"}) == 503
    # A 503 body still tells which component is down.
    assert get("boxoffice_app_component_up", {"target": "degraded", "component": "database"}) == 1
    assert get("boxoffice_probe_success", {"target": "refused"}) == 0
    assert get("boxoffice_probe_status_code", {"target": "refused"}) == 0
    assert get("boxoffice_probe_status_code", {"target": "missing"}) == 404


def test_a_hanging_target_costs_its_timeout_and_does_not_delay_the_others(
    health: FakeHealth,
) -> None:
    with serving(FakeHealth()) as slow:
        slow.fail_next(Hang(5))
        started = time.monotonic()
        _result, registry = _collect(
            Target(name="slow", url=f"{slow.url}/health", timeout=0.5),
            Target(name="app", url=f"{health.url}/health", timeout=0.5),
        )
        elapsed = time.monotonic() - started
    get = registry.get_sample_value
    assert get("boxoffice_probe_success", {"target": "slow"}) == 0
    assert get("boxoffice_probe_status_code", {"target": "slow"}) == 0
    assert 0.4 < (get("boxoffice_probe_duration_seconds", {"target": "slow"}) or 0) < 1.5
    assert get("boxoffice_probe_success", {"target": "app"}) == 1
    assert elapsed < 1.5, "targets are probed concurrently"


def test_expected_status_method_and_headers_are_honoured(health: FakeHealth) -> None:
    health.required_headers = {"Authorization": "Bearer probe-secret"}
    result, registry = _collect(
        Target(
            name="head", url=f"{health.url}/health", method="HEAD", headers=health.required_headers
        ),
        Target(name="no-auth", url=f"{health.url}/health", expected_status=401),
    )
    assert result.ok
    get = registry.get_sample_value
    assert get("boxoffice_probe_success", {"target": "head"}) == 1
    assert get("boxoffice_probe_success", {"target": "no-auth"}) == 1
    assert get("boxoffice_probe_status_code", {"target": "no-auth"}) == 401


def test_a_configured_components_path_that_cannot_be_read_is_a_decode_failure(
    health: FakeHealth,
) -> None:
    with serving(FakeHealth()) as plain:
        plain.fail_next(Reply(200, b"OK", {"Content-Type": "text/plain"}))
        result, registry = _collect(
            Target(name="app", url=f"{plain.url}/health", components_path="services"),
            Target(name="other", url=f"{health.url}/health", components_path="checks"),
        )
    assert sorted(f.reason for f in result.failures) == ["decode", "decode"]
    messages = " ".join(f.message for f in result.failures)
    assert "not valid JSON" in messages
    assert "no 'checks' in the health document" in messages
    # The probes themselves are still published.
    assert registry.get_sample_value("boxoffice_probe_success", {"target": "app"}) == 1


def test_a_source_without_targets_is_a_bug() -> None:
    with pytest.raises(ValueError, match="at least one target"):
        HttpSource(targets=[], session=requests.Session(), interval=1.0)
