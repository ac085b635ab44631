"""exporter-toolkit's ``tls_server_config``, applied to OpenSSL through Python's ssl module.

exporter-toolkit hands these settings to Go's crypto/tls and spells them the Go way. Each
one is translated here; a setting OpenSSL cannot honour the same way is refused with the
reason, never dropped, so a config that asks for a restriction gets it or fails loudly.
"""

from __future__ import annotations

import contextlib
import ipaddress
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from exporter.config.errors import ConfigError

ClientAuth = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
TLSVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]

# TLS 1.0 and 1.1 are left out on purpose: OpenSSL 3 refuses them at its default security
# level, so accepting them here would promise handshakes that never succeed.
TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}

# Go's crypto/tls suite names (what exporter-toolkit accepts) and their OpenSSL spelling.
# Like Go, these only govern TLS 1.2; TLS 1.3 suites are not configurable in either.
_CIPHERS = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
}
_TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
_CURVES = {
    "CurveP256": "prime256v1",
    "CurveP384": "secp384r1",
    "CurveP521": "secp521r1",
    "X25519": "X25519",
}
_WHERE = "tls_server_config"


@dataclass(frozen=True, kw_only=True)
class TLSConfig:
    """``tls_server_config``: server certificate and client-certificate policy (paths absolute)."""

    cert_file: str | None = None
    key_file: str | None = None
    client_auth_type: ClientAuth = "NoClientCert"
    client_ca_file: str | None = None
    client_allowed_sans: tuple[str, ...] = ()
    min_version: TLSVersionName = "TLS12"
    max_version: TLSVersionName = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()


def build_ssl_context(tls: TLSConfig, *, source: str = "web config") -> ssl.SSLContext:
    """A server context honouring every setting, or a ConfigError naming the one it cannot."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if tls.cipher_suites:
        _set_ciphers(context, tls.cipher_suites, source)
    if tls.curve_preferences:
        _set_curve(context, tls.curve_preferences, source)
    _load_key_pair(context, str(tls.cert_file), str(tls.key_file), source)
    if tls.client_ca_file is not None:
        _load_client_ca(context, tls.client_ca_file, source)
        context.verify_mode = (
            ssl.CERT_REQUIRED
            if tls.client_auth_type == "RequireAndVerifyClientCert"
            else ssl.CERT_OPTIONAL
        )
    return context


def client_san_allowed(peer_cert: dict[str, Any] | None, allowed: Iterable[str]) -> bool:
    """True when the verified client certificate has a SAN listed in ``client_allowed_sans``.

    Matches like exporter-toolkit: exact DNS, e-mail, IP or URI values; IP addresses compare
    by value, so ``::1`` matches however OpenSSL spells it.
    """
    wanted = {_normal_ip(a) or a for a in allowed}
    if not peer_cert:
        return False
    for kind, value in peer_cert.get("subjectAltName", ()):
        if kind in ("DNS", "email", "URI") and value in wanted:
            return True
        if kind == "IP Address" and _normal_ip(value.strip()) in wanted:
            return True
    return False


def _normal_ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _set_ciphers(context: ssl.SSLContext, names: tuple[str, ...], source: str) -> None:
    path = f"{_WHERE}.cipher_suites"
    for i, name in enumerate(names):
        if name in _TLS13_SUITES:
            raise ConfigError(
                source,
                f"{path}[{i}]",
                f"{name} is a TLS 1.3 suite; TLS 1.3 suites are always enabled and cannot be "
                "configured, list only TLS 1.2 suites",
            )
        if name not in _CIPHERS:
            raise ConfigError(
                source,
                f"{path}[{i}]",
                f"unknown cipher suite {name!r} (Go crypto/tls names, "
                "e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)",
            )
    with contextlib.suppress(ssl.SSLError):  # none available: reported below, by name
        context.set_ciphers(":".join(_CIPHERS[name] for name in names))
    # OpenSSL drops suites it does not offer without a word; say which instead.
    available = {c["name"] for c in context.get_ciphers()}
    for i, name in enumerate(names):
        if _CIPHERS[name] not in available:
            raise ConfigError(
                source, f"{path}[{i}]", f"{name} is not available in {ssl.OPENSSL_VERSION}"
            )


def _set_curve(context: ssl.SSLContext, names: tuple[str, ...], source: str) -> None:
    path = f"{_WHERE}.curve_preferences"
    for i, name in enumerate(names):
        if name not in _CURVES:
            known = ", ".join(_CURVES)
            raise ConfigError(
                source, f"{path}[{i}]", f"unknown or unsupported curve {name!r} (known: {known})"
            )
    if len(names) > 1:
        raise ConfigError(
            source,
            path,
            "Python's ssl module can restrict key exchange to one curve but cannot order "
            "several; list exactly one, or remove the list for OpenSSL's defaults",
        )
    context.set_ecdh_curve(_CURVES[names[0]])


def _load_key_pair(context: ssl.SSLContext, cert: str, key: str, source: str) -> None:
    # Parsing the certificate alone first tells a bad certificate from a bad key, which
    # load_cert_chain reports with the same "PEM lib" error.
    _check_pem_certificates(cert, f"{_WHERE}.cert_file", source)
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except _EncryptedKey:
        raise ConfigError(
            source, f"{_WHERE}.key_file", "is encrypted; give an unencrypted PEM key"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            reason = "does not match the certificate in cert_file"
        elif exc.reason is None:  # "PEM lib": not a PEM private key
            reason = f"no PEM private key in {key}"
        else:
            reason = f"cannot load the key pair: {exc.reason}"
        raise ConfigError(source, f"{_WHERE}.key_file", reason) from None
    except OSError as exc:
        raise ConfigError(source, f"{_WHERE}.key_file", f"cannot read: {exc.strerror}") from None


def _load_client_ca(context: ssl.SSLContext, ca: str, source: str) -> None:
    _check_pem_certificates(ca, f"{_WHERE}.client_ca_file", source)
    context.load_verify_locations(cafile=ca)


def _check_pem_certificates(file: str, path: str, source: str) -> None:
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cafile=file)
    except ssl.SSLError:
        raise ConfigError(source, path, f"no PEM certificate in {file}") from None
    except OSError as exc:
        raise ConfigError(source, path, f"cannot read: {exc.strerror}") from None


class _EncryptedKey(Exception):
    pass


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal and hang a service at start.
    raise _EncryptedKey
