"""Reverse proxies we trust (``--trusted-proxy``): whose forwarding header counts, and what it says.

Behind a proxy every connection comes from the proxy's address. A proxy
says who it forwards for in a header; anyone can send such headers, so they
count only when the connection comes from a trusted proxy's address, and then only the one
header the operator names (``--proxy-header``), which that proxy must set
itself (replacing whatever the client sent):

- ``x-forwarded-for`` (the default): the client from ``X-Forwarded-For``,
  the scheme from ``X-Forwarded-Proto``. ``X-Forwarded-Host`` is not read:
  the host is the ``Host`` header as the proxy sent it, which every proxy
  sets (HTTP/1.1 needs it), so there is no second header to forget;
- ``forwarded``: RFC 7239 ``Forwarded``, its ``for``, ``proto`` and ``host``.

The other headers are ignored, whatever they say: a proxy that sets one
header passes the client's own copy of the other through. Within the named
header, the client is the right-most address that is not itself a trusted
proxy (everything left of it was written by someone we do not trust).

An entry that is not a plain IP address (``unknown``, an obfuscated
``_name``, a scoped ``fe80::1%eth0``, text with spaces) stops the walk:
the request then counts as the proxy's own. The client we give is always
an address as `ipaddress` writes it, never a header's text: it goes into
the per-address count and the log.

Parsing is total: malformed headers give the proxy's address, never an
exception.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..config import ProxyHeader

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


READS: dict[ProxyHeader, frozenset[bytes]] = {
    ProxyHeader.X_FORWARDED_FOR: frozenset({b"x-forwarded-for", b"x-forwarded-proto"}),
    ProxyHeader.FORWARDED: frozenset({b"forwarded"}),
}
"""The request headers each choice reads (lower case, as h11 gives them)."""

FORWARDING_HEADERS: frozenset[bytes] = frozenset().union(*READS.values())
"""Every request header a trusted proxy's word may be read from."""

_PORT = re.compile(r"[0-9]{1,5}|_[A-Za-z0-9._-]+", re.A)
"""A port after an address: a number, or RFC 7239's obfuscated ``_name``."""


@dataclass(frozen=True, slots=True)
class Forwarded:
    """What trusted proxies say of a request's client."""

    client: str
    """The client's IP address (the proxy's own when the header names none we can believe)."""
    proto: str | None = None
    """``http`` or ``https``: how the client reached the proxy; None if not said."""
    host: str | None = None
    """``host[:port]`` the client asked the proxy for (``Forwarded``'s ``host``); None: the ``Host`` header tells."""


def parse_network(text: str) -> Network | None:
    """An address (``10.0.0.5``, ``::1``) or a network (``10.0.0.0/8``); None if it is neither."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def parse_address(text: str) -> IPAddress | None:
    """A plain IP address as forwarding headers write it: bare, ``a.b.c.d:port``, ``[v6]`` or ``[v6]:port``.

    None for anything else, a scoped IPv6 address (``fe80::1%eth0``) included:
    its zone names an interface of the proxy's machine, and `ipaddress` takes
    any text after the ``%``.
    """
    host, port = text.strip(), None
    if host.startswith("["):
        host, bracket, after = host[1:].partition("]")
        if not bracket or (after and not after.startswith(":")):
            return None
        port = after[1:] if after else None
    elif host.count(":") == 1:  # IPv4 with a port (a bare IPv6 address has more than one colon)
        host, _, port = host.partition(":")
    if (port is not None and not _PORT.fullmatch(port)) or "%" in host:
        return None
    try:
        return _unmapped(ipaddress.ip_address(host))
    except ValueError:
        return None


def _unmapped(address: IPAddress) -> IPAddress:
    """``::ffff:10.0.0.5`` (an IPv4 client on an IPv6 socket) as ``10.0.0.5``."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _tcp_address(address: str) -> IPAddress | None:
    """A connection's address as the kernel gives it; a link-local one's zone is left out."""
    return parse_address(address.partition("%")[0])


