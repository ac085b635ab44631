"""docker-compose.yml checked statically (no Docker engine here): the Compose specification's
JSON schema, mounted files, pinned images, healthy dependencies, secrets from files, and the
Prometheus configuration it mounts (real promtool)."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from exporter.generate.grafana.kit import DATASOURCE_UID

ROOT = Path(__file__).parent.parent
COMPOSE = ROOT / "docker-compose.yml"
SPEC = ROOT / "tests" / "reference" / "compose-spec.json"  # vendored, see its README
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _spec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SPEC.read_text())
    return data


def test_compose_file_matches_the_compose_specification() -> None:
    schema = _spec()
    assert "draft-07" in schema["$schema"]
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(_compose())]
    assert errors == []


def test_the_schema_check_catches_a_broken_file() -> None:
    schema = _spec()
    broken = _compose()
    broken["services"]["grafana"]["depends_on"]["prometheus"]["condition"] = "when_ready"
    broken["services"]["exporter"]["restart_policy"] = "always"
    validator = jsonschema.Draft7Validator(schema)
    assert len(list(validator.iter_errors(broken))) >= 2


def test_the_stack_has_every_service_of_the_spec() -> None:
    assert {"postgres", "exporter", "sms-bridge", "prometheus", "alertmanager", "grafana"} <= set(
        _services()
    )
    commands = {name: s.get("command") for name, s in _services().items()}
    assert commands["exporter"] == ["serve"] and commands["sms-bridge"] == ["sms-bridge"]
    assert "exec boxoffice sms-bridge" in ENTRYPOINT.read_text()


def test_every_image_is_pinned() -> None:
    for name, service in _services().items():
        image = service["image"]
        if "build" in service:
            assert image == "boxoffice:local", name  # built from this repository
            continue
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.fullmatch(r"v?\d+\.\d+(\.\d+)?(-[a-z0-9]+)?", tag), image
    dockerfile = (ROOT / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+-[\w-]+", base), base


def _bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            out.append((source.removeprefix("./"), target))
    return out


def test_every_mounted_file_is_in_the_repository() -> None:
    mounted = []
    for name, service in _services().items():
        for source, _target in _bind_mounts(service):
            mounted.append(source)
            assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repo"
    assert "rules/generated" in mounted and "grafana/dashboards" in mounted
    # The Dockerfile copies only what exists too.
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_secrets_come_from_files_the_setup_script_creates(tmp_path: Path) -> None:
    compose = _compose()
    declared = compose["secrets"]
    for name, secret in declared.items():
        assert set(secret) == {"file"} and secret["file"] == f"./secrets/{name}", name
    used = {s for service in compose["services"].values() for s in service.get("secrets", [])}
    assert used == set(declared)
    # No password, token or DSN with a password sits in the environment of any service.
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|TOKEN|SECRET", key):
                assert key.endswith("_FILE"), (name, key)
                assert str(value).startswith("/run/secrets/"), (name, key)
            assert not re.search(r"://[^/@]*:[^/@]*@", str(value)), (name, key)
    # The setup script creates every declared secret, readable by the containers' users.
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "compose-secrets.sh"
    shutil.copy(ROOT / "scripts" / "compose-secrets.sh", script)
    first = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=30, check=True
    )
    assert re.search(r"Grafana login: admin / [A-Za-z0-9]{32}", first.stdout)
    made = {p.name: p for p in (tmp_path / "secrets").iterdir()}
    assert set(made) == set(declared)
    values = {n: p.read_text() for n, p in made.items()}
    # Empty until the user fills them: SMS dry run, and Alertmanager's channels to set up.
    user_filled = {"twilio_auth_token", "slack_webhook_url", "pagerduty_routing_key"}
    user_filled.add("smtp_password")
    assert all(values[n] == "" for n in user_filled)
    assert all(len(v) == 32 for n, v in values.items() if n not in user_filled)
    assert len({v for n, v in values.items() if n not in user_filled}) == 4
    assert stat.S_IMODE((tmp_path / "secrets").stat().st_mode) == 0o700
    again = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=30, check=True
    )
    assert "Grafana login" not in again.stdout  # kept, not replaced
    assert {n: p.read_text() for n, p in made.items()} == values
    assert "/secrets/" in (ROOT / ".gitignore").read_text().split()


def test_entrypoint_refuses_to_start_without_secrets(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BOXOFFICE_SECRETS_DIR": str(tmp_path),
        "BOXOFFICE_STATE_DIR": str(tmp_path),
    }
    missing = subprocess.run(
        ["sh", str(ENTRYPOINT), "check-secrets"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert missing.returncode == 2
    assert "secret postgres_password is missing or empty: run scripts/compose-secrets.sh" in (
        missing.stderr
    )
    for name in (
        "postgres_password",
        "grafana_admin_password",
        "exporter_password",
        "sms_bridge_token",
    ):
        (tmp_path / name).write_text("s3cret:pa\\ss")
    for name in (
        "twilio_auth_token",
        "slack_webhook_url",
        "pagerduty_routing_key",
        "smtp_password",
    ):
        (tmp_path / name).write_text("")
    ready = subprocess.run(
        ["sh", str(ENTRYPOINT), "check-secrets"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ready.returncode == 0, ready.stderr
    assert set(_compose()["secrets"]) == {p.name for p in tmp_path.iterdir()}


def test_dependencies_wait_for_health_and_only_grafana_is_published() -> None:
    services = _services()
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for other, how in depends.items():
            assert other in services, f"{name} depends on unknown {other}"
            target = services[other]
            if how["condition"] == "service_healthy":
                assert "test" in target.get("healthcheck", {}), f"{other} has no healthcheck"
            else:  # a one-shot job: it must finish, and never restart
                assert how["condition"] == "service_completed_successfully", (name, other)
                assert target.get("restart") == "no", other
        one_shot = service.get("restart") == "no"
        assert one_shot or "test" in service.get("healthcheck", {}), f"{name} has no healthcheck"
        assert one_shot or service.get("restart") == "unless-stopped", name
        if name != "grafana":
            assert "ports" not in service, f"{name} publishes a port"
    assert services["grafana"]["ports"] == ["${GRAFANA_BIND:-127.0.0.1}:${GRAFANA_PORT:-3000}:3000"]
    named = set(_compose()["volumes"])
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./") or source in named, (name, volume)


def test_grafana_admin_password_comes_from_a_secret_not_a_default() -> None:
    grafana = _services()["grafana"]
    env = grafana["environment"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false" and env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def _hosts(targets: list[str]) -> set[str]:
    return {t.rsplit(":", 1)[0] for t in targets}


def test_prometheus_config_names_compose_services_and_promtool_accepts_it(tmp_path: Path) -> None:
    services = _services()
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    named: set[str] = set()
    for job in config["scrape_configs"]:
        for group in job["static_configs"]:
            named |= _hosts(group["targets"])
    for manager in config["alerting"]["alertmanagers"]:
        for group in manager["static_configs"]:
            named |= _hosts(group["targets"])
    assert named - {"localhost"} <= set(services), named
    (exporter_job,) = [
        j for j in config["scrape_configs"] if "exporter:9798" in j["static_configs"][0]["targets"]
    ]
    thresholds = yaml.safe_load((ROOT / "rules" / "thresholds.yaml").read_text())
    assert re.fullmatch(thresholds["exporter_job"], exporter_job["job_name"])
    password_file = exporter_job["basic_auth"]["password_file"]
    assert password_file == "/run/secrets/exporter_password"
    assert "exporter_password" in services["prometheus"]["secrets"]
    # Grafana's datasource points at the prometheus service.
    datasource = yaml.safe_load(
        (ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"][0]
    assert datasource["uid"] == DATASOURCE_UID
    assert datasource["url"] == "http://prometheus:9090"
    # The rule glob reads the directory compose mounts: promtool checks the real rule files.
    mounts = {t: s for s, t in _bind_mounts(services["prometheus"])}
    (pattern,) = config["rule_files"]
    directory = mounts[str(Path(pattern).parent)]
    config["rule_files"] = [str(ROOT / directory / Path(pattern).name)]
    (tmp_path / "password").write_text("x")
    exporter_job["basic_auth"]["password_file"] = str(tmp_path / "password")
    for job in config["scrape_configs"]:  # the bridge's token, as promtool can read it
        if "authorization" in job:
            job["authorization"]["credentials_file"] = str(tmp_path / "password")
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not installed (scripts/test.sh installs Debian's prometheus)")
    result = subprocess.run(
        [promtool, "check", "config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rules found" in result.stdout


def test_alertmanager_and_bridge_share_the_webhook_token() -> None:
    services = _services()
    assert "sms_bridge_token" in services["alertmanager"]["secrets"]
    assert "sms_bridge_token" in services["sms-bridge"]["secrets"]
    bridge = yaml.safe_load((ROOT / "docker" / "sms-bridge.yml").read_text())["sms_bridge"]
    assert bridge["listen_address"] == ":9799"
    assert all(re.fullmatch(r"\+1555555\d{4}", n) for ns in bridge["groups"].values() for n in ns)
    config = ROOT / "alertmanager" / "alertmanager.yml"
    if config.exists():  # generated by the Alertmanager issue: its receivers name our services
        text = config.read_text()
        assert "sms-bridge:9799" in text


def _alertmanager_config() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    return data


def _file_references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("_file") and isinstance(value, str):
                yield value
            else:
                yield from _file_references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _file_references(item)


def test_alertmanager_config_fits_the_compose_stack() -> None:
    """Hosts it sends to are services; files it reads are mounted; SMS groups exist."""
    services = _services()
    config = _alertmanager_config()
    alertmanager = services["alertmanager"]
    mounted_secrets = {f"/run/secrets/{name}" for name in alertmanager.get("secrets", [])}
    files = set(_file_references(config))
    assert files and files <= mounted_secrets, files - mounted_secrets
    mounts = {v.split(":")[1] for v in alertmanager["volumes"] if v.startswith("./")}
    for pattern in config["templates"]:
        assert str(Path(pattern).parent) in mounts
    bridge = yaml.safe_load((ROOT / "docker" / "sms-bridge.yml").read_text())["sms_bridge"]
    hooks = [
        hook["url"]
        for receiver in config["receivers"]
        for hook in receiver.get("webhook_configs", [])
    ]
    assert hooks
    for url in hooks:
        parsed = urlsplit(url)
        assert parsed.hostname in services, url
        if parsed.path != "/heartbeat":  # the Watchdog's, to the bridge itself
            assert parsed.path.removeprefix("/alerts/") in bridge["groups"], url
    assert "http://sms-bridge:9799/heartbeat" in hooks


def test_the_alerting_path_is_scraped_and_the_bridge_watches_the_heartbeat() -> None:
    """Prometheus scrapes itself, Alertmanager and the bridge (with the bridge's token) as the
    jobs the monitoring rules name; the bridge texts routing.yaml's tier 1 SMS group."""
    services = _services()
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["prometheus"]["static_configs"][0]["targets"] == ["localhost:9090"]
    assert jobs["alertmanager"]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    bridge_job = jobs["sms-bridge"]
    assert bridge_job["static_configs"][0]["targets"] == ["sms-bridge:9799"]
    token = bridge_job["authorization"]["credentials_file"]
    assert token == "/run/secrets/sms_bridge_token"
    assert "sms_bridge_token" in services["prometheus"]["secrets"]
    rules = (ROOT / "rules" / "generated" / "monitoring.yml").read_text()
    for metric in (
        "alertmanager_notifications_failed_total",
        "prometheus_rule_evaluation_failures_total",
        "prometheus_notifications_errors_total",
        "boxoffice_sms_bridge_messages_failed_total",
    ):
        assert metric in rules, metric
    bridge = yaml.safe_load((ROOT / "docker" / "sms-bridge.yml").read_text())["sms_bridge"]
    routing = yaml.safe_load((ROOT / "alertmanager" / "routing.yaml").read_text())
    tier_1 = {routing["audiences"][a].get("sms_group") for a in routing["escalation"]["tier_1"]}
    assert bridge["heartbeat_group"] in tier_1


def test_prometheus_config_names_only_compose_services() -> None:
    services = _services()
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    targets = [
        target
        for block in [*config["scrape_configs"], *config["alerting"]["alertmanagers"]]
        for static in block.get("static_configs", [])
        for target in static["targets"]
    ]
    assert targets
    for target in targets:
        host = target.rsplit(":", 1)[0]
        assert host == "localhost" or host in services, target
