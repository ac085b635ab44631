"""One pipeline for configuration: YAML file -> environment -> flags -> typed schema -> checks.

The result is a frozen :class:`Config`; anything wrong on the way is a :class:`ConfigError`
naming the file (or environment variable, or flag), the path inside it and the reason.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, get_args, get_origin

import yaml

from exporter.catalog import POSTGRES_PACK, CatalogMetric
from exporter.config.credentials import resolve_credentials, secret_value
from exporter.config.errors import ConfigError
from exporter.config.readonly_sql import sql_problem
from exporter.config.settings import DatabaseSettings, Settings
from exporter.config.typed import build, join
from exporter.config.yamlfile import YamlLimitError, parse_yaml, read_mapping

ENV_PREFIX = "BOXOFFICE_"
# Fixed names scripts and containers rely on (SPEC 3); everything else maps by schema path.
_ENV_ALIASES = {
    "BOXOFFICE_DSN": "databases.default.dsn",
    "BOXOFFICE_DSN_FILE": "databases.default.dsn_file",
}
_ENV_IGNORED = {"BOXOFFICE_CONFIG"}
NO_FILE = "configuration"
_PACK_NAMES = frozenset(metric.name for metric in POSTGRES_PACK)


@dataclass(frozen=True, kw_only=True)
class Database:
    """A named database with its DSN resolved (from the file, the environment or a secret file)."""

    name: str
    dsn: str = dataclasses.field(repr=False)
    pool_max_size: int
    connect_timeout: float
    # Constant labels added to every series read from this database (shards).
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class BoundMetric:
    """A PostgreSQL metric of the catalog bound to the database it reads.

    ``sql`` is the user's replacement for the query pack's SQL, or None to keep the pack's
    (which the PostgreSQL source owns: configuration never needs to read it).
    """

    spec: CatalogMetric
    database: str
    sql: str | None = None

    @property
    def overridden(self) -> bool:
        """True when the user replaced the pack's SQL."""
        return self.sql is not None


@dataclass(frozen=True, kw_only=True)
class Config:
    """Everything boxoffice runs from, checked and frozen."""

    source: str
    settings: Settings
    databases: Mapping[str, Database]
    metrics: tuple[BoundMetric, ...]
    secrets: frozenset[str] = dataclasses.field(repr=False)
    # API keys, tokens and secret header values by settings path (see config.credentials).
    credentials: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)


def load_config(
    path: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, tuple[Any, str]] | None = None,
) -> Config:
    """Load, overlay and check the configuration.

    ``flags`` maps a dotted settings path to ``(value, flag name)`` for options given on the
    command line; they win over the environment, which wins over the file.
    """
    source, settings, origins = load_settings(path, env=env, flags=flags)
    return _check(source, settings, origins)


def load_settings(
    path: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, tuple[Any, str]] | None = None,
) -> tuple[str, Settings, dict[str, str]]:
    """The typed settings with environment and flags applied, not yet cross-checked.

    Returns the source name for errors, the settings and where overridden paths came from;
    commands that use one section only (``sms-bridge``) check that section themselves.
    """
    source = path or NO_FILE
    data = read_mapping(path) if path else {}
    origins: dict[str, str] = {}
    for env_path, (value, name) in _env_overrides(env or {}).items():
        _set(data, env_path, value)
        origins[env_path] = f"environment variable {name}"
    for flag_path, (value, name) in (flags or {}).items():
        _set(data, flag_path, value)
        origins[flag_path] = f"flag {name}"
    return source, build(Settings, data, source=source, origins=origins), origins


def _check(source: str, settings: Settings, origins: Mapping[str, str]) -> Config:
    def error(path: str, reason: str) -> ConfigError:
        origin = origins.get(path)
        return ConfigError(origin, "", reason) if origin else ConfigError(source, path, reason)

    databases = {
        name: _resolve_database(name, db, error) for name, db in settings.databases.items()
    }
    lease = settings.ha.lease_database
    if lease is not None and lease not in databases:
        defined = ", ".join(sorted(databases)) or "none"
        raise error("ha.lease_database", f"no database named {lease!r} (defined: {defined})")
    postgres = settings.sources.postgres
    if postgres.timeout is not None and postgres.timeout > postgres.interval:
        raise error(
            "sources.postgres.timeout",
            f"must not exceed sources.postgres.interval ({postgres.interval:g}s)",
        )
    twilio = settings.sources.twilio
    if twilio.window <= twilio.interval:
        # Each cycle lists the messages sent within the window: a shorter one leaves gaps.
        raise error(
            "sources.twilio.window",
            f"must be longer than sources.twilio.interval ({twilio.interval:g}s)",
        )
    for name in settings.metrics:
        if name not in _PACK_NAMES:
            raise error(join("metrics", name), "not a boxoffice PostgreSQL metric")
    pack_databases: list[str] | None = None  # expanded when a metric first reads them
    metrics: list[BoundMetric] = []
    for spec in POSTGRES_PACK:
        override = settings.metrics.get(spec.name)
        if override is not None and not override.enabled:
            continue
        sql = override.sql if override and override.sql else None
        if sql is not None:
            problem = sql_problem(sql)
            if problem is not None:
                raise error(join(join("metrics", spec.name), "sql"), problem)
        named = override.database if override else None
        if named is not None and postgres.enabled and named not in databases:
            defined = ", ".join(sorted(databases)) or "none"
            raise error(
                join(join("metrics", spec.name), "database"),
                f"no database named {named!r} (defined: {defined})",
            )
        if named is None and pack_databases is None:
            pack_databases = _pack_databases(settings, databases, error)
        targets = [named] if named is not None else pack_databases or []
        metrics += [
            BoundMetric(
                spec=spec,
                database=database,
                sql=sql.strip().rstrip(";") if sql is not None else None,
            )
            for database in targets
        ]
    _refuse_colliding_labels(metrics, databases, error)
    credentials = resolve_credentials(settings, error)
    secrets = frozenset(s for db in databases.values() for s in _dsn_secrets(db.dsn))
    secrets |= frozenset(credentials.values())
    return Config(
        source=source,
        settings=settings,
        databases=databases,
        metrics=tuple(metrics),
        secrets=secrets,
        credentials=credentials,
    )


