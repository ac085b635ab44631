"""A throwaway PostgreSQL for the demo and for tests on machines without a server."""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exporter.lifecycle import Failure


class ThrowawayUnavailableError(Failure):
    """No way to start a local PostgreSQL here (pgserver is not installed)."""


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary directory, removed again by :meth:`stop`.

    Uses the pip package ``pgserver``, which ships the server binaries and copes
    with running as root (where plain ``initdb`` refuses).
    """

    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="boxoffice-pg-")))
    _server: Any = None

    def start(self) -> str:
        """Start the cluster and return its libpq URI (unix socket in ``directory``)."""
        # pgserver narrates every pg_ctl call at INFO; its warnings and errors still show.
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        with warnings.catch_warnings():
            # platformdirs (used by pgserver) warns when XDG_RUNTIME_DIR is unset, as in
            # containers and CI; it falls back to /tmp, which is what we want anyway.
            warnings.simplefilter("ignore")
            try:
                import pgserver
            except ImportError as exc:  # pragma: no cover - depends on the installation
                raise ThrowawayUnavailableError(
                    "no PostgreSQL configured and the 'pgserver' package is not installed; "
                    "set BOXOFFICE_DSN or pip install 'boxoffice[throwaway]'"
                ) from exc
            get_server = pgserver.get_server  # type: ignore[attr-defined]
            self._server = get_server(self.directory, cleanup_mode="stop")
        return str(self._server.get_uri())

    def stop(self) -> None:
        """Stop the server and delete its data directory."""
        if self._server is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._server.cleanup()
            self._server = None
        shutil.rmtree(self.directory, ignore_errors=True)
