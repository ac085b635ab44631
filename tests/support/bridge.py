"""Run the SMS bridge in-process on 127.0.0.1 against a fake Twilio, and post webhooks to it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import yaml

from exporter.smsbridge.config import BridgeConfig, load_bridge_config
from exporter.smsbridge.service import RunningParts, build_bridge
from exporter.web.limits import ServerLimits
from tests.support.alerts import body
from tests.support.fake_twilio import ACCOUNT_SID, AUTH_TOKEN

BEARER = "bridge-bearer-7f3a9c2e51d84b06"
ONCALL = ["+14155550101", "+14155550102", "+14155550103"]
SOLO = ["+442071838750"]
FROM = "+14155552345"


def write_config(directory: Path, api_base: str, **bridge: Any) -> str:
    """A boxoffice.yml with an `sms_bridge` section for tests; ``bridge`` overrides keys."""
    token_file = directory / "twilio-token"
    token_file.write_text(AUTH_TOKEN + "\n")
    section: dict[str, Any] = {
        "groups": {"oncall": ONCALL, "solo": SOLO},
        "bearer_token": BEARER,
        "account_sid": ACCOUNT_SID,
        "auth_token_file": str(token_file),
        "from_number": FROM,
        "api_base": api_base,
        "store": str(directory / "sms-bridge.sqlite"),
        "deadline": "3s",
        "request_timeout": "1s",
    }
    section.update(bridge)
    path = directory / "boxoffice.yml"
    path.write_text(
        yaml.safe_dump({"sms_bridge": {k: v for k, v in section.items() if v is not None}})
    )
    return str(path)


def config(directory: Path, api_base: str, **bridge: Any) -> BridgeConfig:
    """The checked configuration of a test bridge."""
    return load_bridge_config(write_config(directory, api_base, **bridge), env={})


@contextmanager
def running_bridge(
    cfg: BridgeConfig, limits: ServerLimits | None = None
) -> Iterator[tuple[RunningParts, str]]:
    """Serve a bridge on a free port; yield it and its base URL; stop it afterwards."""
    parts = build_bridge(cfg, listen_address="127.0.0.1:0", limits=limits)
    parts.start()
    try:
        yield parts, parts.server.url
    finally:
        parts.stop()


def post(url: str, document: Any, group: str = "oncall", **kwargs: Any) -> requests.Response:
    """POST a webhook with the bearer token (unless ``headers`` says otherwise)."""
    headers = kwargs.pop("headers", {"Authorization": f"Bearer {BEARER}"})
    data = document if isinstance(document, bytes) else body(document)
    return requests.post(
        f"{url}/alerts/{group}",
        data=data,
        headers={"Content-Type": "application/json", **headers},
        timeout=10,
        **kwargs,
    )
