"""The kustomize base (deploy/kubernetes/base), built with the real `kubectl kustomize`: every
object checked against its schema (prometheus-operator's CRDs, vendored under
tests/reference/prometheus-operator) or, for core objects, against what the API server
requires; the generated PrometheusRules, dashboard ConfigMaps and Alertmanager Secret equal
the plain files they wrap; `generate --check` covers them."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from exporter.cli import main
from exporter.config.loader import load_settings
from exporter.generate.kubernetes import ALERTMANAGER_KEY, DASHBOARD_LABEL, KUBERNETES_DIR
from exporter.generate.thresholds import load_thresholds
from exporter.smsbridge.config import load_bridge_config

ROOT = Path(__file__).parent.parent
BASE = ROOT / "deploy" / "kubernetes" / "base"
OVERLAY = ROOT / "deploy" / "kubernetes" / "overlays" / "example"
CRDS = ROOT / "tests" / "reference" / "prometheus-operator"  # vendored, see its README
KINDS = {"Deployment", "Service", "ServiceMonitor", "PrometheusRule", "ConfigMap", "Secret"}
# What the API server accepts (k8s.io/apimachinery validation).
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")


def _kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (CI has it; it builds the kustomize base)")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@cache
def _built(directory: Path) -> tuple[dict[str, Any], ...]:
    return tuple(_kustomize(directory))


def _objects(kind: str, directory: Path = BASE) -> list[dict[str, Any]]:
    return [copy.deepcopy(o) for o in _built(directory) if o["kind"] == kind]


def _one(kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in _objects(kind) if o["metadata"]["name"] == name]
    return found


def _strict(schema: Any) -> Any:
    """The CRD's schema as the API server applies it with strict field validation: unknown
    fields refused (instead of silently pruned), int-or-string as either."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def _validator(kind: str) -> jsonschema.Draft7Validator:
    plural = {"PrometheusRule": "prometheusrules", "ServiceMonitor": "servicemonitors"}[kind]
    crd = yaml.safe_load((CRDS / f"monitoring.coreos.com_{plural}.yaml").read_text())
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _strict(version["schema"]["openAPIV3Schema"])
    # metadata is the API server's ObjectMeta, checked by _check_metadata.
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(schema)


def _check_metadata(obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    name = meta["name"]
    assert DNS_SUBDOMAIN.match(name) and len(name) <= 253, name
    if obj["kind"] in {"Service"}:
        assert DNS_LABEL.match(name), name  # a Service name is a DNS label
    for key, value in {**meta.get("labels", {}), **meta.get("annotations", {})}.items():
        assert isinstance(value, str), (name, key)
    for key, value in meta.get("labels", {}).items():
        assert LABEL_VALUE.match(value), (name, key, value)


def test_the_base_holds_every_kind_and_each_object_has_what_the_api_requires() -> None:
    objects = _built(BASE)
    assert {o["kind"] for o in objects} == KINDS
    seen = set()
    for obj in objects:
        assert obj["apiVersion"] and obj["kind"] and obj["metadata"]["name"]
        key = (obj["kind"], obj["metadata"]["name"])
        assert key not in seen, key
        seen.add(key)
        assert "namespace" not in obj["metadata"], key  # the overlay or kubectl -n picks it
        _check_metadata(obj)
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "boxoffice", key


@pytest.mark.parametrize("kind", ["PrometheusRule", "ServiceMonitor"])
def test_operator_objects_validate_against_the_crd_schema(kind: str) -> None:
    objects = _objects(kind)
    assert objects
    validator = _validator(kind)
    for obj in objects:
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(obj)]
        assert not errors, (obj["metadata"]["name"], errors[:5])


def test_the_crd_validator_refuses_what_the_api_server_refuses() -> None:
    # The check above is only as good as its validator: show it rejects real mistakes.
    rule = _objects("PrometheusRule")[0]
    typo = copy.deepcopy(rule)
    typo["spec"]["groups"][0]["rules"][0]["exprs"] = "up"
    late = copy.deepcopy(rule)
    late["spec"]["groups"][0]["interval"] = "5 minutes"
    monitor = _objects("ServiceMonitor")[0]
    monitor["spec"]["endpoints"][0]["scrapeTimout"] = "10s"
    assert not _validator("PrometheusRule").is_valid(typo)
    assert not _validator("PrometheusRule").is_valid(late)
    assert not _validator("ServiceMonitor").is_valid(monitor)


def test_prometheus_rules_are_the_plain_rule_files() -> None:
    rules = {o["metadata"]["name"]: o for o in _objects("PrometheusRule")}
    files = sorted((ROOT / "rules" / "generated").glob("*.yml"))
    assert files and sorted(rules) == sorted(f"boxoffice-{p.stem}" for p in files)
    for path in files:
        plain = yaml.safe_load(path.read_text())
        assert rules[f"boxoffice-{path.stem}"]["spec"] == plain, path.name
        assert set(plain) == {"groups"}


