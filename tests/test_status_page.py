"""The status page (/status): rendering (pure), its colours' contrast, its remote readers
against fake Prometheus and Alertmanager servers (timeouts, garbage, oversize answers), its
settings, and the web config's basic auth in front of it."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from exporter.collect.scheduler import Snapshot
from exporter.config import ConfigError, load_config
from exporter.config.settings import StatusPageSettings
from exporter.config.typed import Duration
from exporter.web import status
from exporter.web.server import ExporterHTTPServer
from exporter.web.status import Figure, StatusView, TierRow, render_status_page
from exporter.web.status_page import (
    EXPRESSIONS,
    MAX_ALERTS_SHOWN,
    StatusPage,
    alert_rows,
    combined_query,
    local_figures,
)
from exporter.web.status_remote import (
    Alert,
    Unavailable,
    get_json,
    parse_alerts,
    parse_vector,
)
from exporter.web.webconfig import load_web_config
from tests.support.fakehttp import MALFORMED, FakeServer, Hang, Reply, Request, serving

HOSTILE = '<img src=x onerror="alert(1)"> & </dd><script>alert(2)</script>'


# --- pure: rendering -----------------------------------------------------------------


def _view(**changes: object) -> StatusView:
    base: dict[str, object] = {
        "generated_at": 1_765_000_000.0,
        "refresh": 30,
        "figures_at": 1_764_999_995,
        "revenue_today": Figure((("usd", 12345.5), ("eur", 10.0))),
        "orders_today": Figure((("", 41.6),)),
        "revenue_hour": Figure(problem="Prometheus not available: timed out after 3s"),
        "orders_hour": Figure(problem="no data yet"),
        "open_checkouts": Figure((("", 7.0),)),
        "tiers": (
            TierRow(event="gala", city="Austin", tier="vip", available=-2, capacity=40),
            TierRow(event="gala", city="Austin", tier="ga", available=3, capacity=200),
        ),
        "tiers_problem": None,
        "alerts": (
            status.AlertRow(name="Oversold", severity="critical", summary=HOSTILE, since=""),
        ),
        "alerts_more": 0,
        "alerts_problem": None,
        "sources": (
            status.SourceRow(source="postgres", state="up", last_success=1_765_000_000.0, error=""),
            status.SourceRow(source="stripe", state="down", last_success=None, error=HOSTILE),
        ),
    }
    base.update(changes)
    return StatusView(**base)  # type: ignore[arg-type]


def _figure(page: str, key: str) -> str:
    found = re.search(rf'data-figure="{key}">(.*?)</dd>', page, re.DOTALL)
    assert found, key
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def test_page_shows_each_figure_or_why_not() -> None:
    page = render_status_page(_view())
    assert _figure(page, "revenue_today") == "12,345.50 USD10.00 EUR"  # one line each
    assert _figure(page, "orders_today") == "42"
    assert _figure(page, "revenue_hour") == "Prometheus not available: timed out after 3s"
    assert _figure(page, "orders_hour") == "no data yet"
    assert _figure(page, "open_checkouts") == "7"
    assert 'data-at="1764999995"' in page and "Nothing is firing" not in page
    assert "oversold" in page and "2%" in page  # 3 of 200 left


def test_page_escapes_outside_text() -> None:
    page = render_status_page(_view())
    assert "<script" not in page and "<img" not in page
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt; &amp; &lt;/dd&gt;&lt;script&gt;" in page


def test_page_is_self_contained_semantic_and_refreshes() -> None:
    page = render_status_page(_view(refresh=45, alerts=(), sources=()))
    assert page.startswith('<!doctype html>\n<html lang="en">')
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert '<meta http-equiv="refresh" content="45">' in page
    for tag in ("<header>", "<main>", "<footer>", "<h1>", "<h2 ", "<section ", "<table"):
        assert tag in page, tag
    assert '<th scope="col">' in page and '<th scope="row">' in page
    # Nothing loaded from anywhere: no script, stylesheet link, image, font or import.
    lowered = page.lower()
    for outside in ("<script", "<link", "<img", "src=", "url(", "@import", "http://", "https://"):
        assert outside not in lowered, outside


def test_page_states_when_nothing_fires_and_when_alerts_are_unknown() -> None:
    quiet = render_status_page(_view(alerts=()))
    assert 'data-alerts="0">Nothing is firing.' in quiet
    unknown = render_status_page(
        _view(alerts=(), alerts_problem="Alertmanager not available: cannot connect.")
    )
    assert 'data-alerts="unavailable">Alertmanager not available: cannot connect.' in unknown
    assert "Nothing is firing" not in unknown
    no_prometheus = render_status_page(_view(figures_at=None))
    assert "data-at=" not in no_prometheus


def _luminance(colour: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio."""
    light, dark = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_contrast_formula_matches_wcag_reference_values() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert contrast("#ffffff", "#ffffff") == pytest.approx(1.0)


