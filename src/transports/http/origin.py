"""Which web pages may open a WebSocket to us (cross-site WebSocket hijacking protection).

Browsers send ``Origin`` with every WebSocket handshake. We accept our own
page, origins listed with ``--allow-origin``, and clients that send no
``Origin`` (bots and scripts: no browser, so no ambient credentials to abuse).

"Our own page" is a page on our HTTP port (``http``, or ``https`` with
``--tls-cert``) whose host is the one the
WebSocket request names in ``Host``, when that is an IP address: a name
could be an attacker's, pointed at us (DNS rebinding), so pages served
under a name are accepted only when listed. The names of this machine,
``localhost``, ``127.0.0.1`` and ``[::1]``, count as one host when both the
page and the socket use one of them: a page at ``http://127.0.0.1:8000/``
may open ``ws://localhost:8001/``, as the seed's page does.

Behind a trusted proxy (``--trusted-proxy``) that says how the client
reached it (``X-Forwarded-Proto``, or ``Forwarded``'s ``proto`` and ``host``,
per ``--proxy-header``), "our own page" is the proxy's:
``proto://host[:port]`` exactly, the host being ``Forwarded``'s or else the
``Host`` header as the proxy sent it, under the same rule for names (an IP
address, or a name of this machine on both sides); a page served under a
name needs ``--allow-origin`` there too.

Parsing is strict and total: a malformed ``Origin`` or ``Host`` gives None,
never an exception.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .proxies import Forwarded

DEFAULT_PORTS = {"http": 80, "https": 443}

_REG_NAME = r"[a-z0-9._-]+"  # a DNS name or an IPv4 address; other RFC 3986 characters name no web host
_ORIGIN = re.compile(rf"(?P<scheme>https?)://(?P<host>\[[0-9a-f:.]+\]|{_REG_NAME})(?::(?P<port>[0-9]{{1,5}}))?", re.A)
_HOST = re.compile(rf"(?P<host>\[[0-9a-f:.]+\]|{_REG_NAME})(?::(?P<port>[0-9]{{0,5}}))?", re.A)


@dataclass(frozen=True, slots=True)
class Origin:
    """A web origin (RFC 6454) of an http or https page."""

    scheme: str
    host: str
    """Lower case; an IPv6 address without its brackets."""
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        suffix = "" if self.port == DEFAULT_PORTS[self.scheme] else f":{self.port}"
        return f"{self.scheme}://{host}{suffix}"


def parse_origin(text: str) -> Origin | None:
    """``scheme://host[:port]`` as browsers serialize it; None for anything else (``null``, paths, bad ports)."""
    match = _ORIGIN.fullmatch(text.strip().lower())
    if match is None:
        return None
    host = _host_name(match["host"])
    scheme = match["scheme"]
    port = int(match["port"]) if match["port"] is not None else DEFAULT_PORTS[scheme]
    if host is None or not 0 < port <= 65535:
        return None
    return Origin(scheme, host, port)


def parse_host(text: str) -> str | None:
    """The host name of a ``Host`` header (``name[:port]``, ``[v6][:port]``), lower case; None if malformed."""
    match = _HOST.fullmatch(text.strip().lower())
    if match is None or (match["port"] and int(match["port"]) > 65535):
        return None
    return _host_name(match["host"])


def normalize_origin(text: str) -> str:
    """An origin as we compare it: lower case, default port dropped (unparseable text: lower-cased only)."""
    origin = parse_origin(text)
    return str(origin) if origin is not None else text.strip().lower()


THIS_MACHINE = frozenset({"localhost", "127.0.0.1", "::1"})
"""The names of this machine a page and its socket may use interchangeably."""


def is_address(host: str) -> bool:
    """An IP address rather than a name (which DNS could point anywhere)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _host_name(host: str) -> str | None:
    if host.startswith("["):
        try:
            return str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            return None
    return host


class OriginPolicy:
    """Decides whether a handshake's ``Origin`` may open a socket, given the host its ``Host`` names."""

    def __init__(self, allowed: frozenset[str] = frozenset(), page_scheme: str = "http") -> None:
        self.allowed = frozenset(normalize_origin(origin) for origin in allowed)
        self.page_ports: set[int] = set()
        """Ports our own page is served on (the HTTP server adds its port once it listens)."""
        self.page_scheme = page_scheme
        """How our own page is served: ``http``, or ``https`` with TLS."""

    def allows(self, origin: str | None, host: str, forwarded: Forwarded | None = None, authority: str = "") -> bool:
        """``origin``: the header as sent (None: absent); ``host``: the host name from ``Host`` (`parse_host`).

        ``forwarded``: what a trusted proxy said of the request; when it says how
        the client reached it, our page is the proxy's, at ``forwarded.host`` (or
        ``authority``, the ``Host`` header as sent).
        """
        if origin is None:
            return True
        parsed = parse_origin(origin)
        if parsed is None:
            return False
        if str(parsed) in self.allowed:
            return True
        if forwarded is not None and (forwarded.proto is not None or forwarded.host is not None):
            public = parse_origin(f"{forwarded.proto or self.page_scheme}://{forwarded.host or authority}")
            return public is not None and (parsed.scheme, parsed.port) == (public.scheme, public.port) \
                and _same_host(parsed.host, public.host)
        if parsed.scheme != self.page_scheme or parsed.port not in self.page_ports:
            return False
        return _same_host(parsed.host, host)


def _same_host(page: str, socket_host: str) -> bool:
    """Whether a page on ``page`` may open a socket naming ``socket_host``: the same address, or both this machine."""
    if page in THIS_MACHINE and socket_host in THIS_MACHINE:
        return True
    return page == socket_host and is_address(socket_host)
