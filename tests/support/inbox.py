"""The demo's inbox, keeping every notification it was handed so tests can read them back."""

from __future__ import annotations

import threading
from typing import Any

from exporter.demo.sinks import Inbox, Notification


class RecordingInbox(Inbox):
    """An Inbox that also keeps each notification, in order, and counts unreadable ones."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._record_lock = threading.Lock()
        self._items: list[Notification] = []
        self.unreadable = 0  # deliveries whose text did not parse

    def add(self, notification: Notification | None) -> None:
        with self._record_lock:
            if notification is None:
                self.unreadable += 1
            else:
                self._items.append(notification)
        super().add(notification)

    def all(self) -> list[Notification]:
        """Every readable notification so far, in the order they arrived."""
        with self._record_lock:
            return list(self._items)