def test_dashboards_are_configmaps_the_grafana_sidecar_loads() -> None:
    maps = [
        o
        for o in _objects("ConfigMap")
        if DASHBOARD_LABEL.items() <= o["metadata"].get("labels", {}).items()
    ]
    files = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
    assert len(maps) == len(files) == 3
    by_key = {key: text for m in maps for key, text in m["data"].items()}
    for path in files:
        text = by_key[f"boxoffice-{path.stem}.json"]
        assert text == path.read_text()
        assert json.loads(text)["uid"] == f"boxoffice-{path.stem}"
    for configmap in maps:
        assert all(CONFIG_KEY.match(k) for k in configmap["data"])
        # ConfigMaps are limited to 1 MiB; client-side apply also stores a copy in an
        # annotation limited to 256 KiB.
        assert sum(len(t.encode()) for t in configmap["data"].values()) < 256 * 1024


def test_alertmanager_config_is_a_secret_with_the_generated_files() -> None:
    secret = _one("Secret", "boxoffice-alertmanager-config")
    data = secret["stringData"]
    assert data[ALERTMANAGER_KEY] == (ROOT / "alertmanager" / "alertmanager.yml").read_text()
    templates = sorted((ROOT / "alertmanager" / "templates").glob("*.tmpl"))
    assert templates
    for path in templates:
        assert data[path.name] == path.read_text()
    assert set(data) == {ALERTMANAGER_KEY, *(p.name for p in templates)}
    assert all(CONFIG_KEY.match(k) for k in data)


