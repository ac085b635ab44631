"""The alerting path on one machine for tests: the generated alertmanager.yml pointed at
127.0.0.1 (a Slack/PagerDuty sink, the real SMS bridge, an SMTP port nobody listens on) with
short timings, and the generated rules compressed the way the demo compresses them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from exporter.demo.profile import demo_profile
from exporter.generate.alertmanager.config import alertmanager_config
from exporter.generate.alertmanager.routing import Duration, Heartbeat, Routing, Timing, Timings
from exporter.generate.rules.ruleset import RuleSet
from tests.support.bridge import BEARER
from tests.support.exporter import free_port
from tests.support.fakehttp import FakeServer, Reply, Request

ROOT = Path(__file__).parent.parent.parent


class Sink(FakeServer):
    """Slack's incoming webhook and PagerDuty's Events API: record, and accept unless
    ``slack_status`` says otherwise (500: Slack is down)."""

    slack_status = 200

    def answer(self, request: Request) -> Reply:
        if request.path == "/pagerduty":
            return Reply.json(202, {"status": "success", "message": "Event processed"})
        return Reply(self.slack_status, b"ok" if self.slack_status == 200 else b"oops")

    def posted(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in list(self.requests) if r.path == path]


# Alertmanager's timings in these tests: no group wait, a second between flushes, no repeat.
ONE_SECOND = Timing(Duration(0), Duration(1), Duration(3600))


def local_routing(
    routing: Routing,
    tmp: Path,
    *,
    sink: str,
    bridge: str,
    heartbeat: float | None = 1.0,
    fast: Timing = ONE_SECOND,
) -> Routing:
    """routing.yaml with every endpoint on 127.0.0.1 and ``fast`` timings for every
    severity; the Watchdog's interval is ``heartbeat`` seconds (None: routing.yaml's)."""
    f = routing.file
    (tmp / "slack_url").write_text(f"{sink}/slack\n")
    (tmp / "pd_key").write_text("0123456789abcdef0123456789abcdef\n")
    (tmp / "bridge_token").write_text(BEARER + "\n")
    (tmp / "smtp_password").write_text("unused\n")
    assert f.pagerduty is not None and f.email is not None and f.sms_bridge is not None
    file = dataclasses.replace(
        f,
        slack=dataclasses.replace(f.slack, api_url_file=str(tmp / "slack_url")),
        pagerduty=dataclasses.replace(
            f.pagerduty, routing_key_file=str(tmp / "pd_key"), url=f"{sink}/pagerduty"
        ),
        email=dataclasses.replace(
            f.email,
            smarthost=f"127.0.0.1:{free_port()}",
            auth_password_file=str(tmp / "smtp_password"),
            require_tls=False,
        ),
        sms_bridge=dataclasses.replace(
            f.sms_bridge, url=bridge, credentials_file=str(tmp / "bridge_token")
        ),
        timing=Timings(critical=fast, high=fast, medium=fast, low=fast),
        templates_dir=str(ROOT / "alertmanager" / "templates"),
        heartbeat=f.heartbeat if heartbeat is None else Heartbeat(interval=Duration(heartbeat)),
    )
    return dataclasses.replace(routing, file=file)


def write_alertmanager_config(tmp: Path, routing: Routing, ruleset: RuleSet) -> Path:
    path = tmp / "alertmanager.yml"
    path.write_text(alertmanager_config(routing, ruleset, "test"))
    return path


def fast_rules(tmp: Path, speed: float = 60.0, min_window: float = 30.0) -> list[str]:
    """The generated rule files, every wait and window ``speed`` times shorter."""
    _ruleset, paths = demo_profile(
        ROOT / "rules" / "thresholds.yaml", speed, tmp / "rules", min_window=min_window
    )
    return [str(p) for p in paths]
