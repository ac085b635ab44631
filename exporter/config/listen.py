"""Listen addresses (``[host]:port``): one parser for the configuration and the server.

The configuration check and the HTTP server once parsed addresses differently, so an address
the check let through (``::1:9798``) ended as a traceback at bind time. Both call
:func:`parse_listen_address` now: what loads is what binds.
"""

from __future__ import annotations

_EXAMPLE = "like :9798 or 127.0.0.1:9798"


def parse_listen_address(address: str) -> tuple[str, int]:
    """Split ``[host]:port`` (Prometheus style) into host and port; "" means every interface.

    ValueError, whose text is the reason alone, when the address cannot be bound as written.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"must be [host]:port {_EXAMPLE}, got {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            raise ValueError(f"brackets are for IPv6 hosts like [::1]:9798, got {address!r}")
    elif ":" in host or "[" in host or "]" in host:
        raise ValueError(f"IPv6 hosts are written in brackets like [::1]:9798, got {address!r}")
    if any(c.isspace() for c in host):
        raise ValueError(f"must not contain spaces, got {address!r}")
    return host, int(port)


def listen_address_problem(address: str) -> str | None:
    """The schema check of a listen address setting: the parser's reason, or None."""
    try:
        parse_listen_address(address)
    except ValueError as exc:
        return str(exc)
    return None
