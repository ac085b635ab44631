"""The local HTTP server of the test fakes (exporter.demo.httpfake) and test-only answers."""

from __future__ import annotations

from exporter.demo.httpfake import MAX_HANG, FakeServer, Fault, Hang, Reply, Request, serving

__all__ = ["MALFORMED", "MAX_HANG", "FakeServer", "Fault", "Hang", "Reply", "Request", "serving"]

MALFORMED = Reply(200, b'{"object": "list", "data": [', {"Content-Type": "application/json"})
