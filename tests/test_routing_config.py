"""alertmanager/routing.yaml: typed validation with exact one-line errors; generate writes
nothing on bad input (exit 2) and keeps alertmanager/ current (--check, atomic, stray files).
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from exporter.cli import main
from exporter.config.errors import ConfigError
from exporter.generate.alertmanager.routing_load import load_routing
from exporter.generate.output import THRESHOLDS
from exporter.generate.verify import verify_bundle

ROOT = Path(__file__).parent.parent
BASE: dict[str, Any] = yaml.safe_load((ROOT / "alertmanager/routing.yaml").read_text())
DELETE = object()
NAME = "alertmanager/routing.yaml"


def _edited(path: str, value: object) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    node = data
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return data


BAD = [
    (
        "busines_hours",
        {},
        "busines_hours: unknown key (known keys: audiences, channels, digest, email, escalation, group_by, heartbeat, informational, inhibit, mute_outside_business_hours, pagerduty, resolve_timeout, scopes, slack, sms_bridge, templates_dir, ticker, timing)",
    ),
    (
        "slack.api_url",
        "https://hooks.slack.com/services/T/B/x",
        "slack.api_url: unknown key (known keys: api_url_file, channels, colors, critical_channel, default_channel, send_resolved)",
    ),
    (
        "slack.api_url_file",
        "secrets/slack",
        "slack.api_url_file: must be an absolute path (as Alertmanager sees it), got 'secrets/slack'",
    ),
    (
        "slack.channels.refunds",
        "#refunds",
        "slack.channels.refunds: unknown category (known: payments, inventory, sales, messaging, webhooks, availability, monitoring)",
    ),
    (
        "slack.channels.payments",
        "payment-alerts",
        "slack.channels.payments: must be a Slack channel like #payment-alerts, got 'payment-alerts'",
    ),
    (
        "slack.critical_channel",
        "#alerts",
        "slack.critical_channel: #alerts must be a channel of its own",
    ),
    (
        "slack.colors",
        {"high": "red"},
        "slack.colors.high: must be a colour like #E74A3B, got 'red'",
    ),
    (
        "escalation.tier_2",
        ["cfo"],
        "escalation.tier_2[0]: unknown audience 'cfo' (audiences: cto, engineering_lead, everyone, oncall, product)",
    ),
    (
        "escalation.tier_3",
        ["oncall"],
        "escalation.tier_3[0]: 'oncall' is already told at an earlier tier",
    ),
    (
        "channels.high",
        ["slack", "sms", "fax"],
        "channels.high[2]: must be one of slack, email, sms, pagerduty, got 'fax'",
    ),
    ("pagerduty", DELETE, "channels.critical[3]: pagerduty needs the pagerduty section"),
    (
        "pagerduty.service_key_file",
        "/etc/alertmanager/secrets/pd_v1",
        "pagerduty: give routing_key_file (Events API v2) or service_key_file",
    ),
    (
        "pagerduty.url",
        "events.eu.pagerduty.com/v2/enqueue",
        "pagerduty.url: must be an http(s) URL, got 'events.eu.pagerduty.com/v2/enqueue'",
    ),
    (
        "timing.high.repeat_interval",
        "1m",
        "timing.high.repeat_interval: must be at least group_interval (300s)",
    ),
    (
        "timing.low.group_wait",
        "soon",
        "timing.low.group_wait: not a duration like 30s, 5m or 1h30m: 'soon'",
    ),
    (
        "sms_bridge.credentials_file",
        DELETE,
        "sms_bridge: give credentials_file (bearer token) or basic_auth: the bridge requires one",
    ),
    (
        "sms_bridge.url",
        "http://sms-bridge:9799/alerts/oncall",
        "sms_bridge.url: give the bridge's base URL only: /alerts/<group> is added",
    ),
    (
        "audiences.oncall.sms_group",
        "on call",
        "audiences.oncall.sms_group: SMS bridge group names are letters, digits, '_', '.' and '-' (as in sms_bridge.groups)",
    ),
    (
        "audiences.oncall.email",
        ["not-an-address"],
        "audiences.oncall.email[0]: is not an email address: 'not-an-address'",
    ),
    (
        "audiences.board",
        {"email": ["board@example.com"]},
        "audiences.board: is in no escalation tier",
    ),
    (
        "mute_outside_business_hours",
        ["medium", "info"],
        "mute_outside_business_hours[1]: must be one of critical, high, medium, low, got 'info'",
    ),
    ("group_by", ["alertname", "ticket-tier"], "group_by[1]: is not a label name: 'ticket-tier'"),
    ("digest.email", ["owner"], "digest.email[0]: is not an email address: 'owner'"),
    (
        "digest.slack_channel",
        "daily-reports",
        "digest.slack_channel: must be a Slack channel like #payment-alerts, got 'daily-reports'",
    ),
    (
        "digest",
        {"slack_channel": None, "email": []},
        "digest: give a slack_channel, email addresses or both",
    ),
    ("ticker.group_wait", "1h", "ticker.group_wait: must be between 1s and 5m"),
    ("email", DELETE, "audiences.engineering_lead.email: needs the email section (SMTP server)"),
]


@pytest.mark.parametrize(("path", "value", "reason"), BAD, ids=[b[0] for b in BAD])
def test_bad_routing_is_one_line_naming_the_path(
    tmp_path: Path, path: str, value: object, reason: str
) -> None:
    file = tmp_path / "routing.yaml"
    file.write_text(yaml.safe_dump(_edited(path, value), sort_keys=False))
    with pytest.raises(ConfigError) as caught:
        load_routing(str(file), NAME)
    assert str(caught.value) == f"{NAME}: {reason}"


# A shop's own report routes (routing.yaml scopes.<label>.<value>.digest / .ticker).
SHOP_BAD = [
    (
        {"report": {}},
        "scopes.seller.acme.report: unknown key (known keys: also_default, critical_channel, digest, escalation, pagerduty, slack_channel, ticker)",
    ),
    (
        {"digest": {"slack_channel": "acme-reports"}},
        "scopes.seller.acme.digest.slack_channel: must be a Slack channel like #payment-alerts, got 'acme-reports'",
    ),
    (
        {"digest": {"email": ["owner@acme.example", "owner"]}},
        "scopes.seller.acme.digest.email[1]: is not an email address: 'owner'",
    ),
    ({"digest": {}}, "scopes.seller.acme.digest: give a slack_channel, email addresses or both"),
    (
        {"digest": {"slack_channel": None, "email": []}},
        "scopes.seller.acme.digest: give a slack_channel, email addresses or both",
    ),
    (
        {"digest": {"slack_channel": "#acme-reports", "group_wait": "1m"}},
        "scopes.seller.acme.digest.group_wait: unknown key (known keys: email, slack_channel)",
    ),
    ({"ticker": {}}, "scopes.seller.acme.ticker.slack_channel: is required"),
    (
        {"ticker": {"slack_channel": "#acme-sales", "email": ["owner@acme.example"]}},
        "scopes.seller.acme.ticker.email: unknown key (known keys: slack_channel)",
    ),
    (
        {"ticker": {"slack_channel": "sales"}},
        "scopes.seller.acme.ticker.slack_channel: must be a Slack channel like #payment-alerts, got 'sales'",
    ),
]


def _with_shop(shop: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["scopes"] = {"seller": {"acme": shop}}
    return data


@pytest.mark.parametrize(("shop", "reason"), SHOP_BAD, ids=[r.split(":")[0] for _, r in SHOP_BAD])
def test_bad_shop_report_routes_are_one_line_naming_the_path(
    tmp_path: Path, shop: dict[str, Any], reason: str
) -> None:
    file = tmp_path / "routing.yaml"
    file.write_text(yaml.safe_dump(_with_shop(shop), sort_keys=False))
    with pytest.raises(ConfigError) as caught:
        load_routing(str(file), NAME)
    assert str(caught.value) == f"{NAME}: {reason}"


def test_shop_report_routes_replace_the_default_ones_and_inherit_nothing(tmp_path: Path) -> None:
    file = tmp_path / "routing.yaml"
    shop = {"digest": {"email": ["owner@acme.example"]}, "ticker": {"slack_channel": "#acme"}}
    file.write_text(yaml.safe_dump(_with_shop(shop), sort_keys=False))
    [(label, value, routes)] = load_routing(str(file), NAME).shops()
    assert (label, value) == ("seller", "acme")
    assert routes.digest is not None and routes.ticker is not None
    # Email only: not the default #daily-reports, where the other shops read theirs.
    assert (routes.digest.slack_channel, routes.digest.email) == (None, ["owner@acme.example"])
    assert routes.ticker.slack_channel == "#acme"
    assert routes.also_default is False


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    file = tmp_path / "routing.yaml"
    file.write_text("slack: [unclosed\n")
    with pytest.raises(ConfigError, match=r"^alertmanager/routing.yaml: line 2: invalid YAML"):
        load_routing(str(file), NAME)
    file.write_text("- just a list\n")
    with pytest.raises(ConfigError) as caught:
        load_routing(str(file), NAME)
    assert str(caught.value) == f"{NAME}: must be a mapping at the top level"


def _repo_copy(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    shutil.copy(ROOT / "rules/thresholds.yaml", tmp_path / "rules/thresholds.yaml")
    (tmp_path / "alertmanager").mkdir()
    shutil.copy(ROOT / "alertmanager/routing.yaml", tmp_path / "alertmanager/routing.yaml")
    return tmp_path


def test_generate_refuses_bad_routing_with_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    root = _repo_copy(tmp_path)
    bad = _edited("escalation.tier_2", ["cfo"])
    (root / "alertmanager/routing.yaml").write_text(yaml.safe_dump(bad))
    result = CliRunner().invoke(main, ["generate", "--root", str(root)])
    assert result.exit_code == 2
    assert result.output == (
        "boxoffice: alertmanager/routing.yaml: escalation.tier_2[0]: unknown audience 'cfo' "
        "(audiences: cto, engineering_lead, everyone, oncall, product)\n"
    )
    written = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert written == ["alertmanager/routing.yaml", "rules/thresholds.yaml"]


def test_generate_writes_the_committed_alertmanager_files_and_check_finds_them_stale(
    tmp_path: Path,
) -> None:
    root = _repo_copy(tmp_path)
    runner = CliRunner()
    assert runner.invoke(main, ["generate", "--root", str(root)]).exit_code == 0
    for rel in (
        "alertmanager/alertmanager.yml",
        "alertmanager/templates/boxoffice.tmpl",
        "alertmanager/tests/routes.yml",
    ):
        assert (root / rel).read_text() == (ROOT / rel).read_text(), rel
    first = (root / "alertmanager/alertmanager.yml").read_text().splitlines()[1]
    assert first == (
        "# Generated by `boxoffice generate` from alertmanager/routing.yaml and "
        "rules/thresholds.yaml; do not edit: change the input and regenerate."
    )
    stray = root / "alertmanager/templates/old.tmpl"
    stray.write_text('{{ define "old" }}{{ end }}\n')
    config = root / "alertmanager/alertmanager.yml"
    config.write_text(config.read_text().replace("repeat_interval: 1h", "repeat_interval: 2h"))
    check = runner.invoke(main, ["generate", "--check", "--root", str(root)])
    assert check.exit_code == 1
    assert check.output.splitlines() == [
        "boxoffice: alertmanager/alertmanager.yml: stale, run `boxoffice generate`",
        "boxoffice: alertmanager/templates/old.tmpl: stale, run `boxoffice generate`",
    ]
    assert runner.invoke(main, ["generate", "--root", str(root)]).output.endswith("2 changed\n")
    assert not stray.exists()
    assert not list(root.rglob(".*.tmp"))


def test_business_hours_change_in_thresholds_regenerates_the_muting(tmp_path: Path) -> None:
    root = _repo_copy(tmp_path)
    thresholds = yaml.safe_load((root / "rules/thresholds.yaml").read_text())
    thresholds["timezone"] = "Europe/Paris"
    thresholds["business_hours"] = {"start": "08:00", "end": "18:00", "days": ["mon", "fri"]}
    (root / "rules/thresholds.yaml").write_text(yaml.safe_dump(thresholds))
    assert CliRunner().invoke(main, ["generate", "--root", str(root)]).exit_code == 0
    config = yaml.safe_load((root / "alertmanager/alertmanager.yml").read_text())
    entries = config["time_intervals"][0]["time_intervals"]
    assert entries == [
        {
            "times": [
                {"start_time": "00:00", "end_time": "08:00"},
                {"start_time": "18:00", "end_time": "24:00"},
            ],
            "weekdays": ["monday", "friday"],
            "location": "Europe/Paris",
        },
        {"weekdays": ["sunday", "tuesday:thursday", "saturday"], "location": "Europe/Paris"},
    ]


def test_no_routing_file_no_alertmanager_output(tmp_path: Path) -> None:
    root = _repo_copy(tmp_path)
    (root / "alertmanager/routing.yaml").unlink()
    assert CliRunner().invoke(main, ["generate", "--root", str(root)]).exit_code == 0
    assert sorted(p.name for p in (root / "alertmanager").rglob("*")) == []


def test_check_runs_amtool_on_the_bundle_and_reports_stale_alertmanager_files(
    tmp_path: Path,
) -> None:
    root = _repo_copy(tmp_path)
    assert CliRunner().invoke(main, ["generate", "--root", str(root)]).exit_code == 0
    report = verify_bundle(root, THRESHOLDS)
    assert report.problems == ()
    assert "amtool" not in report.skipped
    routes = root / "alertmanager/tests/routes.yml"
    routes.write_text(routes.read_text().replace("- pagerduty\n", "", 1))
    assert verify_bundle(root, THRESHOLDS).problems == (
        "alertmanager/tests/routes.yml: stale, run `boxoffice generate`",
    )


def test_check_names_sms_groups_the_bridge_configuration_lacks(tmp_path: Path) -> None:
    root = _repo_copy(tmp_path)
    assert CliRunner().invoke(main, ["generate", "--root", str(root)]).exit_code == 0
    every = {"engineering-lead", "oncall", "cto", "product", "everyone"}
    assert verify_bundle(root, THRESHOLDS, bridge_groups=("boxoffice.yml", every)).problems == ()
    report = verify_bundle(root, THRESHOLDS, bridge_groups=("boxoffice.yml", {"oncall", "cto"}))
    assert report.problems == tuple(
        f"alertmanager/routing.yaml: audiences.{name}.sms_group: no group {group!r} in "
        "sms_bridge.groups of boxoffice.yml"
        for name, group in (
            ("engineering_lead", "engineering-lead"),
            ("product", "product"),
            ("everyone", "everyone"),
        )
    )
