"""The heartbeat branch of the generated alertmanager.yml (issue 19): the Watchdog goes to
the SMS bridge's /heartbeat and/or an external dead-man's switch, never to people."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.generate.alertmanager.config import alertmanager_config
from exporter.generate.alertmanager.routing import Duration, Heartbeat, Routing
from exporter.generate.output import load_inputs

ROOT = Path(__file__).parent.parent
INPUTS = load_inputs(ROOT)


def _config(routing: Routing) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(alertmanager_config(routing, INPUTS.ruleset, "test"))
    return data


def _with(**changes: Any) -> Routing:
    assert INPUTS.routing is not None
    file = dataclasses.replace(INPUTS.routing.file, **changes)
    return dataclasses.replace(INPUTS.routing, file=file)


def _heartbeat_branch(config: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = config["route"]["routes"][0]
    assert first["matchers"] == ['notify="heartbeat"']
    return first


@pytest.mark.parametrize(
    ("heartbeat", "bridge", "urls"),
    [
        (Heartbeat(), True, ["http://sms-bridge:9799/heartbeat"]),
        (
            Heartbeat(url_file="/run/secrets/deadman_url"),
            True,
            ["http://sms-bridge:9799/heartbeat", "file:/run/secrets/deadman_url"],
        ),
        (
            Heartbeat(bridge=False, url_file="/run/secrets/deadman_url"),
            True,
            ["file:/run/secrets/deadman_url"],
        ),
        (Heartbeat(url_file="/run/secrets/deadman_url"), False, ["file:/run/secrets/deadman_url"]),
        (Heartbeat(), False, []),
        (Heartbeat(bridge=False), True, []),
    ],
)
def test_heartbeat_receiver_per_setting(
    heartbeat: Heartbeat, bridge: bool, urls: list[str]
) -> None:
    assert INPUTS.routing is not None
    changes: dict[str, Any] = {"heartbeat": heartbeat}
    if not bridge:
        # Without the bridge no audience may name an SMS group.
        audiences = {
            name: dataclasses.replace(a, sms_group=None)
            for name, a in INPUTS.routing.file.audiences.items()
        }
        changes |= {"sms_bridge": None, "audiences": audiences}
    config = _config(_with(**changes))
    branch = _heartbeat_branch(config)
    receivers = {r["name"]: r for r in config["receivers"]}
    if not urls:
        assert branch["receiver"] == "nobody" and "heartbeat" not in receivers
        return
    assert branch["receiver"] == "heartbeat"
    hooks = receivers["heartbeat"]["webhook_configs"]
    assert [h.get("url") or f"file:{h['url_file']}" for h in hooks] == urls
    for hook in hooks:
        assert hook["send_resolved"] is False and hook["max_alerts"] == 1
        if "url" in hook:  # the bridge: the same credentials as its /alerts/<group>
            assert hook["http_config"]["authorization"]["credentials_file"].endswith(
                "sms_bridge_token"
            )


def test_heartbeat_branch_repeats_every_interval_and_stops_there() -> None:
    config = _config(_with(heartbeat=Heartbeat(interval=Duration(20))))
    branch = _heartbeat_branch(config)
    assert branch["group_wait"] == "0s"
    assert branch["group_interval"] == branch["repeat_interval"] == "20s"
    assert "continue" not in branch and "routes" not in branch


def test_watchdog_reaches_the_heartbeat_receiver_only(tmp_path: Path) -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool not installed (scripts/test.sh installs prometheus-alertmanager)")
    text = (ROOT / "alertmanager" / "alertmanager.yml").read_text()
    path = tmp_path / "alertmanager.yml"
    path.write_text(
        text.replace("/etc/alertmanager/templates", str(ROOT / "alertmanager/templates"))
    )
    labels = ["alertname=Watchdog", "severity=low", "category=monitoring", "escalation=1"]
    result = subprocess.run(
        [
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={path}",
            "--verify.receivers=heartbeat",
            *labels,
            "notify=heartbeat",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
