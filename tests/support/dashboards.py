"""Read the committed Grafana dashboards the way Grafana would: panels, targets, variables."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.generate.grafana.queries import substitute_variables

ROOT = Path(__file__).parent.parent.parent
DASHBOARDS = ROOT / "grafana" / "dashboards"
NAMES = ("executive", "operations", "business")


@dataclass(frozen=True, kw_only=True)
class Target:
    """One PromQL query of one panel."""

    dashboard: str
    panel_id: int
    panel_title: str
    ref_id: str
    expr: str  # as written in the dashboard, with $variables
    instant: bool

    @property
    def key(self) -> str:
        return f"{self.dashboard}/{self.panel_title}/{self.ref_id}"

    @property
    def promql(self) -> str:
        """The query as Prometheus receives it with every variable at All."""
        return substitute_variables(self.expr)


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DASHBOARDS / f"{name}.json").read_text(encoding="utf-8"))
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows included, with the panels of collapsed rows."""
    out: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def targets(names: tuple[str, ...] = NAMES) -> list[Target]:
    found = []
    for name in names:
        for panel in panels(load(name)):
            for target in panel.get("targets", []):
                found.append(
                    Target(
                        dashboard=name,
                        panel_id=panel["id"],
                        panel_title=panel["title"],
                        ref_id=target["refId"],
                        expr=target["expr"],
                        instant=bool(target.get("instant")),
                    )
                )
    return found


_LABEL_VALUES = re.compile(r"label_values\((?P<selector>.*),\s*(?P<label>\w+)\)", re.S)


def variable_selectors(name: str) -> list[tuple[str, str]]:
    """(variable name, the series selector inside its label_values() query)."""
    out = []
    for variable in load(name)["templating"]["list"]:
        if variable["type"] == "datasource":
            continue  # picks a datasource, reads no series
        query = variable["query"]
        text = query if isinstance(query, str) else query["query"]
        match = _LABEL_VALUES.fullmatch(text.strip())
        assert match, f"{name}: variable {variable['name']} is not a label_values query: {text}"
        out.append((variable["name"], match.group("selector")))
    return out
