"""A local application health endpoint answering a health JSON document (SPEC 4.2 shape)."""

from __future__ import annotations

import threading
from typing import Any

from tests.support.fakehttp import FakeServer, Reply, Request


class FakeHealth(FakeServer):
    """``/health`` answers ``{"status": ..., "services": {name: {"status": ...}}}``."""

    def __init__(self, services: dict[str, str] | None = None, status: int = 200) -> None:
        super().__init__()
        self._state_lock = threading.Lock()
        self.services = dict(services or {"database": "healthy", "stripe": "healthy"})
        self.status = status
        self.required_headers: dict[str, str] = {}

    def set_service(self, name: str, state: str) -> None:
        """Change one component's reported state."""
        with self._state_lock:
            self.services[name] = state

    def document(self) -> dict[str, Any]:
        """The health document served now."""
        with self._state_lock:
            services = {name: {"status": state} for name, state in self.services.items()}
        healthy = all(s["status"] == "healthy" for s in services.values())
        return {"status": "healthy" if healthy else "degraded", "services": services}

    def answer(self, request: Request) -> Reply:
        """Serve the health document; 401 without the required headers."""
        for name, value in self.required_headers.items():
            if request.headers.get(name) != value:
                return Reply.json(401, {"error": "unauthorized"})
        if request.path != "/health":
            return Reply.json(404, {"error": "not found"})
        return Reply.json(self.status, self.document())