def _resolve_database(
    name: str, db: DatabaseSettings, error: Callable[[str, str], ConfigError]
) -> Database:
    base = join("databases", name)
    dsn = secret_value(db.dsn, db.dsn_file, join(base, "dsn"), error)
    if dsn is None:
        raise error(join(base, "dsn"), "is required (or dsn_file)")
    field_path = join(base, "dsn_file" if db.dsn_file is not None else "dsn")
    # psycopg only here, so that commands that never connect (generate) do not load it.
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        # psycopg's message may quote the string, password included: keep it out.
        raise error(
            field_path, "is not a valid libpq connection string (URI or key=value)"
        ) from None
    return Database(
        name=name,
        dsn=dsn,
        pool_max_size=db.pool_max_size,
        connect_timeout=float(db.connect_timeout),
        labels=dict(db.labels),
    )


def _pack_databases(
    settings: Settings,
    databases: Mapping[str, Database],
    error: Callable[[str, str], ConfigError],
) -> list[str]:
    """The databases the query pack reads by default: names and glob patterns, expanded."""
    path = "sources.postgres.databases"
    patterns = settings.sources.postgres.databases
    if not settings.sources.postgres.enabled:
        return [p for p in patterns if not any(c in p for c in "*?[")]
    if not databases:
        raise error("databases", "no database configured: give --dsn, BOXOFFICE_DSN or `databases`")
    found: list[str] = []
    defined = ", ".join(sorted(databases))
    for i, pattern in enumerate(patterns):
        if any(c in pattern for c in "*?["):
            matched = sorted(fnmatch.filter(databases, pattern))
            if not matched:
                raise error(join(path, i), f"{pattern!r} matches no database (defined: {defined})")
        elif pattern in databases:
            matched = [pattern]
        else:
            raise error(join(path, i), f"no database named {pattern!r} (defined: {defined})")
        found += [name for name in matched if name not in found]
    return found


def _refuse_colliding_labels(
    metrics: list[BoundMetric],
    databases: Mapping[str, Database],
    error: Callable[[str, str], ConfigError],
) -> None:
    """Two databases feeding one metric with the same constant labels would collide."""
    seen: dict[tuple[str, frozenset[tuple[str, str]]], str] = {}
    for metric in metrics:
        database = databases.get(metric.database)
        if database is None:
            continue  # the PostgreSQL source is off: nothing is read
        labels = frozenset(database.labels.items())
        first = seen.setdefault((metric.spec.name, labels), metric.database)
        if first != metric.database:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(labels)) or "none"
            raise error(
                join(join("databases", metric.database), "labels"),
                f"same constant labels ({shown}) as database {first!r}, and both feed "
                f"{metric.spec.name}: give each database a distinct label value",
            )


def _dsn_secrets(dsn: str) -> list[str]:
    from psycopg.conninfo import conninfo_to_dict

    password = conninfo_to_dict(dsn).get("password")
    return [dsn, str(password)] if password else [dsn]


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[leaf] = value


def _env_overrides(env: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    """Map BOXOFFICE_* variables onto settings paths, values typed by the schema."""
    found: dict[str, tuple[Any, str]] = {}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in _ENV_IGNORED:
            continue
        match = _ENV_ALIASES.get(name)
        leaf: Any = str
        if match is None:
            tokens = name[len(ENV_PREFIX) :].lower().split("_")
            resolved = _match_path(Settings, tokens, "")
            if resolved is None:
                continue  # not ours (e.g. BOXOFFICE_TEST_DSN for the test suite)
            match, leaf = resolved
        found[match] = (_env_value(env[name], leaf, name), name)
    return found


def _match_path(cls: Any, tokens: list[str], path: str) -> tuple[str, Any] | None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        words = f.name.split("_")
        if tokens[: len(words)] != words:
            continue
        found = _match_type(hints[f.name], tokens[len(words) :], join(path, f.name))
        if found is not None:
            return found
    return None


def _match_type(tp: Any, rest: list[str], path: str) -> tuple[str, Any] | None:
    if dataclasses.is_dataclass(tp):
        return _match_path(tp, rest, path) if rest else None
    if get_origin(tp) is dict:
        value_type = get_args(tp)[1]
        if not rest and not dataclasses.is_dataclass(value_type):
            # A mapping of plain values (sms_bridge.groups) is set whole, as YAML or JSON.
            return path, tp
        for split in range(1, len(rest)):
            found = _match_type(value_type, rest[split:], join(path, "_".join(rest[:split])))
            if found is not None:
                return found
        return None
    return (path, tp) if not rest else None


def _env_value(raw: str, leaf: Any, name: str) -> Any:
    """Strings stay as written; other types are read as a YAML scalar (5, true, 30s, [a, b])."""
    if leaf is str or (get_origin(leaf) is not dict and str in get_args(leaf)):
        return raw
    try:
        return parse_yaml(raw)
    except YamlLimitError as exc:
        raise ConfigError(f"environment variable {name}", "", exc.problem) from None
    except yaml.YAMLError:
        return raw
