"""docker-compose.yml and docker-compose.ha.yml checked statically (no Docker engine here):
the Compose specification's JSON schema, mounted files, pinned images, healthy dependencies,
secrets from files, and the Prometheus configurations they mount (real promtool)."""

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
COMPOSE_HA = ROOT / "docker-compose.ha.yml"
BOTH = pytest.mark.parametrize("path", [COMPOSE, COMPOSE_HA], ids=["main", "ha"])
SPEC = ROOT / "tests" / "reference" / "compose-spec.json"  # vendored, see its README
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"


def _compose(path: Path = COMPOSE) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def _services(path: Path = COMPOSE) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose(path)["services"]
    return services


def _spec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SPEC.read_text())
    return data


@BOTH
def test_compose_file_matches_the_compose_specification(path: Path) -> None:
    schema = _spec()
    assert "draft-07" in schema["$schema"]
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(_compose(path))
    ]
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


@BOTH
def test_every_image_is_pinned(path: Path) -> None:
    for name, service in _services(path).items():
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


@BOTH
def test_every_mounted_file_is_in_the_repository(path: Path) -> None:
    mounted = []
    for name, service in _services(path).items():
        for source, _target in _bind_mounts(service):
            mounted.append(source)
            assert (ROOT / source).exists(), f"{name} mounts {source}, which is not in the repo"
    assert "rules/generated" in mounted and "grafana/dashboards" in mounted
    # The Dockerfile copies only what exists too.
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


@BOTH
def test_secrets_come_from_files_the_setup_script_creates(tmp_path: Path, path: Path) -> None:
    compose = _compose(path)
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


@BOTH
def test_dependencies_wait_for_health_and_only_grafana_is_published(path: Path) -> None:
    services = _services(path)
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
    named = set(_compose(path)["volumes"])
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./") or source in named, (name, volume)


@BOTH
def test_grafana_admin_password_comes_from_a_secret_not_a_default(path: Path) -> None:
    grafana = _services(path)["grafana"]
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


# docker-compose.ha.yml: every part of the stack has a twin (docs/high-availability.md).


def _ha() -> dict[str, dict[str, Any]]:
    return _services(COMPOSE_HA)


def _aliases(service: dict[str, Any]) -> set[str]:
    networks = service.get("networks") or {}
    return {a for net in networks.values() for a in (net or {}).get("aliases", [])}


def _ha_hosts() -> set[str]:
    """Names a container of the HA stack resolves: services and their network aliases."""
    services = _ha()
    return set(services) | {a for s in services.values() for a in _aliases(s)}


def test_ha_stack_has_a_twin_of_every_part() -> None:
    services = _ha()
    for part in ("exporter", "sms-bridge", "prometheus", "alertmanager"):
        assert {f"{part}-a", f"{part}-b"} <= set(services), part
        assert part not in services  # only the twins, the name is at most an alias
    assert {"postgres", "postgres-standby", "grafana", "init-db"} <= set(services)
    # Twins run the same thing: same image and command (but the Alertmanagers' peers).
    for part in ("exporter", "sms-bridge", "prometheus"):
        a, b = services[f"{part}-a"], services[f"{part}-b"]
        assert (a["image"], a.get("command")) == (b["image"], b.get("command")), part
    assert services["exporter-a"]["command"] == ["serve"]
    assert services["sms-bridge-a"]["command"] == ["sms-bridge"]
    # Each twin keeps its own state: checkpoints, TSDB, silences and notification log.
    for part in ("exporter", "sms-bridge", "prometheus", "alertmanager"):
        volumes = [
            {v.split(":")[0] for v in services[f"{part}-{x}"]["volumes"] if "/" not in v[:2]}
            for x in "ab"
        ]
        assert volumes[0] and not volumes[0] & volumes[1], part


def test_ha_exporters_read_the_standby_with_the_lease_and_checkpoints() -> None:
    services = _ha()
    standby = services["postgres-standby"]
    assert standby["depends_on"]["postgres"]["condition"] == "service_healthy"
    script = ROOT / "docker" / "postgres-standby" / "standby.sh"
    assert f"./{script.relative_to(ROOT)}:/usr/local/bin/standby.sh:ro" in standby["volumes"]
    assert standby["entrypoint"] == ["/usr/local/bin/standby.sh"]
    text = script.read_text()
    assert "pg_basebackup" in text and "--write-recovery-conf" in text
    assert "hot_standby_feedback = on" in text
    # The primary lets the standby stream (an init script of the postgres image).
    assert "replication" in (ROOT / "docker" / "postgres-init" / "20-replication.sh").read_text()
    for name in ("exporter-a", "exporter-b"):
        env = services[name]["environment"]
        assert urlsplit(env["BOXOFFICE_DSN"]).hostname == "postgres-standby", name
        assert env["BOXOFFICE_HA_LEASE_DATABASE"] == "default", name
        state = env["BOXOFFICE_SOURCES_POSTGRES_INCREMENTAL_STATE_DIR"]
        mounts = {v.split(":")[1] for v in services[name]["volumes"]}
        assert any(state.startswith(m + "/") for m in mounts), (name, state)
        assert "postgres-standby" in services[name]["depends_on"], name
    # The schema is written on the primary; only the standby is read.
    init = services["init-db"]["environment"]["BOXOFFICE_DSN"]
    assert urlsplit(init).hostname == "postgres"


