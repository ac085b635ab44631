"""The local Twilio server (exporter.demo.twilio_server) against Twilio's spec, over real HTTP, and
the demo's LocalTwilio that serves it to the exporter."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from exporter.config import load_config
from exporter.demo.local_twilio import ORIGIN, LocalTwilio, TwilioGateway
from exporter.demo.simulator import SmsOutcome
from exporter.demo.twilio_server import LocalTwilioServer, message_template
from tests.support.fake_stripe import FIXTURES
from tests.support.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.support.fakehttp import serving

MESSAGES = "/2010-04-01/Accounts/{AccountSid}/Messages.json"


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = json.loads((FIXTURES / "twilio_api_v2010.json").read_text())
    return spec


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with serving(FakeTwilio()) as server:
        yield server


def _get(fake: LocalTwilioServer, path: str, **params: str) -> requests.Response:
    return requests.get(
        f"{fake.url}{path}", params=params, auth=(fake.account_sid, fake.auth_token), timeout=5
    )


def _messages_path(account: str = ACCOUNT_SID) -> str:
    return MESSAGES.replace("{AccountSid}", account)


def test_a_message_has_exactly_the_fields_of_twilios_example_messages() -> None:
    operations = _spec()["paths"][MESSAGES]
    listed = operations["get"]["responses"]["200"]["content"]["application/json"]["examples"]
    created = operations["post"]["responses"]["201"]["content"]["application/json"]["examples"]
    listed_message = listed["readFullPage1"]["value"]["messages"][0]
    created_message = created["create"]["value"]
    assert set(message_template()) == set(listed_message) == set(created_message)


def test_sent_and_created_messages_keep_the_template_fields(fake: FakeTwilio) -> None:
    sid = fake.send(time.time(), status="delivered", price="-0.00790")
    answer = requests.post(
        f"{fake.url}{_messages_path()}",
        data={"To": "+15005550011", "From": "+15005550006", "Body": "hi"},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
        timeout=5,
    )
    assert answer.status_code == 201
    fetched = _get(fake, f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json").json()
    for message in (fetched, answer.json()):
        assert set(message) == set(message_template())
    assert fetched["status"] == "delivered"
    assert answer.json()["body"] == "hi"


def test_the_list_pages_newest_first_with_twilios_envelope(fake: FakeTwilio) -> None:
    now = time.time()
    sids = [fake.send(now - 100 + i, status="delivered") for i in range(25)]
    first = _get(fake, _messages_path(), PageSize="10").json()
    assert set(first) == {
        "messages",
        "uri",
        "first_page_uri",
        "next_page_uri",
        "previous_page_uri",
        "page",
        "page_size",
        "start",
        "end",
    }
    seen = [m["sid"] for m in first["messages"]]
    assert (first["page"], first["start"], first["end"]) == (0, 0, 9)
    page = first
    for _ in range(5):  # bounded: three pages expected
        if page["next_page_uri"] is None:
            break
        page = _get(fake, page["next_page_uri"]).json()
        seen += [m["sid"] for m in page["messages"]]
    assert seen == sids[::-1]
    assert (page["page"], page["start"], page["end"]) == (2, 20, 24)
    assert page["previous_page_uri"] is not None


def test_the_list_filters_on_date_sent_on_or_after(fake: FakeTwilio) -> None:
    base = 1_700_000_000.0
    old = fake.send(base - 60, status="delivered")
    edge = fake.send(base, status="failed", error_code=30003)
    new = fake.send(base + 30, status="undelivered", error_code=30005)
    since = format_datetime(datetime.fromtimestamp(base, UTC))
    listed = _get(fake, _messages_path(), **{"DateSent>": since}).json()["messages"]
    assert [m["sid"] for m in listed] == [new, edge]
    assert old not in {m["sid"] for m in listed}
    iso = datetime.fromtimestamp(base + 1, UTC).isoformat()
    assert [
        m["sid"] for m in _get(fake, _messages_path(), **{"DateSent>": iso}).json()["messages"]
    ] == [new]


def test_wrong_credentials_and_unknown_paths_get_twilios_errors(fake: FakeTwilio) -> None:
    wrong = requests.get(f"{fake.url}{_messages_path()}", auth=(ACCOUNT_SID, "x"), timeout=5)
    assert (wrong.status_code, wrong.json()["code"]) == (401, 20003)
    missing = _get(fake, f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/SMnope.json")
    assert (missing.status_code, missing.json()["code"]) == (404, 20404)


def test_keep_forgets_the_oldest_messages() -> None:
    api = LocalTwilioServer(ACCOUNT_SID, AUTH_TOKEN, keep=3)
    with serving(api):
        sids = [api.send(1_700_000_000.0 + i) for i in range(5)]
    assert list(api.messages) == sids[2:]


@pytest.mark.parametrize(
    ("outcome", "fields"),
    [
        (
            SmsOutcome(1, "delivered", None),
            {"status": "delivered", "error_code": None, "price": "-0.00790"},
        ),
        (
            SmsOutcome(2, "undelivered", "30003"),
            {"status": "undelivered", "error_code": 30003, "price": "-0.00790"},
        ),
        (
            SmsOutcome(3, "failed", "30008"),
            {"status": "failed", "error_code": 30008, "price": "0.00000"},
        ),
    ],
)
def test_the_gateway_records_each_text_at_its_final_status(
    outcome: SmsOutcome, fields: dict[str, Any]
) -> None:
    api = LocalTwilioServer(ACCOUNT_SID, AUTH_TOKEN)
    with serving(api):
        gateway = TwilioGateway(api, clock=lambda: 1_700_000_000.0)
        gateway.deliver(outcome)
    (message,) = api.messages.values()
    assert {k: message[k] for k in fields} == fields
    assert message["date_sent"] == "Tue, 14 Nov 2023 22:13:20 +0000"
    assert message["direction"] == "outbound-api"
    assert str(outcome.order_id) in message["body"]
    assert gateway.sent == 1


def test_local_twilio_points_the_twilio_source_at_itself(tmp_path: Path) -> None:
    twilio = LocalTwilio()

    def load(flags: dict[str, tuple[Any, str]]) -> Any:
        return load_config(None, env={"BOXOFFICE_DSN": "postgresql:///x"}, flags=flags)

    try:
        config = twilio.configure(load, {})
        assert twilio.api is not None and twilio.gateway is not None
        source = config.settings.sources.twilio
        assert source.enabled
        assert source.api_base == twilio.api.url
        assert source.api_base.startswith("http://127.0.0.1:")
        assert source.account_sid == twilio.api.account_sid
        assert source.auth_token is None, "the token is read from a file, not given"
        assert config.credentials["sources.twilio.auth_token"] == twilio.api.auth_token
        assert twilio.api.auth_token in config.secrets, "redacted from logs"
        assert source.window > source.interval == 1
        assert stat.S_IMODE(twilio.token_file.stat().st_mode) == 0o600
        token_file = twilio.token_file
        answer = _get(twilio.api, f"/2010-04-01/Accounts/{twilio.api.account_sid}/Balance.json")
        assert answer.ok
        assert all(origin == ORIGIN for _value, origin in twilio.flags().values())
    finally:
        twilio.stop()
    assert not token_file.exists()
    assert twilio.api is None
    twilio.stop()  # twice is harmless


def test_local_twilio_leaves_a_configured_twilio_source_alone(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(AUTH_TOKEN)
    env = {
        "BOXOFFICE_DSN": "postgresql:///x",
        "BOXOFFICE_SOURCES_TWILIO_ENABLED": "true",
        "BOXOFFICE_SOURCES_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "BOXOFFICE_SOURCES_TWILIO_AUTH_TOKEN_FILE": str(tmp_path / "token"),
    }
    twilio = LocalTwilio()
    try:
        config = twilio.configure(lambda flags: load_config(None, env=env, flags=flags), {})
    finally:
        twilio.stop()
    assert twilio.gateway is None, "nothing started"
    assert config.settings.sources.twilio.api_base == "https://api.twilio.com"
    assert config.settings.sources.twilio.account_sid == ACCOUNT_SID
