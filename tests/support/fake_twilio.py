"""The test suite's Twilio: the demo's local Twilio API (exporter.demo.twilio_api) with a fixed
account and scriptable refusals of creates; its messages match Twilio's vendored spec
(``tests/reference/twilio_api_v2010.json``, checked in tests/test_twilio_api.py)."""

from __future__ import annotations

from exporter.demo.httpfake import Reply
from exporter.demo.twilio_api import TwilioApi, error_reply

__all__ = ["ACCOUNT_SID", "AUTH_TOKEN", "FakeTwilio", "error_reply", "rate_limit_reply"]

ACCOUNT_SID = "AC" + "b0" * 16
AUTH_TOKEN = "f00dbabe" * 4  # 32 hex characters, like a real auth token


def rate_limit_reply(retry_after: float = 1) -> Reply:
    """Twilio's answer to too many requests (error 20429)."""
    return error_reply(429, 20429, "Too Many Requests", **{"Retry-After": f"{retry_after:g}"})


class FakeTwilio(TwilioApi):
    """The local Twilio API for tests; creates to some numbers fail as a test asks."""

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN) -> None:
        super().__init__(account_sid, auth_token)
        self.invalid_numbers: set[str] = set()  # To numbers answered with error 21211
        self.failing: dict[str, Reply] = {}  # To number -> the answer it gets instead

    def refuse(self, form: dict[str, str]) -> Reply | None:
        """Twilio's own refusals first, then the failing and invalid numbers."""
        refused = super().refuse(form)
        if refused is not None:
            return refused
        to = form["To"]
        if to in self.failing:
            return self.failing[to]
        if to in self.invalid_numbers:
            return error_reply(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        return None