@pytest.mark.parametrize(("foreground", "background"), status.COLOUR_PAIRS)
def test_every_text_colour_pair_meets_wcag_aa(foreground: str, background: str) -> None:
    assert contrast(foreground, background) >= 4.5


def test_the_stylesheet_uses_only_the_checked_colours() -> None:
    used = set(re.findall(r"#[0-9a-fA-F]{3,8}\b", status.css()))
    declared = {c for pair in status.COLOUR_PAIRS for c in pair} | set(status.DECORATION)
    assert used and used <= declared, used - declared


# --- pure: what the page is made of --------------------------------------------------


def test_combined_query_tags_every_expression() -> None:
    query = combined_query()
    for key, expr in EXPRESSIONS.items():
        assert f'label_replace({expr}, "figure", "{key}", "", "")' in query
    assert "boxoffice:revenue:today" in query  # the generated recording rule


def _snapshot(*, fresh: bool = True) -> Snapshot:
    open_ = GaugeMetricFamily("boxoffice_checkout_sessions_open", "open")
    open_.add_metric([], 9)
    labels = ["event", "city", "tier"]
    available = GaugeMetricFamily("boxoffice_inventory_available_tickets", "a", labels=labels)
    capacity = GaugeMetricFamily("boxoffice_inventory_capacity_tickets", "c", labels=labels)
    for tier, left, cap in [("ga", 50, 100), ("vip", 1, 10), ("free", 0, 0), ("pit", -1, 5)]:
        for t in range(3):
            available.add_metric(["e", "c", f"{tier}{t}"], left + t)
            capacity.add_metric(["e", "c", f"{tier}{t}"], cap)
    return Snapshot(
        source="postgres",
        interval=1.0,
        timeout=1.0,
        families=(open_, available, capacity),
        up=True,
        finished_monotonic=100.0 if fresh else 0.0,
    )


def test_local_figures_are_the_scarcest_tiers_and_open_checkouts() -> None:
    checkouts, tiers, problem = local_figures([_snapshot()], now_monotonic=100.5)
    assert problem is None and checkouts == Figure((("", 9.0),))
    # Oversold first, then the lowest share left; a tier without seats is not "scarce".
    assert [t.tier for t in tiers] == ["pit0", "pit1", "vip0", "pit2", "vip1"]


def test_local_figures_of_a_stale_snapshot_are_not_shown() -> None:
    checkouts, tiers, problem = local_figures([_snapshot(fresh=False)], now_monotonic=1000.0)
    assert tiers == () and checkouts.values == () and problem and "no fresh data" in problem


def test_alert_rows_most_severe_first_and_bounded() -> None:
    alerts = [
        Alert({"alertname": f"W{i:02d}", "severity": "warning"}, {}, f"2026-12-07T01:{i:02d}:00Z")
        for i in range(30)
    ]
    alerts.append(Alert({"alertname": "Down", "severity": "critical"}, {"summary": "s"}, "bad"))
    rows, more = alert_rows(alerts)
    assert rows[0].name == "Down" and rows[0].summary == "s" and rows[0].since == ""
    assert rows[1].name == "W00" and rows[1].since == "07 Dec 01:00 UTC"
    assert len(rows) == MAX_ALERTS_SHOWN and more == 31 - MAX_ALERTS_SHOWN


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        "text",
        {"status": "error", "error": "bad\x1b[31m query"},
        {"status": "success", "data": {"resultType": "matrix", "result": []}},
        {"status": "success", "data": {"resultType": "vector", "result": {}}},
        {"status": "success", "data": {"resultType": "vector", "result": [1]}},
        {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1]}]}},
        {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "x"]}]}},
    ],
)
def test_garbage_prometheus_answers_are_unavailable(document: object) -> None:
    with pytest.raises(Unavailable) as caught:
        parse_vector(document)
    assert "\x1b" not in str(caught.value)


