"""The configuration reference in Markdown, rendered from the schema's own field docs."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, get_args, get_origin

from exporter.config.settings import Settings
from exporter.config.typed import Duration


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is Duration:
        return "duration"
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in get_args(tp))
    if origin is dict:
        return "mapping"
    args = [a for a in get_args(tp) if a is not type(None)]
    if args and len(args) < len(get_args(tp)):
        return _type_name(args[0])
    return getattr(tp, "__name__", str(tp))


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is dataclasses.MISSING or f.default is None:
        return ""
    if isinstance(f.default, bool):
        return str(f.default).lower()
    if isinstance(f.default, Duration):
        return _duration(float(f.default))
    return str(f.default)


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _rows(cls: Any, path: str, *, env: bool = True) -> list[str]:
    rows: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        here = f"{path}.{f.name}" if path else f.name
        if dataclasses.is_dataclass(tp):
            rows += _rows(tp, here, env=env)
            continue
        if get_origin(tp) is list and dataclasses.is_dataclass(get_args(tp)[0]):
            variable = "BOXOFFICE_" + here.replace(".", "_").upper()
            doc = f.metadata.get("doc", "")
            rows.append(f"| `{here}` | list | | {doc} `{variable}` (a YAML list) |")
            rows += _rows(get_args(tp)[0], f"{here}[]", env=False)
            continue
        if get_origin(tp) is dict and dataclasses.is_dataclass(get_args(tp)[1]):
            rows.append(f"| `{here}` | mapping | | {f.metadata.get('doc', '')} |")
            key = "<metric>" if f.name == "metrics" else "<name>"
            rows += _rows(get_args(tp)[1], f"{here}.{key}")
            continue
        variable = " `BOXOFFICE_" + here.replace(".", "_").upper() + "`" if env else ""
        doc = f.metadata.get("doc", "")
        secret = " Secret." if f.metadata.get("secret") else ""
        required = " Required." if _required(f) else ""
        rows.append(
            f"| `{here}` | {_type_name(tp)} | {_default(f)} | {doc}{required}{secret}{variable} |"
        )
    return rows


def render_reference() -> str:
    """Markdown table of every setting: path, type, default, meaning and environment variable."""
    header = [
        "| setting | type | default | meaning and environment variable |",
        "|---|---|---|---|",
    ]
    return "\n".join(header + _rows(Settings, "")) + "\n"


def _duration(seconds: float) -> str:
    """The largest whole unit the loader accepts: 30d, 1h, 2m, 1.5s."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"