class TrustedProxies:
    """The addresses whose forwarding header we believe, and which header that is."""

    __slots__ = ("header", "networks")

    def __init__(self, networks: Iterable[str] = (), header: ProxyHeader = ProxyHeader.X_FORWARDED_FOR) -> None:
        parsed = []
        for text in networks:
            network = parse_network(text)
            if network is None:
                raise ValueError(f"not an address or a network: {text!r}")
            parsed.append(network)
        self.networks: tuple[Network, ...] = tuple(parsed)
        self.header = header

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, remote: str) -> bool:
        """Whether ``remote`` (a connection's TCP address) is a trusted proxy."""
        address = _tcp_address(remote)
        return address is not None and self._trusted(address)

    def _trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def resolve(self, remote: str, headers: Iterable[tuple[bytes, bytes]]) -> Forwarded | None:
        """Who a request from ``remote`` is for: None unless ``remote`` is trusted; else what its header says.

        ``headers``: the request's header fields, names in lower case (those the
        chosen header does not read are skipped). With no client named, the
        client is ``remote`` itself.
        """
        proxy = _tcp_address(remote)
        if proxy is None or not self._trusted(proxy):
            return None
        reads = READS[self.header]
        fields: dict[bytes, list[str]] = {}
        for name, value in headers:
            if name in reads:
                fields.setdefault(name, []).append(value.decode("latin-1"))
        if self.header is ProxyHeader.FORWARDED:
            return self._forwarded(str(proxy), _forwarded_elements(fields.get(b"forwarded")))
        return self._x_forwarded(str(proxy), _list(fields.get(b"x-forwarded-for")),
                                 _list(fields.get(b"x-forwarded-proto")))

    def _x_forwarded(self, proxy: str, chain: list[str], protos: list[str]) -> Forwarded:
        chosen = self._walk(chain)
        if chosen is None:  # no client named, or one we cannot read: the proxy's own, reached how it says
            return Forwarded(proxy, _proto(protos[-1] if protos else None))
        index, client = chosen
        return Forwarded(client, _proto(_aligned(protos, len(chain), index)))

    def _forwarded(self, proxy: str, elements: list[dict[str, str]]) -> Forwarded:
        if not elements:
            return Forwarded(proxy)
        chosen = self._walk([element.get("for", "") for element in elements])
        index, client = chosen if chosen is not None else (len(elements) - 1, proxy)
        element = elements[index]
        return Forwarded(client, _proto(element.get("proto")), element.get("host") or None)

    def _walk(self, chain: list[str]) -> tuple[int, str] | None:
        """The right-most entry that is not a trusted proxy (the left-most if all are), its index and address;
        None for an empty chain, or if an entry that is not an address comes first."""
        for index in range(len(chain) - 1, -1, -1):
            address = parse_address(chain[index])
            if address is None:
                return None
            if not self._trusted(address) or index == 0:
                return index, str(address)
        return None


def _list(values: list[str] | None) -> list[str]:
    """The comma-separated entries of a header's values, in order, all its fields together."""
    if not values:
        return []
    return [entry.strip() for value in values for entry in value.split(",") if entry.strip()]


def _aligned(values: list[str], length: int, index: int) -> str | None:
    """The entry matching the chosen client's when the lists line up, else the right-most (the last proxy's)."""
    if not values:
        return None
    return values[index] if len(values) == length else values[-1]


def _proto(value: str | None) -> str | None:
    value = (value or "").strip().lower()
    return value if value in ("http", "https") else None


def _forwarded_elements(values: list[str] | None) -> list[dict[str, str]]:
    """RFC 7239 ``Forwarded``: its elements, in order, each a dict of lower-case parameter names to values.

    Quoted strings are unquoted; a malformed pair is left out of its element.
    """
    if not values:
        return []
    elements: list[dict[str, str]] = []
    for value in values:
        for element in _split_outside_quotes(value, ","):
            pairs: dict[str, str] = {}
            for pair in _split_outside_quotes(element, ";"):
                name, equals, raw = pair.partition("=")
                name = name.strip().lower()
                if not equals or not name:
                    continue
                raw = raw.strip()
                if len(raw) >= 2 and raw[0] == raw[-1] == '"':
                    raw = raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
                pairs.setdefault(name, raw)
            if element.strip():
                elements.append(pairs)
    return elements


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts
