"""The Twilio SDK's HTTP client, on a requests session we own, with our own errors.

Error statuses are turned into the caller's exception here, before the SDK builds its own
(whose text holds the request URL and so the account SID). Requests are never logged (the
SDK's client logs each at INFO) and never retried by this layer: the Twilio source and the
SMS bridge each decide about retries themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

import requests
from twilio.http import HttpClient
from twilio.http.response import Response

log = logging.getLogger(__name__)


class QuietHttpClient(HttpClient):  # type: ignore[misc]  # twilio ships no type hints
    """Sends the SDK's requests through ``session``; errors come from ``error``/``failed``.

    ``error`` turns an answer with status >= 400 into the exception to raise; ``failed``
    turns a transport failure (timeout, refused connection) into one.
    """

    def __init__(
        self,
        session: requests.Session,
        timeout: float,
        *,
        error: Callable[[requests.Response], Exception],
        failed: Callable[[requests.RequestException], Exception],
    ) -> None:
        super().__init__(log, False, timeout)
        self._session = session
        self._error = error
        self._failed = failed

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        """Send one request; the SDK's Response for 2xx/3xx, the caller's exception else."""
        try:
            answer = self._session.request(
                method.upper(),
                url,
                params=cast("Any", params),
                data=data,
                headers=headers,
                auth=auth,
                timeout=timeout or self.timeout,
                allow_redirects=allow_redirects,
            )
        except requests.RequestException as exc:
            raise self._failed(exc) from None
        if answer.status_code >= 400:
            raise self._error(answer)
        return Response(answer.status_code, answer.text, answer.headers)