def test_prometheus_vector_drops_nan_and_keeps_labels_as_text() -> None:
    found = parse_vector(
        {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [
                    {"metric": {"currency": "usd"}, "value": [1, "12.5"]},
                    {"metric": {}, "value": [1, "NaN"]},
                ],
            },
        }
    )
    assert [(s.labels, s.value) for s in found] == [({"currency": "usd"}, 12.5)]


@pytest.mark.parametrize(
    "document", [{}, "x", [1], [{"labels": []}], [{"labels": {}, "annotations": "a"}]]
)
def test_garbage_alertmanager_answers_are_unavailable(document: object) -> None:
    with pytest.raises(Unavailable):
        parse_alerts(document)


def test_alert_text_is_one_bounded_line() -> None:
    (alert,) = parse_alerts(
        [{"labels": {"alertname": "A\nB"}, "annotations": {"summary": "x" * 10_000}}]
    )
    assert alert.labels["alertname"] == "A B"
    assert len(alert.annotations["summary"]) <= 300


# --- settings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://prometheus:9090", "must be an http(s) URL"),
        ("prometheus:9090", "must be an http(s) URL"),
        ("http://", "must name a host"),
        ("http://admin:secret@prometheus:9090", "must not hold credentials"),
        ("http://prometheus:90x0", "is not a valid URL"),
        ("http://prometheus:9090/?x=1", "without query, fragment or spaces"),
    ],
)
def test_bad_status_page_urls_are_one_line_errors(url: str, reason: str) -> None:
    for key in ("PROMETHEUS_URL", "ALERTMANAGER_URL"):
        with pytest.raises(ConfigError) as caught:
            load_config(None, env={f"BOXOFFICE_STATUS_PAGE_{key}": url})
        message = str(caught.value)
        assert reason in message and "\n" not in message
        assert "secret" not in message
        assert f"BOXOFFICE_STATUS_PAGE_{key}" in message


def test_status_path_is_reserved() -> None:
    with pytest.raises(ConfigError, match="must not be '/status'"):
        load_config(None, env={"BOXOFFICE_WEB_TELEMETRY_PATH": "/status"})


# --- components: fake Prometheus and Alertmanager ------------------------------------


class FakeMonitoring(FakeServer):
    """Prometheus' query API and Alertmanager's alerts API, on one local server."""

    def __init__(self) -> None:
        super().__init__()
        self.alerts: list[dict[str, object]] = [
            {
                "labels": {"alertname": "TicketsOversold", "severity": "critical"},
                "annotations": {"summary": HOSTILE},
                "startsAt": "2026-12-07T01:00:00.000Z",
            }
        ]

    def answer(self, request: Request) -> Reply:
        if request.path == "/api/v1/query":
            result = [
                {"metric": {"figure": "revenue_today", "currency": "usd"}, "value": [1, "1500.25"]},
                {"metric": {"figure": "orders_today"}, "value": [1, "31"]},
                {"metric": {"figure": "revenue_hour", "currency": "usd"}, "value": [1, "99"]},
            ]
            return Reply.json(
                200, {"status": "success", "data": {"resultType": "vector", "result": result}}
            )
        if request.path == "/api/v2/alerts":
            return Reply.json(200, self.alerts)
        return Reply(404, b"not found")


@pytest.fixture
def fake() -> Iterator[FakeMonitoring]:
    with serving(FakeMonitoring()) as server:
        yield server


def _page(
    fake: FakeMonitoring | None, *, timeout: float = 1.0, prom: bool = True, am: bool = True
) -> str:
    settings = StatusPageSettings(
        prometheus_url=fake.url if fake and prom else None,
        alertmanager_url=f"{fake.url}/" if fake and am else None,
        timeout=Duration(timeout),
    )
    return StatusPage(settings, lambda: [_snapshot(fresh=False)], cache_seconds=0).render()


def test_figures_and_alerts_come_from_prometheus_and_alertmanager(fake: FakeMonitoring) -> None:
    page = _page(fake)
    assert _figure(page, "revenue_today") == "1,500.25 USD"
    assert _figure(page, "orders_today") == "31"
    assert _figure(page, "revenue_hour") == "99.00 USD"
    assert _figure(page, "orders_hour") == "no data yet"
    assert "TicketsOversold" in page and "<script" not in page and 'data-alerts="1"' in page
    query = next(r for r in fake.requests if r.path == "/api/v1/query")
    params = dict(query.query)
    assert params["query"] == combined_query() and params["time"].isdigit()
    alerts = next(r for r in fake.requests if r.path == "/api/v2/alerts")
    assert dict(alerts.query) == {"active": "true", "silenced": "false", "inhibited": "false"}


