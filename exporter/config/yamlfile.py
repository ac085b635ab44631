"""Every YAML file boxoffice reads goes through here: parsed strictly, then typed.

Strict means safe YAML with duplicate keys refused (PyYAML keeps the last one silently).
:func:`load_typed` is the one way a file becomes a typed dataclass; callers that overlay
other input first (the environment, flags) take :func:`read_mapping` and build themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from exporter.config.errors import ConfigError
from exporter.config.typed import build, join

T = TypeVar("T")


# Resource bounds on any YAML input (docs/security.md): nesting and integer size.
MAX_DEPTH = 64
MAX_INT_DIGITS = 18
MAX_ALIASES = 100
MAX_NODES = 100_000  # after alias expansion ("billion laughs" multiplies every later walk)


class YamlLimitError(yaml.YAMLError):
    """YAML that is well formed but past a resource bound."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys, deep nesting and huge integers.

    PyYAML composes recursively, so 1000 nested levels end in a RecursionError and a
    5000-digit integer in Python's int-conversion ValueError: both become one-line errors.
    """

    _depth = 0
    _aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YamlLimitError(f"more than {MAX_ALIASES} aliases", event.start_mark)
            if event.anchor in self._open:
                raise YamlLimitError("an alias refers to a node that contains it", event.start_mark)
        self._depth += 1
        is_alias = isinstance(event, yaml.AliasEvent)
        anchor = None if is_alias else getattr(event, "anchor", None)
        if anchor is not None:
            self._open = self._open | {anchor}
        try:
            if self._depth > MAX_DEPTH:
                raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open = self._open - {anchor}

    _open: frozenset[str] = frozenset()

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None and _expanded_size(node, {}) > MAX_NODES:
            raise YamlLimitError(f"more than {MAX_NODES} values once aliases are expanded", None)
        return node


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Values ``node`` stands for once every alias is expanded (shared nodes counted once each)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(
            _expanded_size(key, sizes) + _expanded_size(value, sizes) for key, value in node.value
        )
    sizes[id(node)] = size
    return size


def _bounded_int(loader: _StrictLoader, node: yaml.ScalarNode) -> Any:
    digits = sum(c.isalnum() for c in str(node.value))
    if digits > MAX_INT_DIGITS + 2:  # room for a 0x / 0o prefix
        raise YamlLimitError(f"integer with more than {MAX_INT_DIGITS} digits", node.start_mark)
    return loader.construct_yaml_int(node)


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _value in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                None,
                None,
                "mapping keys must be plain values, not lists or mappings",
                key_node.start_mark,
            )
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)
_StrictLoader.add_constructor("tag:yaml.org,2002:int", _bounded_int)


def parse_yaml(text: str) -> Any:
    """Parse YAML text strictly; raises yaml.YAMLError (YamlLimitError past a bound)."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: str) -> Any:
    """Parse a YAML file strictly; errors name the file and the line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(path, "", "is not UTF-8 text") from None
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(path, where, f"invalid YAML: {problem}") from None


def read_mapping(path: str, *, name: str | None = None) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (an empty file is an empty one).

    ``name`` is how errors call the file when that is not its path.
    """
    source = name or path
    try:
        data = read_yaml(path)
    except ConfigError as exc:
        raise ConfigError(source, exc.path, exc.reason) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(source, "", "must be a mapping at the top level")
    return data


def load_typed(
    cls: type[T],
    path: str,
    *,
    name: str | None = None,
    unsupported: Mapping[str, str] | None = None,
    plain_text: bool = False,
) -> T:
    """Read a YAML file into the frozen dataclass ``cls``, unknown keys refused.

    ``unsupported`` maps dotted keys a file format defines but we do not implement to what
    to do instead, so the user reads that rather than a bare "unknown key".
    ``plain_text`` refuses control characters and Go template delimiters in every key and
    string, for files whose values end up in generated YAML, PromQL and templates.
    """
    source = name or path
    data = read_mapping(path, name=name)
    if plain_text:
        found = text_problem(data)
        if found is not None:
            raise ConfigError(source, *found)
    for dotted, reason in (unsupported or {}).items():
        if _present(data, dotted.split(".")):
            raise ConfigError(source, dotted, reason)
    return build(cls, data, source=source)


def text_problem(data: Any, path: str = "") -> tuple[str, str] | None:
    """The first (path, reason) of a string that is not plain text, or None."""
    if isinstance(data, dict):
        for key, value in data.items():
            sub = join(path, str(key))
            found = text_problem(key, sub) or text_problem(value, sub)
            if found is not None:
                return found
    elif isinstance(data, list):
        for index, item in enumerate(data):
            found = text_problem(item, join(path, index))
            if found is not None:
                return found
    elif isinstance(data, str):
        if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in data):
            return path, "must not contain control characters (newline, CR, …)"
        if "{{" in data or "}}" in data:
            return path, "must not contain {{ or }} (Go template delimiters)"
    return None


def _present(data: Any, keys: list[str]) -> bool:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return False
        data = data[key]
    return True
