"""The SMS bridge end to end: its real HTTP server, the real twilio SDK, a fake Twilio API."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.smsbridge.payload import PayloadError, parse_notification
from exporter.smsbridge.sender import mask
from exporter.web.limits import ServerLimits
from tests.support.alerts import alert, payment_alert, webhook
from tests.support.bridge import (
    BEARER,
    FROM,
    ONCALL,
    SOLO,
    config,
    post,
    running_bridge,
)
from tests.support.certs import make_pki
from tests.support.exporter import scrape, value, wait_for
from tests.support.fake_twilio import AUTH_TOKEN, FakeTwilio, error_reply, rate_limit_reply
from tests.support.fakehttp import Hang, serving

AUTH = {"Authorization": f"Bearer {BEARER}"}
TEXT = (
    "CRITICAL tier 2: 2 firing: PaymentSuccessRateLow (payments), InventoryLow (inventory)"
    " - Payment success 91% over 5m"
)


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with serving(FakeTwilio()) as fake:
        assert isinstance(fake, FakeTwilio)
        yield fake


def _notification(**kwargs: object) -> dict[str, object]:
    return webhook(payment_alert(), alert("InventoryLow", category="inventory"), **kwargs)  # type: ignore[arg-type]


def _creates(twilio: FakeTwilio) -> int:
    return sum(1 for r in twilio.requests if r.method == "POST")


def _metric(url: str, name: str, **labels: str) -> float | None:
    return value(scrape(url, headers=AUTH), f"boxoffice_sms_bridge_{name}", **labels)


def test_a_group_of_three_gets_one_sms_each_and_a_retry_sends_nothing(
    tmp_path: Path, twilio: FakeTwilio
) -> None:
    with running_bridge(config(tmp_path, twilio.url)) as (_parts, url):
        answer = post(url, _notification())
        assert answer.status_code == 200, answer.text
        assert [m["to"] for m in twilio.created] == ONCALL
        assert {m["body"] for m in twilio.created} == {TEXT}
        assert {m["from"] for m in twilio.created} == {FROM}
        assert answer.text.count(" sent: SM") == 3
        assert "4155550101" not in answer.text  # numbers are masked in answers too

        again = post(url, _notification())  # Alertmanager retrying, or its peer
        assert again.status_code == 200
        assert again.text.count("deduplicated: already sent as SM") == 3
        assert len(twilio.created) == 3
        assert _metric(url, "messages_sent_total") == 3
        assert _metric(url, "message_segments_sent_total") == 3
        assert _metric(url, "messages_deduplicated_total") == 3
        assert _metric(url, "notifications_received_total") == 2

        resolved = webhook(
            payment_alert(status="resolved"),
            alert("InventoryLow", category="inventory", status="resolved"),
        )
        assert post(url, resolved).status_code == 200  # a new notification: sent again
        assert len(twilio.created) == 6
        assert (
            twilio.created[-1]["body"]
            == "RESOLVED: PaymentSuccessRateLow (payments), InventoryLow (inventory)"
        )


def test_a_restarted_bridge_on_the_same_file_sends_nothing(
    tmp_path: Path, twilio: FakeTwilio
) -> None:
    cfg = config(tmp_path, twilio.url)
    with running_bridge(cfg) as (_parts, url):
        assert post(url, _notification()).status_code == 200
    with running_bridge(cfg) as (_parts, url):
        again = post(url, _notification())
        assert again.status_code == 200
        assert _metric(url, "messages_deduplicated_total") == 3
    assert len(twilio.created) == 3


def test_a_partial_failure_is_retried_for_the_missing_recipient_only(
    tmp_path: Path, twilio: FakeTwilio
) -> None:
    twilio.failing[ONCALL[1]] = error_reply(500, 20500, "Internal Server Error")
    with running_bridge(config(tmp_path, twilio.url)) as (_parts, url):
        answer = post(url, _notification())
        assert answer.status_code == 503  # Alertmanager retries 5xx
        assert [m["to"] for m in twilio.created] == [ONCALL[0], ONCALL[2]]
        assert _metric(url, "messages_failed_total", reason="twilio_unavailable") >= 2  # type: ignore[operator]
        assert _metric(url, "send_retries_total") >= 1  # type: ignore[operator]

        del twilio.failing[ONCALL[1]]  # Twilio is back
        assert post(url, _notification()).status_code == 200
        assert [m["to"] for m in twilio.created] == [ONCALL[0], ONCALL[2], ONCALL[1]]
        assert post(url, _notification()).status_code == 200
        assert len(twilio.created) == 3


def test_twilio_down_answers_503_and_the_retry_sends_exactly_once(
    tmp_path: Path, twilio: FakeTwilio
) -> None:
    twilio.fail_next(*[error_reply(503, 20503, "Service Unavailable")] * 20)
    with running_bridge(config(tmp_path, twilio.url)) as (_parts, url):
        assert post(url, _notification(), group="solo").status_code == 503
        assert twilio.created == []
        twilio.clear_faults()
        assert post(url, _notification(), group="solo").status_code == 200
        assert post(url, _notification(), group="solo").status_code == 200
        assert [m["to"] for m in twilio.created] == SOLO


def test_a_429_is_retried_after_retry_after_within_the_deadline(
    tmp_path: Path, twilio: FakeTwilio
) -> None:
    twilio.fail_next(rate_limit_reply(1))
    with running_bridge(config(tmp_path, twilio.url)) as (_parts, url):
        started = time.monotonic()
        assert post(url, _notification(), group="solo").status_code == 200
        assert time.monotonic() - started >= 1.0  # waited as Twilio asked
        assert len(twilio.created) == 1
        assert _metric(url, "messages_failed_total", reason="rate_limited") == 1
        assert _metric(url, "send_retries_total") == 1


def test_a_retry_after_beyond_the_deadline_answers_503_at_once(
    tmp_path: Path, twilio: FakeTwilio
) -> None:
    twilio.fail_next(rate_limit_reply(60))
    with running_bridge(config(tmp_path, twilio.url)) as (_parts, url):
        started = time.monotonic()
        assert post(url, _notification(), group="solo").status_code == 503
        assert time.monotonic() - started < 3  # no sleeping past the webhook's deadline
        assert twilio.created == []
        assert post(url, _notification(), group="solo").status_code == 200
        assert len(twilio.created) == 1


def test_a_hanging_twilio_times_out_into_503_then_recovers(
    tmp_path: Path, twilio: FakeTwilio
) -> None:
    twilio.fail_next(Hang(3), Hang(3), Hang(3))
    with running_bridge(config(tmp_path, twilio.url)) as (_parts, url):
        answer = post(url, _notification(), group="solo")
        assert answer.status_code == 503
        assert "no answer in time" in answer.text
        # Twilio may have taken a message it never answered for: counted, not hidden.
        assert _metric(url, "possible_duplicates_total") >= 1  # type: ignore[operator]
        twilio.clear_faults()
        assert post(url, _notification(), group="solo").status_code == 200
        assert len(twilio.created) == 1


def test_an_invalid_number_is_recorded_and_never_retried(
    tmp_path: Path, twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    twilio.invalid_numbers.add(ONCALL[1])
    caplog.set_level(logging.DEBUG)
    with running_bridge(config(tmp_path, twilio.url)) as (_parts, url):
        answer = post(url, _notification())
        assert answer.status_code == 200  # a retry cannot fix it: Alertmanager must not retry
        assert "rejected: Twilio: HTTP 400, error 21211" in answer.text
        assert [m["to"] for m in twilio.created] == [ONCALL[0], ONCALL[2]]
        creates = _creates(twilio)
        assert post(url, _notification()).status_code == 200
        assert _creates(twilio) == creates  # the retry does not ask Twilio again
        assert _metric(url, "messages_failed_total", reason="rejected") == 1
    assert "error 21211" in caplog.text
    assert mask(ONCALL[1]) in caplog.text
    for number in ONCALL:
        assert number not in caplog.text  # logs show masked numbers only


def test_credentials_are_required_and_checked(tmp_path: Path, twilio: FakeTwilio) -> None:
    hashed = bcrypt.hashpw(b"am-password", bcrypt.gensalt(4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  alertmanager: '{hashed}'\n")
    with running_bridge(config(tmp_path, twilio.url, web_config_file=str(web))) as (_parts, url):
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Bearer {BEARER}x"},
            {"Authorization": f"Basic {BEARER}"},
            {"Authorization": "Token abc"},
        ):
            refused = post(url, _notification(), headers=headers)
            assert refused.status_code == 401
            assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert (
            post(url, _notification(), auth=("alertmanager", "wrong"), headers={}).status_code
            == 401
        )
        assert (
            post(url, _notification(), auth=("alertmanager", "am-password"), headers={}).status_code
            == 200
        )
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200  # probes need no token
        assert requests.get(f"{url}/metrics", timeout=5).status_code == 401
        assert _metric(url, "requests_rejected_total", reason="unauthorized") == 7
        assert len(twilio.created) == 3


def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        return sock.recv(4096)


def test_bad_requests_get_4xx_and_send_nothing(tmp_path: Path, twilio: FakeTwilio) -> None:
    with running_bridge(config(tmp_path, twilio.url, max_body_bytes=2048)) as (_parts, url):
        assert post(url, _notification(), group="nobody").status_code == 404
        assert post(url, _notification(), group="oncall/extra").status_code == 404
        too_big = post(url, b"{" + b" " * 4096 + b"}")
        assert too_big.status_code == 413
        assert too_big.text == "body larger than 2048 bytes\n"
        # Content-Length is checked before reading: a lying header never makes us wait.
        head = (
            f"POST /alerts/oncall HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {BEARER}\r\n"
            "Content-Length: 999999999\r\n\r\n"
        ).encode()
        assert _raw(url, head).startswith(b"HTTP/1.1 413 ")
        chunked = (
            f"POST /alerts/oncall HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {BEARER}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        ).encode()
        assert _raw(url, chunked).startswith(b"HTTP/1.1 411 ")
        malformed = post(url, b'{"version": "4", ')
        assert malformed.status_code == 400
        assert malformed.text.startswith("not an Alertmanager webhook: body is not JSON")
        wrong_version = post(url, {**_notification(), "version": "3"})
        assert (wrong_version.status_code, wrong_version.text) == (
            400,
            'not an Alertmanager webhook: version: must be "4", got "3"\n',
        )
        assert requests.put(f"{url}/alerts/oncall", headers=AUTH, timeout=5).status_code == 405
        assert _metric(url, "requests_rejected_total", reason="too_large") == 2
        assert _metric(url, "requests_rejected_total", reason="schema") == 1
        assert _metric(url, "requests_rejected_total", reason="malformed") == 1
        assert _metric(url, "requests_rejected_total", reason="unknown_group") == 2
    assert twilio.created == []


def test_secrets_never_reach_logs_answers_or_metrics(
    tmp_path: Path, twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    twilio.fail_next(error_reply(401, 20003, "Authenticate"), rate_limit_reply(0))
    with running_bridge(config(tmp_path, twilio.url)) as (_parts, url):
        answers = [
            post(url, _notification()),
            post(url, _notification(), headers={"Authorization": "Bearer nope"}),
        ]
        metrics = requests.get(f"{url}/metrics", headers=AUTH, timeout=5).text
    seen = caplog.text + metrics + "".join(a.text + str(a.headers) for a in answers)
    assert AUTH_TOKEN not in seen
    assert BEARER not in seen
    assert "twilio.com/2010-04-01" not in seen


def test_dry_run_logs_instead_of_sending(
    tmp_path: Path, twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cfg = config(tmp_path, twilio.url, dry_run=True, account_sid=None, auth_token_file=None)
    with running_bridge(cfg) as (_parts, url):
        assert post(url, _notification()).status_code == 200
        assert post(url, _notification()).status_code == 200  # nothing recorded in a dry run
        assert _metric(url, "messages_dry_run_total") == 6
        assert _metric(url, "messages_sent_total") == 0
    assert twilio.requests == []
    assert f"dry run: SMS to {mask(ONCALL[0])}: {TEXT}" in caplog.text
    assert not (tmp_path / "sms-bridge.sqlite").exists()


def test_two_bridges_sharing_postgresql_send_each_sms_once(
    tmp_path: Path, twilio: FakeTwilio, pg_dsn: str
) -> None:
    """Two Alertmanagers in a cluster may both notify, each to its own bridge (SPEC 6)."""
    cfg = config(tmp_path, twilio.url, store_dsn=pg_dsn)
    with running_bridge(cfg) as (_a, url_a), running_bridge(cfg) as (_b, url_b):
        assert post(url_a, _notification()).status_code == 200
        assert post(url_b, _notification()).status_code == 200
        assert len(twilio.created) == 3

        second = _notification(group_key='{}:{alertname="InventoryLow"}')
        statuses: list[int] = []

        def notify(url: str) -> None:
            statuses.append(post(url, second).status_code)

        threads = [threading.Thread(target=notify, args=(u,)) for u in (url_a, url_b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(15)
        assert set(statuses) <= {200, 503}  # 503: the peer is sending it right now
        for url in (url_a, url_b):  # Alertmanager's retries
            assert post(url, second).status_code == 200
        assert len(twilio.created) == 6


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)
_KEYS = ["version", "groupKey", "status", "receiver", "alerts", "truncatedAlerts", "commonLabels"]


def test_random_bodies_get_400_never_5xx_and_send_nothing(
    tmp_path: Path, twilio: FakeTwilio
) -> None:
    session = requests.Session()
    with running_bridge(config(tmp_path, twilio.url)) as (_parts, url):

        @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            st.one_of(
                _JSON.map(lambda d: json.dumps(d).encode()),
                st.binary(max_size=200),
                # a real webhook with one field replaced by anything
                st.tuples(st.sampled_from(_KEYS), _JSON).map(
                    lambda kv: json.dumps({**_notification(), kv[0]: kv[1]}).encode()
                ),
            )
        )
        def check(raw: bytes) -> None:
            try:
                parse_notification(raw)
            except PayloadError:
                valid = False
            else:
                valid = True  # e.g. truncatedAlerts replaced by another whole number
            before = len(twilio.created)
            answer = session.post(f"{url}/alerts/solo", data=raw, headers=AUTH, timeout=10)
            assert answer.status_code == (200 if valid else 400), (raw, answer.text)
            if not valid:
                assert len(twilio.created) == before

        check()


def test_tls_from_the_web_config_serves_webhooks_over_https(
    tmp_path: Path, twilio: FakeTwilio
) -> None:
    pki = make_pki(tmp_path / "pki")
    web = pki.ca_cert.parent / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
    with running_bridge(config(tmp_path, twilio.url, web_config_file=str(web))) as (_parts, url):
        assert url.startswith("https://")
        answer = post(url, _notification(), group="solo", verify=str(pki.ca_cert))
        assert answer.status_code == 200
        assert [m["to"] for m in twilio.created] == SOLO


def test_a_storm_to_one_recipient_is_coalesced_into_a_digest(
    tmp_path: Path, twilio: FakeTwilio
) -> None:
    cfg = config(tmp_path, twilio.url, recipient_limit=1, recipient_window="1s")
    with running_bridge(cfg) as (_parts, url):
        for i in range(3):
            answer = post(url, _notification(group_key=f"storm-{i}"), group="solo")
            assert answer.status_code == 200
        assert len(twilio.created) == 1
        assert answer.text.endswith("deferred: over the recipient's rate limit; sent in a digest\n")
        wait_for(lambda: len(twilio.created) == 2, timeout=10)
        digest_sms = twilio.created[1]
        assert digest_sms["to"] == SOLO[0]
        assert digest_sms["body"].startswith("2 updates, newest first: CRITICAL tier 2")
        # The digest reaches Twilio just before the bridge counts it.
        wait_for(lambda: _metric(url, "digests_sent_total") == 1, timeout=10)
        assert _metric(url, "messages_deferred_total") == 2
        assert post(url, _notification(group_key="storm-2"), group="solo").status_code == 200
    assert len(twilio.created) == 2


HOSTILE_LABELS = [
    {"escalation": "²"},
    {"escalation": "9" * 5000},
    {"alertname": "Forged\udc80"},  # a lone surrogate: JSON can carry it, UTF-8 cannot
    {"alertname": "Forged\r\nlevel=error msg=fake", "category": "pay\rments\x1b[2J"},
    {"summary_annotation": "line\u2028two\x00"},
]


def test_any_label_value_gets_its_sms_never_a_5xx(tmp_path: Path, twilio: FakeTwilio) -> None:
    """Issue 16 items 3-5: a label is never worth losing a page over."""
    with running_bridge(config(tmp_path, twilio.url)) as (_parts, url):
        for i, labels in enumerate(HOSTILE_LABELS):
            fields = dict(labels)
            summary = fields.pop("summary_annotation", "Payment success 91% over 5m")
            name = fields.pop("alertname", "PaymentSuccessRateLow")
            document = webhook(
                alert(name, fingerprint=f"f{i:015d}", summary=summary, **fields),
                group_key=f"hostile-{i}",
            )
            answer = post(url, document, group="solo")
            assert answer.status_code == 200, (labels, answer.text)
            assert len(twilio.created) == i + 1
            sent = twilio.created[-1]["body"]
            assert not [c for c in sent if c in "\r\n\x00\x1b\u2028"], sent
    bodies = [m["body"] for m in twilio.created]
    assert bodies[2] == "CRITICAL: 1 firing: Forged? (payments) - Payment success 91% over 5m"
    assert bodies[3].startswith("CRITICAL: 1 firing: Forged level=error msg=fake (pay ments [2J)")


def test_the_dry_run_log_line_has_no_raw_control_characters(
    tmp_path: Path, twilio: FakeTwilio, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cfg = config(tmp_path, twilio.url, dry_run=True, account_sid=None, auth_token_file=None)
    forged = alert("Forged\r\nlevel=error msg=fake", category="x\x1b[2J", escalation="²")
    with running_bridge(cfg) as (_parts, url):
        assert post(url, webhook(forged), group="solo").status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("exporter.smsbridge")]
    assert any(line.startswith("dry run: SMS to ") for line in lines), lines
    for line in lines:
        assert not [c for c in line if ord(c) < 0x20 or c == "\x7f"], line
    # The ignored tier is logged, with the alert's name escaped, not obeyed.
    assert any("escalation" in line and "Forged\\r\\n" in line for line in lines), lines


@pytest.mark.parametrize(
    ("framing", "status"),
    [
        ("Content-Length: 2\r\nContent-Length: 999\r\n", 400),
        ("Content-Length: 2\r\nContent-Length: 2\r\n", 400),
        ("Content-Length: 2\r\nTransfer-Encoding: chunked\r\n", 400),
        ("Transfer-Encoding: chunked\r\nContent-Length: 2\r\n", 400),
        ("Content-Length: " + "9" * 5000 + "\r\n", 413),
    ],
)
def test_ambiguous_or_absurd_framing_is_refused_and_the_connection_closes(
    tmp_path: Path, twilio: FakeTwilio, framing: str, status: int
) -> None:
    """Issue 16 item 7 (RFC 9112 section 6.3): never guess where a body ends."""
    with running_bridge(config(tmp_path, twilio.url)) as (_parts, url):
        head = (
            f"POST /alerts/oncall HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {BEARER}\r\n"
            f"{framing}\r\n{{}}"
        ).encode()
        answer = _raw(url, head)
        assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
        assert b"Connection: close" in answer
    assert twilio.created == []


def test_a_trickled_webhook_body_is_cut_at_the_request_deadline(
    tmp_path: Path, twilio: FakeTwilio
) -> None:
    """Issue 16 item 11: a body sent a byte at a time used to be accepted after 40 s."""
    document = json.dumps(_notification()).encode()
    limits = ServerLimits(request_timeout=1.0)
    with running_bridge(config(tmp_path, twilio.url), limits) as (_parts, url):
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(
                f"POST /alerts/oncall HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {BEARER}\r\n"
                f"Content-Length: {len(document)}\r\n\r\n".encode()
            )
            cut = False
            for byte in document[:40]:  # 8 s of trickling at most
                try:
                    sock.sendall(bytes([byte]))
                    sock.settimeout(0.2)
                    cut = sock.recv(4096) is not None
                except TimeoutError:
                    continue
                except OSError:
                    cut = True
                if cut:
                    break
            assert cut
        assert post(url, _notification()).status_code == 200  # the server is fine
    assert len(twilio.created) == 3  # only from the complete webhook
