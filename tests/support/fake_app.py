"""A ticket app's own /metrics: the latency histogram and request counter thresholds.yaml
declares under app_metrics, growing with every scrape like a busy app's would."""

from __future__ import annotations

import threading

from tests.support.fakehttp import FakeServer, Reply, Request

BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# route -> (requests per scrape, typical seconds, 5xx per scrape)
ROUTES = {
    "/api/create-checkout-session": (20, 0.8, 0),
    "/api/webhooks/stripe": (30, 0.2, 1),
    "/register": (5, 1.5, 0),
    "/success": (10, 0.4, 0),
    "/api/inventory/events": (40, 0.05, 1),
}


class FakeTicketApp(FakeServer):
    """Prometheus text of http_request_duration_seconds and http_requests_total."""

    def __init__(self) -> None:
        super().__init__()
        self._scrapes = 0
        self._count_lock = threading.Lock()

    def answer(self, request: Request) -> Reply:
        if request.path != "/metrics":
            return Reply(404, b"not found\n")
        with self._count_lock:
            self._scrapes += 1
            n = self._scrapes
        return Reply(200, _exposition(n).encode(), {"Content-Type": "text/plain; version=0.0.4"})


def _exposition(scrapes: int) -> str:
    lines = [
        "# HELP http_request_duration_seconds Request latency.",
        "# TYPE http_request_duration_seconds histogram",
    ]
    for route, (rate, typical, _errors) in ROUTES.items():
        total = rate * scrapes
        for bound in BUCKETS:
            # A simple spread: a tenth of requests per bucket below typical, the rest above.
            share = 0.1 if bound < typical else (0.9 if bound < typical * 4 else 1.0)
            lines.append(
                f'http_request_duration_seconds_bucket{{route="{route}",le="{bound}"}} '
                f"{int(total * share)}"
            )
        lines.append(f'http_request_duration_seconds_bucket{{route="{route}",le="+Inf"}} {total}')
        lines.append(f'http_request_duration_seconds_sum{{route="{route}"}} {total * typical}')
        lines.append(f'http_request_duration_seconds_count{{route="{route}"}} {total}')
    lines += ["# HELP http_requests_total Requests.", "# TYPE http_requests_total counter"]
    for route, (rate, _typical, errors) in ROUTES.items():
        ok, failed = (rate - errors) * scrapes, errors * scrapes
        lines.append(f'http_requests_total{{route="{route}",code="200"}} {ok}')
        lines.append(f'http_requests_total{{route="{route}",code="500"}} {failed}')
    return "\n".join(lines) + "\n"
