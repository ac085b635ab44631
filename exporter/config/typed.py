"""Build frozen dataclasses from parsed YAML, refusing anything the schema does not name.

One small typed-schema mechanism shared by every configuration file boxoffice reads.
Each error is a :class:`ConfigError` naming the file, the dotted path inside it and the
reason, so the CLI can print one line and exit 2.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from exporter.config.errors import ConfigError, blamed

T = TypeVar("T")

Check = Callable[[Any], str | None]
"""A field check: returns the reason the value is wrong, or None when it is fine."""


class Duration(float):
    """Seconds, written in configuration the Prometheus way: ``30s``, ``1m30s``, ``500ms``."""


# Bounds on numbers in any configuration (docs/security.md): a duration beyond a year or a
# count beyond 1e15 is a typo, and would overflow timers and sleeps later.
MAX_DURATION = 366 * 86400.0
MAX_NUMBER = 10**15

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> float:
    """Parse ``1h30m``-style text into seconds; ValueError when it is not a duration."""
    text = text.strip()
    if not text:
        raise ValueError("empty duration")
    pos, total = 0, 0.0
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ValueError(f"not a duration like 30s, 5m or 1h30m: {text!r}")
    return total


def field(
    default: Any = dataclasses.MISSING,
    *,
    doc: str = "",
    check: Check | None = None,
    secret: bool = False,
    default_factory: Callable[[], Any] | None = None,
    key: str | None = None,
) -> Any:
    """A dataclass field carrying its documentation, a value check and whether it is secret.

    ``key`` is the name in the file when it cannot be a Python name (``for``).
    """
    metadata = {"doc": doc, "check": check, "secret": secret, "key": key}
    if default_factory is not None:
        return dataclasses.field(
            default_factory=default_factory, metadata=metadata, repr=not secret
        )
    return dataclasses.field(default=default, metadata=metadata, repr=not secret)


def join(path: str, key: str | int) -> str:
    """Extend a dotted path: ``join("a.b", "c") == "a.b.c"``, ``join("a", 0) == "a[0]"``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def build(
    cls: type[T],
    data: Any,
    *,
    source: str,
    path: str = "",
    origins: Mapping[str, str] | None = None,
) -> T:
    """Turn ``data`` (parsed YAML) into an instance of the dataclass ``cls``.

    ``origins`` maps a dotted path to where its value came from when that was not the
    file (an environment variable, a command-line flag), so errors point there instead.
    """
    return typing.cast(T, _Builder(source, origins or {}).value(cls, data, path))


