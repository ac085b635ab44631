"""The demo's Twilio: a local Messages API that the simulator's texts land in and the
exporter's Twilio source reads, so the SMS metrics, panels and alerts have data."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from exporter.config import Config
from exporter.demo.simulator import SmsOutcome
from exporter.demo.twilio_server import LocalTwilioServer

Flags = dict[str, tuple[Any, str]]  # settings path -> (value, where it came from)
ORIGIN = "the demo's local Twilio API"  # named by configuration errors about these settings
PRICE = "-0.00790"  # one US SMS segment, negative as Twilio bills it
KEEP = 20_000  # messages held; a 20s window at 600x speed lists about 2,000 of them
# The source lists the whole window every cycle; the demo's texts end at once, so a short
# window is enough and keeps each cycle cheap.
SOURCE_SETTINGS = {"interval": "1s", "timeout": "5s", "window": "20s"}


class TwilioGateway:
    """The simulator's SMS gateway: each confirmation text becomes a message of the local
    API with its final status, Twilio error code and price."""

    def __init__(self, api: LocalTwilioServer, clock: Callable[[], float] = time.time) -> None:
        self.api = api
        self._clock = clock
        self.sent = 0

    def deliver(self, outcome: SmsOutcome) -> None:
        """Record one text as Twilio would list it once final (a failed one is not billed)."""
        self.api.send(
            self._clock(),
            status=outcome.status,
            error_code=int(outcome.error_code) if outcome.error_code else None,
            price="0.00000" if outcome.status == "failed" else PRICE,
            body=f"Your tickets for order {outcome.order_id} are confirmed.",
        )
        self.sent += 1


class LocalTwilio:
    """Serves the local Twilio API on 127.0.0.1 with a fresh account and auth token; the
    token is written to a private temporary file for the exporter, never to the
    environment. Nothing runs until :meth:`start`; :meth:`stop` undoes it."""

    def __init__(self, *, keep: int = KEEP) -> None:
        self._keep = keep
        self.api: LocalTwilioServer | None = None
        self.gateway: TwilioGateway | None = None  # the simulator's, once started
        self._directory: Path | None = None

    def configure(self, load: Callable[[Flags], Config], flags: Flags) -> Config:
        """The configuration ``load`` gives with the Twilio source pointed here, started for
        it; unless the configuration enables a Twilio source already: that one is kept."""
        config = load(flags)
        if config.settings.sources.twilio.enabled:
            return config
        self.start()
        return load({**flags, **self.flags()})

    def start(self) -> LocalTwilio:
        """Write the token file and start serving."""
        api = LocalTwilioServer(
            "AC" + secrets.token_hex(16), secrets.token_hex(16), keep=self._keep
        )
        self._directory = Path(tempfile.mkdtemp(prefix="boxoffice-demo-twilio-"))
        self.token_file.write_text(api.auth_token, encoding="utf-8")
        self.token_file.chmod(0o600)
        api.start()
        self.api, self.gateway = api, TwilioGateway(api)
        return self

    def stop(self) -> None:
        """Stop serving and remove the token file (nothing when not started)."""
        if self.api is not None:
            self.api.stop()
            self.api = self.gateway = None
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    @property
    def token_file(self) -> Path:
        """The file holding the auth token."""
        if self._directory is None:
            raise RuntimeError("the local Twilio API is not started")
        return self._directory / "auth_token"

    def flags(self) -> Flags:
        """Configuration overrides that point the exporter's Twilio source here."""
        if self.api is None:
            raise RuntimeError("the local Twilio API is not started")
        settings = {
            "enabled": True,
            "account_sid": self.api.account_sid,
            "auth_token_file": str(self.token_file),
            "api_base": self.api.url,
            **SOURCE_SETTINGS,
        }
        return {f"sources.twilio.{name}": (value, ORIGIN) for name, value in settings.items()}
