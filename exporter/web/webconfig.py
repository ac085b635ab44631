"""The exporter-toolkit web configuration (`--web.config.file`): basic auth and TLS.

The same file format node_exporter and the other official exporters read, so a standard
Prometheus scrape config with ``basic_auth`` and ``tls_config`` works against boxoffice.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import bcrypt

from exporter.config.errors import ConfigError
from exporter.config.loader import read_yaml
from exporter.config.typed import build, field

ClientAuth = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
TLSVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]

_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# The response headers exporter-toolkit lets users set, with the values it allows
# (None: any value).
_ALLOWED_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}


@dataclass(frozen=True)
class TLSServerConfig:
    """``tls_server_config``: the server certificate and client-certificate policy."""

    cert_file: str | None = None
    key_file: str | None = None
    client_auth_type: ClientAuth = "NoClientCert"
    client_ca_file: str | None = None
    min_version: TLSVersionName = "TLS12"
    max_version: TLSVersionName = "TLS13"
    cipher_suites: list[str] = field(default_factory=list)
    prefer_server_cipher_suites: bool = True
    curve_preferences: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class HTTPServerConfig:
    """``http_server_config``: extra response headers (HTTP/2 is accepted and not used)."""

    http2: bool = True
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WebConfig:
    """A checked web config; file paths are absolute."""

    tls_server_config: TLSServerConfig | None = None
    http_server_config: HTTPServerConfig = field(default_factory=HTTPServerConfig)
    basic_auth_users: dict[str, str] = field(default_factory=dict, secret=True)


def load_web_config(path: str) -> WebConfig:
    """Read and check a web config file; a certificate that does not load is a ConfigError."""
    data = read_yaml(path)
    raw = build(WebConfig, data if data is not None else {}, source=path)
    base = Path(path).resolve().parent
    tls = raw.tls_server_config
    if tls is not None:
        tls = _check_tls(path, tls, base)
    for header, value in raw.http_server_config.headers.items():
        _check_header(path, header, value)
    for user, hashed in raw.basic_auth_users.items():
        _check_hash(path, user, hashed)
    config = WebConfig(tls, raw.http_server_config, raw.basic_auth_users)
    if tls is not None:
        build_ssl_context(tls, source=path)  # fail now, not on the first scrape
    return config


def _resolve(base: Path, value: str | None) -> str | None:
    if value is None or not value:
        return None
    candidate = Path(value)
    return str(candidate if candidate.is_absolute() else base / candidate)


def _check_tls(source: str, tls: TLSServerConfig, base: Path) -> TLSServerConfig:
    where = "tls_server_config"
    cert, key, ca = (_resolve(base, f) for f in (tls.cert_file, tls.key_file, tls.client_ca_file))
    if cert is None:
        raise ConfigError(source, f"{where}.cert_file", "is required")
    if key is None:
        raise ConfigError(source, f"{where}.key_file", "is required")
    for name, file in (("cert_file", cert), ("key_file", key), ("client_ca_file", ca)):
        if file is not None and not Path(file).is_file():
            raise ConfigError(source, f"{where}.{name}", f"no such file: {file}")
    if tls.client_auth_type in ("RequestClientCert", "RequireAnyClientCert"):
        raise ConfigError(
            source,
            f"{where}.client_auth_type",
            f"{tls.client_auth_type} (a client certificate that is not verified) is not "
            "supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert",
        )
    verifies = tls.client_auth_type in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
    if verifies and ca is None:
        raise ConfigError(
            source, f"{where}.client_ca_file", f"is required with {tls.client_auth_type}"
        )
    if ca is not None and not verifies:
        raise ConfigError(
            source,
            f"{where}.client_auth_type",
            "client_ca_file is set but the client auth type verifies no client certificate",
        )
    if _TLS_VERSIONS[tls.min_version] > _TLS_VERSIONS[tls.max_version]:
        raise ConfigError(source, f"{where}.min_version", "is newer than max_version")
    if tls.cipher_suites:
        raise ConfigError(
            source,
            f"{where}.cipher_suites",
            "Go cipher suite names cannot be applied to OpenSSL faithfully; remove the list "
            "(TLS 1.2+ defaults are strong)",
        )
    if tls.curve_preferences:
        raise ConfigError(
            source, f"{where}.curve_preferences", "not supported; remove it to use the defaults"
        )
    return TLSServerConfig(
        cert_file=cert,
        key_file=key,
        client_auth_type=tls.client_auth_type,
        client_ca_file=ca,
        min_version=tls.min_version,
        max_version=tls.max_version,
        prefer_server_cipher_suites=tls.prefer_server_cipher_suites,
    )


def _check_header(source: str, header: str, value: str) -> None:
    path = f"http_server_config.headers.{header}"
    allowed = {name.lower(): (name, values) for name, values in _ALLOWED_HEADERS.items()}
    if header.lower() not in allowed:
        names = ", ".join(_ALLOWED_HEADERS)
        raise ConfigError(source, path, f"cannot be set (allowed: {names})")
    _name, values = allowed[header.lower()]
    if values is not None and value.lower() not in values:
        raise ConfigError(source, path, f"must be one of {', '.join(values)}, got {value!r}")


def _check_hash(source: str, user: str, hashed: str) -> None:
    path = f"basic_auth_users.{user}"
    if ":" in user:
        raise ConfigError(source, "basic_auth_users", f"user name {user!r} must not contain ':'")
    try:
        bcrypt.checkpw(b"", hashed.encode())
    except ValueError:
        raise ConfigError(source, path, "is not a bcrypt hash (htpasswd -nB gives one)") from None


def build_ssl_context(tls: TLSServerConfig, *, source: str = "web config") -> ssl.SSLContext:
    """An OpenSSL server context honouring the TLS settings."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _TLS_VERSIONS[tls.min_version]
    context.maximum_version = _TLS_VERSIONS[tls.max_version]
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        raise ConfigError(
            source, "tls_server_config.cert_file", f"cannot load certificate and key: {reason}"
        ) from None
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (ssl.SSLError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
            raise ConfigError(
                source, "tls_server_config.client_ca_file", f"cannot load CA: {reason}"
            ) from None
        context.verify_mode = (
            ssl.CERT_REQUIRED
            if tls.client_auth_type == "RequireAndVerifyClientCert"
            else ssl.CERT_OPTIONAL
        )
    return context
