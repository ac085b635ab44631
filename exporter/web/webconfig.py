"""The exporter-toolkit web configuration (``--web.config.file``): TLS, basic auth, headers.

The same file format node_exporter and the other official exporters read, so a standard
Prometheus scrape config with ``basic_auth`` and ``tls_config`` works against boxoffice.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path

from exporter.config.errors import ConfigError
from exporter.config.typed import field
from exporter.config.yamlfile import load_typed, read_yaml
from exporter.web.auth import MAX_BCRYPT_COST, MIN_BCRYPT_COST
from exporter.web.tls import TLS_VERSIONS, TLSConfig, build_ssl_context

log = logging.getLogger("exporter.web")

__all__ = ["HTTPConfig", "TLSConfig", "WebConfig", "build_ssl_context", "load_web_config"]

# exporter-toolkit's extraHTTPHeaders: the only response headers it lets users set, and the
# values it allows (None: any). Names and values match exactly, as in Go.
_ALLOWED_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
# bcrypt hashes the bcrypt package can check: what `htpasswd -nB` ($2y$) and most
# libraries ($2a$, $2b$) write. Checked by shape so a cost-31 hash cannot stall loading.
_BCRYPT = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
# exporter-toolkit keys boxoffice does not implement, with what to do instead; refused by
# name so the user is not left guessing why a documented key is "unknown".
_UNSUPPORTED = {
    "tls_server_config.cert": "inline certificates are not supported; use cert_file",
    "tls_server_config.key": "inline keys are not supported; use key_file",
    "tls_server_config.client_ca": "inline CAs are not supported; use client_ca_file",
    "rate_limit": "not supported; rate-limit in a reverse proxy if you need it",
}


@dataclass(frozen=True)
class HTTPConfig:
    """``http_server_config``: extra response headers.

    ``http2`` is accepted for compatibility; the server speaks HTTP/1.1, which every
    Prometheus scraper uses anyway.
    """

    http2: bool = True
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WebConfig:
    """A checked web config; file paths are absolute, hashes are well-formed."""

    tls_server_config: TLSConfig | None = None
    http_server_config: HTTPConfig = field(default_factory=HTTPConfig)
    basic_auth_users: dict[str, str] = field(default_factory=dict, secret=True)


def load_web_config(path: str) -> WebConfig:
    """Read and check a web config file, certificates included; problems are ConfigErrors."""
    warn_if_empty(path)
    config = load_typed(WebConfig, path, unsupported=_UNSUPPORTED)
    for header, value in config.http_server_config.headers.items():
        _check_header(path, header, value)
    for user, hashed in config.basic_auth_users.items():
        _check_user(path, user, hashed)
    if config.tls_server_config is None:
        return config
    # Relative to the file's own directory, as exporter-toolkit resolves them (no symlink
    # resolution, so a mounted config next to its certificates keeps working).
    tls = _check_tls(path, config.tls_server_config, Path(path).absolute().parent)
    build_ssl_context(tls, source=path)  # fail now, not on the first scrape
    return replace(config, tls_server_config=tls)


def warn_if_empty(path: str) -> None:
    """Log a warning when the file holds no YAML at all (empty, blank or only comments).

    exporter-toolkit serves such a file as "no auth, no TLS", and so do we, for
    compatibility; but a truncated file or an unmounted secret looks exactly like this,
    so it is said out loud. A file that cannot be read or parsed is a ConfigError.
    """
    if read_yaml(path) is None:
        log.warning(
            "web config file %s is empty: serving without basic auth or TLS; if it should "
            "configure them, it is truncated or not mounted",
            path,
        )


def _resolve(base: Path, value: str | None) -> str | None:
    if not value:
        return None
    return str(base / value)  # an absolute value replaces the base


def _check_tls(source: str, tls: TLSConfig, base: Path) -> TLSConfig:
    def error(key: str, reason: str) -> ConfigError:
        return ConfigError(source, f"tls_server_config.{key}", reason)

    cert, key, ca = (_resolve(base, f) for f in (tls.cert_file, tls.key_file, tls.client_ca_file))
    if cert is None:
        raise error("cert_file", "is required")
    if key is None:
        raise error("key_file", "is required")
    for name, file in (("cert_file", cert), ("key_file", key), ("client_ca_file", ca)):
        if file is not None and not Path(file).is_file():
            raise error(name, f"no such file: {file}")
    auth = tls.client_auth_type
    if auth in ("RequestClientCert", "RequireAnyClientCert"):
        raise error(
            "client_auth_type",
            f"{auth} (a client certificate that is not verified) is not supported; "
            "use VerifyClientCertIfGiven or RequireAndVerifyClientCert",
        )
    verifies = auth in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
    if verifies and ca is None:
        raise error("client_ca_file", f"is required with client_auth_type {auth}")
    if ca is not None and not verifies:
        raise error(
            "client_auth_type", "must verify client certificates when client_ca_file is set"
        )
    if tls.client_allowed_sans and auth != "RequireAndVerifyClientCert":
        raise error("client_allowed_sans", "needs client_auth_type RequireAndVerifyClientCert")
    for name in ("min_version", "max_version"):
        version = getattr(tls, name)
        if version not in TLS_VERSIONS:
            raise error(
                name,
                f"{version} is not supported (RFC 8996 deprecates TLS 1.0 and 1.1); "
                "use TLS12 or TLS13",
            )
    if TLS_VERSIONS[tls.min_version] > TLS_VERSIONS[tls.max_version]:
        raise error("min_version", "is newer than max_version")
    return replace(tls, cert_file=cert, key_file=key, client_ca_file=ca)


def _check_header(source: str, header: str, value: str) -> None:
    path = f"http_server_config.headers.{header}"
    if header not in _ALLOWED_HEADERS:
        names = ", ".join(_ALLOWED_HEADERS)
        raise ConfigError(source, path, f"cannot be set (allowed: {names})")
    values = _ALLOWED_HEADERS[header]
    if values is not None and value not in values:
        raise ConfigError(source, path, f"must be one of {', '.join(values)}, got {value!r}")
    if "\r" in value or "\n" in value:
        raise ConfigError(source, path, "must be one line")


def _check_user(source: str, user: str, hashed: str) -> None:
    if ":" in user:
        raise ConfigError(source, "basic_auth_users", f"user name {user!r} must not contain ':'")
    match = _BCRYPT.fullmatch(hashed)
    if match is None or int(match.group(1)) < MIN_BCRYPT_COST:
        # The value is a secret (or a password pasted by mistake): name it, never show it.
        raise ConfigError(
            source, f"basic_auth_users.{user}", "is not a bcrypt hash (htpasswd -nB gives one)"
        )
    if int(match.group(1)) > MAX_BCRYPT_COST:
        raise ConfigError(
            source,
            f"basic_auth_users.{user}",
            f"bcrypt cost {int(match.group(1))} is above the maximum {MAX_BCRYPT_COST}; "
            "hash it again with htpasswd -nBC 10",
        )
