"""deploy/kubernetes/base/generated/: the bundle as Kubernetes objects, for the kustomize base.

Every object wraps a file the other producers already rendered, byte for byte, so a cluster
runs exactly what the plain files say: each rule file becomes a ``PrometheusRule`` (its
``spec`` is the file's ``groups``), each dashboard a ``ConfigMap`` labelled for Grafana's
dashboard sidecar, and the Alertmanager configuration with its templates a ``Secret`` (the
key ``alertmanager.yaml`` is what prometheus-operator's ``configSecret`` reads).

These are written as manifests rather than kustomize generators over the plain files because
kustomize refuses files outside a kustomization's directory; the generator writes them, so
``boxoffice generate --check`` keeps them in step with their sources.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from exporter.generate.yaml_text import dump, header

KUBERNETES_DIR = "deploy/kubernetes/base/generated"
PART_OF = {"app.kubernetes.io/part-of": "boxoffice"}
# The label Grafana's dashboard sidecar (kiwigrid k8s-sidecar, as configured by the Grafana
# Helm chart and kube-prometheus-stack) watches for, and the folder annotation they read.
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
DASHBOARD_FOLDER = {"grafana_folder": "boxoffice"}
ALERTMANAGER_SECRET = "boxoffice-alertmanager-config"  # noqa: S105 (a name, not a secret)
# prometheus-operator reads this key of the Secret named by Alertmanager.spec.configSecret.
ALERTMANAGER_KEY = "alertmanager.yaml"


@dataclass(frozen=True, kw_only=True)
class Sources:
    """Where the plain files the manifests wrap live among the generated outputs."""

    rules_dir: str
    dashboards_dir: str
    alertmanager_config: str
    templates_dir: str


def kubernetes_files(outputs: Mapping[str, str], sources: Sources) -> dict[str, str]:
    """``deploy/kubernetes/base/generated/<file>`` -> text, from the rendered plain files."""
    files: dict[str, str] = {}
    for rel, text in sorted(_under(outputs, sources.rules_dir, ".yml").items()):
        stem = posixpath.basename(rel).removesuffix(".yml")
        files[f"prometheusrule-{stem}.yaml"] = _manifest(rel, _prometheus_rule(stem, text))
    for rel, text in sorted(_under(outputs, sources.dashboards_dir, ".json").items()):
        stem = posixpath.basename(rel).removesuffix(".json")
        files[f"grafana-dashboard-{stem}.yaml"] = _manifest(rel, _dashboard(stem, text))
    config = outputs.get(sources.alertmanager_config)
    if config is not None:
        templates = _under(outputs, sources.templates_dir, ".tmpl")
        shown = ", ".join([sources.alertmanager_config, *sorted(templates)])
        files["alertmanager-config.yaml"] = _manifest(shown, _alertmanager(config, templates))
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(files),
    }
    inputs = f"{sources.rules_dir}, {sources.dashboards_dir} and {sources.alertmanager_config}"
    what = "The generated objects of the kustomize base (deploy/kubernetes/base)."
    files["kustomization.yaml"] = header(inputs, what) + dump(kustomization)
    return {f"{KUBERNETES_DIR}/{name}": text for name, text in sorted(files.items())}


def _under(outputs: Mapping[str, str], directory: str, suffix: str) -> dict[str, str]:
    return {
        rel: text
        for rel, text in outputs.items()
        if posixpath.dirname(rel) == directory and rel.endswith(suffix)
    }


def _manifest(source: str, body: dict[str, Any]) -> str:
    what = f"{body['kind']} {body['metadata']['name']}: {source} as a Kubernetes object."
    return header(source, what) + dump(body)


def _metadata(name: str, **extra: dict[str, str]) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": "boxoffice", **PART_OF, **extra.pop("labels", {})}
    return {"name": name, "labels": labels, **extra}


def _prometheus_rule(stem: str, text: str) -> dict[str, Any]:
    """The rule file's groups as the spec (the CRD's spec is exactly a rule file's body)."""
    groups = yaml.safe_load(text)["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _metadata(f"boxoffice-{stem}"),
        "spec": {"groups": groups},
    }


def _dashboard(stem: str, text: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(
            f"boxoffice-dashboard-{stem}", labels=DASHBOARD_LABEL, annotations=DASHBOARD_FOLDER
        ),
        "data": {f"boxoffice-{stem}.json": text},
    }


def _alertmanager(config: str, templates: Mapping[str, str]) -> dict[str, Any]:
    data = {ALERTMANAGER_KEY: config}
    data.update({posixpath.basename(rel): text for rel, text in sorted(templates.items())})
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(ALERTMANAGER_SECRET),
        "type": "Opaque",
        "stringData": data,
    }
