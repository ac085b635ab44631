"""The heartbeat branch of alertmanager.yml: the always-firing Watchdog to a machine.

The Watchdog alert (label ``notify="heartbeat"``) proves the whole path works: Prometheus
evaluates it, Alertmanager routes it and notifies the heartbeat receiver every
``heartbeat.interval``. The receiver is the SMS bridge's ``/heartbeat`` (it texts the on-call
group itself when the beats stop, docs/sms-bridge.md) and/or an external dead-man's switch
whose URL Alertmanager reads from a file (``url_file``: Alertmanager 0.26 or later). The
branch comes first in the tree and does not continue, so the Watchdog never reaches a person.
"""

from __future__ import annotations

from typing import Any

from exporter.generate.alertmanager.routing import Routing
from exporter.generate.promql import duration_text

HEARTBEAT = "heartbeat"
HEARTBEAT_MATCHER = 'notify="heartbeat"'
HEARTBEAT_PATH = "/heartbeat"


def heartbeat_receiver(routing: Routing, nobody: str) -> str:
    """The heartbeat receiver, or ``nobody`` when neither the bridge nor a switch listens."""
    beat = routing.file.heartbeat
    listens = beat.url_file is not None or (beat.bridge and routing.file.sms_bridge is not None)
    return HEARTBEAT if listens else nobody


def heartbeat_route(routing: Routing, receiver: str) -> dict[str, Any]:
    """Notified at once, then every interval: ``group_interval`` and ``repeat_interval``
    both are the interval, since a repeat is only sent on a group interval tick."""
    every = duration_text(routing.file.heartbeat.interval)
    return {
        "receiver": receiver,
        "matchers": [HEARTBEAT_MATCHER],
        "group_by": ["alertname"],
        "group_wait": "0s",
        "group_interval": every,
        "repeat_interval": every,
    }


def heartbeat_webhooks(
    routing: Routing, bridge_http: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The webhooks of the heartbeat receiver; empty when nobody listens for it.

    ``bridge_http`` is the http_config Alertmanager authenticates to the bridge with (None
    without an ``sms_bridge`` section)."""
    beat = routing.file.heartbeat
    out: list[dict[str, Any]] = []
    bridge = routing.file.sms_bridge
    if beat.bridge and bridge is not None and bridge_http is not None:
        out.append(
            {
                "url": f"{bridge.url.rstrip('/')}{HEARTBEAT_PATH}",
                "send_resolved": False,
                "max_alerts": 1,
                "http_config": bridge_http,
            }
        )
    if beat.url_file is not None:
        out.append({"url_file": beat.url_file, "send_resolved": False, "max_alerts": 1})
    return out