def test_ha_bridges_share_one_postgres_store_and_answer_as_sms_bridge() -> None:
    services = _ha()
    dsn_files = set()
    for name in ("sms-bridge-a", "sms-bridge-b"):
        bridge = services[name]
        assert "sms-bridge" in _aliases(bridge), name
        target = bridge["environment"]["BOXOFFICE_SMS_BRIDGE_STORE_DSN_FILE"]
        (source,) = [s for s, t in _bind_mounts(bridge) if t == target]
        dsn_files.add(source)
        assert "postgres_password" in bridge["secrets"], name  # for the pgpass file
    (dsn_file,) = dsn_files
    dsn = (ROOT / dsn_file).read_text().strip()
    parsed = urlsplit(dsn)
    assert parsed.hostname == "postgres" and parsed.password is None  # the primary, no secret
    entrypoint = ENTRYPOINT.read_text()
    assert 'BOXOFFICE_SMS_BRIDGE_STORE_DSN_FILE:-}" ]; then' in entrypoint
    # The generated Alertmanager configuration posts to the alias both bridges carry.
    hooks = re.findall(
        r"url: (http://[^\s']+)", (ROOT / "alertmanager" / "alertmanager.yml").read_text()
    )
    hosts = {urlsplit(h).hostname for h in hooks if h.startswith("http://sms-bridge")}
    assert hosts == {"sms-bridge"} and "sms-bridge" in _ha_hosts()


def test_ha_alertmanagers_form_one_cluster() -> None:
    services = _ha()
    peers = {}
    for me, other in (("alertmanager-a", "alertmanager-b"), ("alertmanager-b", "alertmanager-a")):
        command = services[me]["command"]
        assert "--cluster.listen-address=0.0.0.0:9094" in command, me
        assert f"--cluster.peer={other}:9094" in command, me
        assert "--config.file=/etc/alertmanager/alertmanager.yml" in command, me
        peers[me] = [c for c in command if not c.startswith("--cluster.peer")]
    assert peers["alertmanager-a"] == peers["alertmanager-b"]
    assert "ports" not in services["alertmanager-a"]


def test_ha_prometheus_pair_sends_to_both_alertmanagers_and_promtool_accepts_it(
    tmp_path: Path,
) -> None:
    services = _ha()
    replicas = set()
    for name in ("prometheus-a", "prometheus-b"):
        server = services[name]
        assert "--enable-feature=expand-external-labels" in server["command"], name
        assert "prometheus" in _aliases(server), name
        replicas.add(server["environment"]["PROMETHEUS_REPLICA"])
        mounts = {t: s for s, t in _bind_mounts(server)}
        assert mounts["/etc/prometheus/prometheus.yml"] == "prometheus/prometheus-ha.yml"
    assert replicas == {"a", "b"}
    text = (ROOT / "prometheus" / "prometheus-ha.yml").read_text()
    config = yaml.safe_load(text)
    assert config["global"]["external_labels"] == {"replica": "${PROMETHEUS_REPLICA}"}
    # The replica label never reaches Alertmanager: the pair's two copies are one alert.
    assert {"action": "labeldrop", "regex": "replica"} in config["alerting"][
        "alert_relabel_configs"
    ]
    (managers,) = config["alerting"]["alertmanagers"]
    assert managers["static_configs"][0]["targets"] == [
        "alertmanager-a:9093",
        "alertmanager-b:9093",
    ]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["boxoffice"]["static_configs"][0]["targets"] == [
        "exporter-a:9798",
        "exporter-b:9798",
    ]
    hosts = _ha_hosts()
    for job in config["scrape_configs"]:
        for group in job["static_configs"]:
            assert _hosts(group["targets"]) <= hosts, job["job_name"]
    thresholds = yaml.safe_load((ROOT / "rules" / "thresholds.yaml").read_text())
    assert re.fullmatch(thresholds["exporter_job"], "boxoffice")
    # Grafana's datasource (http://prometheus:9090) reaches either server.
    assert "prometheus" in hosts
    # promtool, once per replica as each server expands it, with the real rule files.
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not installed (scripts/test.sh installs Debian's prometheus)")
    (tmp_path / "password").write_text("x")
    for replica in sorted(replicas):
        expanded = yaml.safe_load(text.replace("${PROMETHEUS_REPLICA}", replica))
        expanded["rule_files"] = [str(ROOT / "rules" / "generated" / "*.yml")]
        jobs = {j["job_name"]: j for j in expanded["scrape_configs"]}
        jobs["boxoffice"]["basic_auth"]["password_file"] = str(tmp_path / "password")
        jobs["sms-bridge"]["authorization"]["credentials_file"] = str(tmp_path / "password")
        path = tmp_path / f"prometheus-{replica}.yml"
        path.write_text(yaml.safe_dump(expanded))
        result = subprocess.run(
            [promtool, "check", "config", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "rules found" in result.stdout
    # The unexpanded file is valid too (the label value is just text to promtool).
    raw = yaml.safe_load(text)
    raw["rule_files"] = []
    for job in raw["scrape_configs"]:
        job.pop("basic_auth", None)
        job.pop("authorization", None)
    (tmp_path / "raw.yml").write_text(yaml.safe_dump(raw))
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "raw.yml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ha_alertmanager_config_fits_both_alertmanagers() -> None:
    services = _ha()
    config = _alertmanager_config()
    files = set(_file_references(config))
    for name in ("alertmanager-a", "alertmanager-b"):
        mounted = {f"/run/secrets/{s}" for s in services[name]["secrets"]}
        assert files <= mounted, (name, files - mounted)
        mounts = {v.split(":")[1] for v in services[name]["volumes"] if v.startswith("./")}
        for pattern in config["templates"]:
            assert str(Path(pattern).parent) in mounts, name
    hosts = _ha_hosts()
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            assert urlsplit(hook["url"]).hostname in hosts, hook["url"]