class _Builder:
    def __init__(self, source: str, origins: Mapping[str, str]) -> None:
        self.source = source
        self.origins = origins

    def error(self, path: str, reason: str) -> ConfigError:
        return blamed(self.origins, self.source, path, reason)

    def value(self, tp: Any, data: Any, path: str) -> Any:
        origin = get_origin(tp)
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            return self.dataclass(tp, data, path)
        if origin in (Union, types.UnionType):
            return self.union(tp, data, path)
        if origin is Literal:
            allowed = get_args(tp)
            if data not in allowed:
                choices = ", ".join(str(a) for a in allowed)
                raise self.error(path, f"must be one of {choices}, got {data!r}")
            return data
        if origin in (list, tuple):
            return self.sequence(tp, data, path)
        if origin is dict:
            return self.mapping(tp, data, path)
        return self.scalar(tp, data, path)

    def dataclass(self, cls: type[Any], data: Any, path: str) -> Any:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise self.error(path, f"must be a mapping, got {_kind(data)}")
        hints = typing.get_type_hints(cls)
        fields = {f.metadata.get("key") or f.name: f for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(str(k) for k in data if k not in fields)
        if unknown:
            known = ", ".join(sorted(fields))
            raise self.error(join(path, unknown[0]), f"unknown key (known keys: {known})")
        kwargs: dict[str, Any] = {}
        for name, f in fields.items():
            sub = join(path, name)
            if name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise self.error(sub, "is required")
                continue
            value = self.value(hints[f.name], data[name], sub)
            check: Check | None = f.metadata.get("check")
            if check is not None and value is not None:
                problem = check(value)
                if problem:
                    raise self.error(sub, problem)
            kwargs[f.name] = value
        return cls(**kwargs)

    def union(self, tp: Any, data: Any, path: str) -> Any:
        args = [a for a in get_args(tp) if a is not type(None)]
        if data is None:
            if len(args) < len(get_args(tp)):
                return None
            raise self.error(path, "must not be empty")
        if len(args) == 1:
            return self.value(args[0], data, path)
        errors: list[ConfigError] = []
        for arg in args:
            try:
                return self.value(arg, data, path)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[-1]

    def sequence(self, tp: Any, data: Any, path: str) -> Any:
        if not isinstance(data, list):
            raise self.error(path, f"must be a list, got {_kind(data)}")
        (item_type, *_) = get_args(tp) or (Any,)
        items = [self.value(item_type, item, join(path, i)) for i, item in enumerate(data)]
        return tuple(items) if get_origin(tp) is tuple else items

    def mapping(self, tp: Any, data: Any, path: str) -> Any:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise self.error(path, f"must be a mapping, got {_kind(data)}")
        _key_type, value_type = get_args(tp)
        result: dict[str, Any] = {}
        for key, item in data.items():
            if not isinstance(key, str) or not key:
                raise self.error(join(path, str(key)), "keys must be non-empty strings")
            result[key] = self.value(value_type, item, join(path, key))
        return result

    def scalar(self, tp: Any, data: Any, path: str) -> Any:
        if tp is Any:
            return data
        if tp is Duration:
            return self.duration(data, path)
        if tp is bool:
            if not isinstance(data, bool):
                raise self.error(path, f"must be true or false, got {data!r}")
            return data
        if tp is int:
            if isinstance(data, bool) or not isinstance(data, int):
                raise self.error(path, f"must be an integer, got {data!r}")
            if abs(data) > MAX_NUMBER:
                raise self.error(path, f"must be at most {MAX_NUMBER:.0e} in magnitude")
            return data
        if tp is float:
            if isinstance(data, bool) or not isinstance(data, int | float):
                raise self.error(path, f"must be a number, got {data!r}")
            if not math.isfinite(data) or abs(data) > MAX_NUMBER:
                raise self.error(path, f"must be a finite number at most {MAX_NUMBER:.0e}")
            return float(data)
        if tp is str:
            if not isinstance(data, str):
                raise self.error(path, f"must be a string, got {_kind(data)}")
            return data
        raise TypeError(f"unsupported schema type {tp!r} at {path}")  # a bug in our schema

    def duration(self, data: Any, path: str) -> Duration:
        if isinstance(data, bool):
            raise self.error(path, f"must be a duration like 30s, got {data!r}")
        if isinstance(data, int | float):
            seconds = float(data)
        elif isinstance(data, str):
            try:
                seconds = parse_duration(data)
            except ValueError as exc:
                raise self.error(path, str(exc)) from None
        else:
            raise self.error(path, f"must be a duration like 30s, got {_kind(data)}")
        if seconds < 0:
            raise self.error(path, "must not be negative")
        if not seconds <= MAX_DURATION:  # also NaN
            raise self.error(path, "must be at most 366d")
        return Duration(seconds)


def _kind(data: Any) -> str:
    if data is None:
        return "nothing"
    if isinstance(data, dict):
        return "a mapping"
    if isinstance(data, list):
        return "a list"
    return f"{type(data).__name__} {data!r}"


def at_least(minimum: float) -> Check:
    """Check that a number is at least ``minimum``."""
    return lambda v: None if v >= minimum else f"must be >= {minimum:g}, got {v:g}"


def positive(v: Any) -> str | None:
    """Check that a number is greater than zero."""
    return None if v > 0 else f"must be > 0, got {v:g}"