def test_neither_configured_shows_what_the_exporter_knows() -> None:
    settings = StatusPageSettings()
    page = StatusPage(settings, lambda: [_snapshot()], cache_seconds=0).render()
    assert _figure(page, "revenue_today") == "not configured (status_page.prometheus_url)"
    assert "Not configured (status_page.alertmanager_url)." in page
    # _snapshot() finished at monotonic 100: fresh only if the clock is near; build a fresh one.
    assert "data-at=" not in page


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Hang(5), "timed out after 0.5s"),
        (MALFORMED, "answer is not JSON"),
        (Reply(500, b"oops"), "answered HTTP 500"),
        (Reply(302, b"", {"Location": "http://example.invalid/"}), "answered HTTP 302"),
        (
            Reply.json(200, {"status": "success", "data": {"resultType": "scalar"}}),
            "unexpected answer",
        ),
    ],
)
def test_a_failing_prometheus_or_alertmanager_is_shown_as_not_available(
    fake: FakeMonitoring, fault: Hang | Reply, reason: str
) -> None:
    fake.fail_next(fault)
    page = _page(fake, timeout=0.5, am=False)
    assert _figure(page, "revenue_today") == f"Prometheus not available: {reason}"
    fake.clear_faults()
    fake.fail_next(fault)
    page = _page(fake, timeout=0.5, prom=False)
    if not isinstance(fault, Reply) or fault.status != 200 or fault is MALFORMED:
        assert f"Alertmanager not available: {reason}." in page


def test_oversize_answers_are_refused(fake: FakeMonitoring) -> None:
    fake.alerts = [{"labels": {"alertname": "x" * 1000}, "annotations": {}}] * 2000
    page = _page(fake, prom=False)
    assert "Alertmanager not available: answer larger than 1048576 bytes." in page
    with requests.Session() as session, pytest.raises(Unavailable, match="larger than 100"):
        get_json(session, f"{fake.url}/api/v2/alerts", {}, timeout=1, max_bytes=100)


def test_unreachable_services_are_not_available() -> None:
    settings = StatusPageSettings(
        prometheus_url="http://127.0.0.1:9",
        alertmanager_url="http://127.0.0.1:9",
        timeout=Duration(1),
    )
    page = StatusPage(settings, list, cache_seconds=0).render()
    assert _figure(page, "orders_today") == "Prometheus not available: cannot connect"
    assert "Alertmanager not available: cannot connect." in page
    assert "No sources configured." in page


def test_answers_are_shared_for_a_few_seconds(fake: FakeMonitoring) -> None:
    settings = StatusPageSettings(prometheus_url=fake.url, alertmanager_url=fake.url)
    page = StatusPage(settings, list, cache_seconds=60)
    page.render()
    page.render()
    assert len(fake.requests) == 2  # one query, one alerts call


# --- the web server: auth and headers -------------------------------------------------


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  owner: '{_hash('s3cret')}'\n")
    http = ExporterHTTPServer(
        registry=CollectorRegistry(auto_describe=False),
        listen_address="127.0.0.1:0",
        web_config=load_web_config(str(web)),
        status_page=lambda: render_status_page(_view()),
    )
    http.start()
    try:
        yield http.url
    finally:
        http.shutdown()


def test_status_page_needs_the_web_config_credentials(server: str) -> None:
    refused = requests.get(f"{server}/status", timeout=5)
    assert refused.status_code == 401 and "Box office" not in refused.text
    assert refused.headers["WWW-Authenticate"].startswith("Basic")
    wrong = requests.get(f"{server}/status", auth=("owner", "guess"), timeout=5)
    assert wrong.status_code == 401
    token = base64.b64encode(b"owner:s3cret").decode()
    ok = requests.get(f"{server}/status", headers={"Authorization": f"Basic {token}"}, timeout=5)
    assert ok.status_code == 200 and ok.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in ok.headers["Content-Security-Policy"]
    assert ok.headers["Cache-Control"] == "no-store"
    assert ok.headers["X-Content-Type-Options"] == "nosniff"
    assert requests.post(f"{server}/status", auth=("owner", "s3cret"), timeout=5).status_code == 405


def test_no_status_page_when_disabled() -> None:
    http = ExporterHTTPServer(
        registry=CollectorRegistry(auto_describe=False), listen_address="127.0.0.1:0"
    )
    http.start()
    try:
        assert requests.get(f"{http.url}/status", timeout=5).status_code == 404
    finally:
        http.shutdown()