def _pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def test_deployments_are_sound_and_locked_down() -> None:
    deployments = {d["metadata"]["name"]: d for d in _objects("Deployment")}
    assert set(deployments) == {"boxoffice-exporter", "boxoffice-sms-bridge"}
    configmaps = {c["metadata"]["name"] for c in _objects("ConfigMap")}
    secrets_in_base = {s["metadata"]["name"] for s in _objects("Secret")}
    for name, deployment in deployments.items():
        assert deployment["apiVersion"] == "apps/v1"
        spec = deployment["spec"]
        assert spec["replicas"] >= 1
        selector = spec["selector"]["matchLabels"]
        assert selector and selector.items() <= _pod_labels(deployment).items(), name
        pod = spec["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        volumes = {v["name"]: v for v in pod["volumes"]}
        for volume in volumes.values():
            if "configMap" in volume:
                assert volume["configMap"]["name"] in configmaps, volume
            if "secret" in volume:
                # Credentials are created by the operator of the cluster, never shipped.
                assert volume["secret"]["secretName"] not in secrets_in_base
        (container,) = pod["containers"]
        assert container["image"] and container["name"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            get = container[probe]["httpGet"]
            assert get["path"] == "/healthz" and get["port"] in ports, (name, probe)
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and resources["limits"]["memory"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert all(m["name"] in volumes for m in mounts.values())
        # A read-only root needs somewhere to write: /tmp and the state directory.
        assert {"/tmp", "/var/lib/boxoffice"} <= set(mounts)
        for env in container["env"]:
            assert "value" in env or "valueFrom" in env, env
            if env["name"].endswith("_FILE"):
                _assert_secret_file(env["value"], mounts, volumes)
            assert not re.search(r"://[^/@]+:[^/@]+@", env.get("value", "")), env["name"]


def _assert_secret_file(
    path: str, mounts: dict[str, dict[str, Any]], volumes: dict[str, dict[str, Any]]
) -> None:
    (mount,) = [m for p, m in mounts.items() if path.startswith(p.rstrip("/") + "/")]
    assert "secret" in volumes[mount["name"]] and mount["readOnly"], path


def test_exporter_reads_its_dsn_from_the_secret() -> None:
    deployment = _one("Deployment", "boxoffice-exporter")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["BOXOFFICE_DSN_FILE"] == "/etc/boxoffice/secrets/dsn"
    assert "BOXOFFICE_DSN" not in env
    assert container["args"] == ["serve"]


def test_sms_bridge_configmap_is_a_configuration_the_bridge_accepts(tmp_path: Path) -> None:
    deployment = _one("Deployment", "boxoffice-sms-bridge")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    (mount,) = [
        m for m in container["volumeMounts"] if m["mountPath"] == env["BOXOFFICE_CONFIG"]["value"]
    ]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    configmap = _one("ConfigMap", volume["configMap"]["name"])
    text = configmap["data"][mount["subPath"]]
    path = tmp_path / "sms-bridge.yml"
    path.write_text(text)
    # The paths as the container sees them...
    _, settings, _ = load_settings(str(path), env={})
    bridge = settings.sms_bridge
    secrets_mount = next(m for m in container["volumeMounts"] if m["name"] == "secrets")
    for file in (bridge.bearer_token_file, bridge.auth_token_file):
        assert file and file.startswith(secrets_mount["mountPath"] + "/")
    assert bridge.store.startswith("/var/lib/boxoffice/")
    assert not bridge.dry_run
    # ...and the whole check the bridge runs at start, with the Secret's files stood in for.
    (tmp_path / "bearer").write_text("token\n")
    (tmp_path / "twilio").write_text("twilio-token\n")
    config = load_bridge_config(
        str(path),
        env={
            "BOXOFFICE_SMS_BRIDGE_BEARER_TOKEN_FILE": str(tmp_path / "bearer"),
            "BOXOFFICE_SMS_BRIDGE_AUTH_TOKEN_FILE": str(tmp_path / "twilio"),
            "BOXOFFICE_SMS_BRIDGE_ACCOUNT_SID": "AC" + "0" * 32,
        },
    )
    # The groups routing.yaml's audiences post to, as in docker compose.
    compose = yaml.safe_load((ROOT / "docker" / "sms-bridge.yml").read_text())["sms_bridge"]
    assert {g: list(n) for g, n in config.groups.items()} == compose["groups"]
    sid = env["BOXOFFICE_SMS_BRIDGE_ACCOUNT_SID"]["valueFrom"]["secretKeyRef"]
    assert sid["name"] == next(v for v in pod["volumes"] if "secret" in v)["secret"]["secretName"]


def test_services_select_their_pods_and_expose_container_ports() -> None:
    deployments = _objects("Deployment")
    services = _objects("Service")
    assert len(services) == len(deployments) == 2
    for service in services:
        selector = service["spec"]["selector"]
        (target,) = [d for d in deployments if selector.items() <= _pod_labels(d).items()]
        (container,) = target["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports or port["targetPort"] in ports.values()
            assert ports.get(port["targetPort"], port["targetPort"]) == port["port"]


def test_service_monitors_select_the_services_and_keep_the_bridge_out_of_exporter_down() -> None:
    services = _objects("Service")
    jobs = {}
    for monitor in _objects("ServiceMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        (service,) = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
        names = {p["name"] for p in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in names and endpoint["path"] == "/metrics"
        # Without jobLabel, prometheus-operator names the job after the Service.
        assert "jobLabel" not in monitor["spec"]
        jobs[monitor["metadata"]["name"]] = service["metadata"]["name"]
    th = load_thresholds(str(ROOT / "rules" / "thresholds.yaml"))
    exporter_job = re.compile(th.file.exporter_job)
    assert exporter_job.fullmatch(jobs["boxoffice-exporter"])
    assert not exporter_job.fullmatch(jobs["boxoffice-sms-bridge"])
    # The generated alertmanager.yml posts to http://<this Service>:<port>/alerts/<group>.
    config = (ROOT / "alertmanager" / "alertmanager.yml").read_text()
    bridge = _one("Service", jobs["boxoffice-sms-bridge"])
    assert f"http://{bridge['metadata']['name']}:{bridge['spec']['ports'][0]['port']}/" in config


def test_the_example_overlay_builds_into_its_namespace() -> None:
    objects = _built(OVERLAY)
    assert {o["kind"] for o in objects} == KINDS
    assert {o["metadata"].get("namespace") for o in objects} == {"boxoffice"}
    for deployment in (o for o in objects if o["kind"] == "Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"].startswith("registry.example.com/boxoffice:")
    selected = [o for o in objects if o["kind"] in {"PrometheusRule", "ServiceMonitor"}]
    assert all(o["metadata"]["labels"]["release"] == "kube-prometheus-stack" for o in selected)
    for obj in selected:
        assert _validator(obj["kind"]).is_valid(obj), obj["metadata"]["name"]


def test_generate_writes_the_manifests_and_check_catches_hand_edits(tmp_path: Path) -> None:
    for rel in ("rules/thresholds.yaml", "alertmanager/routing.yaml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    runner = CliRunner()
    assert runner.invoke(main, ["generate", "--root", str(tmp_path)]).exit_code == 0
    written = tmp_path / KUBERNETES_DIR
    committed = ROOT / KUBERNETES_DIR
    names = sorted(p.name for p in committed.glob("*.yaml"))
    assert names == sorted(p.name for p in written.glob("*.yaml"))
    for name in names:
        assert (written / name).read_bytes() == (committed / name).read_bytes(), name
    rule = written / "prometheusrule-sales.yaml"
    rule.write_text(rule.read_text() + "# edited by hand\n")
    (written / "retired.yaml").write_text("{}\n")
    stale = runner.invoke(main, ["generate", "--check", "--root", str(tmp_path)])
    assert stale.exit_code == 1
    assert stale.output.splitlines() == [
        f"boxoffice: {KUBERNETES_DIR}/prometheusrule-sales.yaml: stale, run `boxoffice generate`",
        f"boxoffice: {KUBERNETES_DIR}/retired.yaml: stale, run `boxoffice generate`",
    ]
