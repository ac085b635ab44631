"""The test suite's Twilio: the demo's local Twilio server (exporter.demo.twilio_server) with
a fixed account, scripted faults, Messages create, and scriptable refusals of creates; its
messages match Twilio's vendored spec (``tests/reference/twilio_api_v2010.json``, checked in
tests/test_twilio_api.py)."""

from __future__ import annotations

import copy
import time
from typing import Any
from urllib.parse import parse_qsl

from exporter.demo.twilio_server import LocalTwilioServer, error_reply
from tests.support.fakehttp import FakeServer, Reply, Request

__all__ = ["ACCOUNT_SID", "AUTH_TOKEN", "FakeTwilio", "error_reply", "rate_limit_reply"]

ACCOUNT_SID = "AC" + "b0" * 16
AUTH_TOKEN = "f00dbabe" * 4  # 32 hex characters, like a real auth token


def rate_limit_reply(retry_after: float = 1) -> Reply:
    """Twilio's answer to too many requests (error 20429)."""
    return error_reply(429, 20429, "Too Many Requests", **{"Retry-After": f"{retry_after:g}"})


class FakeTwilio(FakeServer, LocalTwilioServer):
    """The local Twilio API for tests; creates to some numbers fail as a test asks."""

    def __init__(
        self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN, **kwargs: Any
    ) -> None:
        super().__init__(account_sid, auth_token, **kwargs)
        self.invalid_numbers: set[str] = set()  # To numbers answered with error 21211
        self.failing: dict[str, Reply] = {}  # To number -> the answer it gets instead
        self.created: list[dict[str, Any]] = []  # messages created by POST, in order

    def update(self, sid: str, **fields: Any) -> None:
        """Change a message (its status moving on, its price filled in)."""
        with self.state_lock:
            self.messages[sid].update(fields)

    def answer(self, request: Request) -> Reply:
        """Messages create besides what the local server answers."""
        if (
            request.method == "POST"
            and request.path == self.messages_path
            and self.authorized(request)
        ):
            return self._create(request)
        return super().answer(request)

    def refuse(self, form: dict[str, str]) -> Reply | None:
        """Twilio's 400 errors for a create (21604 no To, 21602 no Body, 21603 no sender),
        then the failing and invalid numbers."""
        if not form.get("To"):
            return error_reply(400, 21604, "A 'To' phone number is required.")
        if not form.get("Body"):
            return error_reply(400, 21602, "Message body is required.")
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return error_reply(400, 21603, "A 'From' phone number is required.")
        to = form["To"]
        if to in self.failing:
            return self.failing[to]
        if to in self.invalid_numbers:
            return error_reply(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        return None

    def _create(self, request: Request) -> Reply:
        """Messages create: form fields To, From or MessagingServiceSid, Body; 201 and the
        message, or the error :meth:`refuse` gives."""
        form = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
        refused = self.refuse(form)
        if refused is not None:
            return refused
        with self.state_lock:
            sid = self.add(time.time(), to=form["To"], body=form["Body"])
            message = self.messages[sid]
            message["from"] = form.get("From")
            message["messaging_service_sid"] = form.get("MessagingServiceSid")
            self.created.append(copy.deepcopy(message))
            created = copy.deepcopy(message)
        return Reply.json(201, created)
