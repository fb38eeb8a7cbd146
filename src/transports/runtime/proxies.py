"""Reverse proxies we trust (``--trusted-proxy``): whose forwarding headers count, and what they say.

Behind a proxy every connection comes from the proxy's address. A proxy
says who it forwards for in ``X-Forwarded-For`` (with ``X-Forwarded-Proto``
and ``X-Forwarded-Host``) or in ``Forwarded`` (RFC 7239). Anyone can send
those headers, so they count only when the TCP peer is a trusted proxy, and
then only as far as trusted proxies wrote them: the client is the
right-most address that is not itself a trusted proxy (everything left of
it was written by someone we do not trust). A request from any other peer
is taken at its TCP address, whatever its headers say.

Which header: ``X-Forwarded-For`` when a request has it (nginx, Caddy,
HAProxy and most others set it), else ``Forwarded``. When a request has
both and they name different clients, neither is believed and the request
counts as the proxy's own (a client cannot gain anything by it: the
proxy's address has a per-address limit like any client's).

What comes out: the client's address (for the per-address limit and the
log), and the scheme and host the client used (for the origin check: the
page the proxy serves is ``proto://host``). An entry that is not an address
(``unknown``, an obfuscated ``_name``) stops the walk: the request then
counts as the proxy's own.

Parsing is total: malformed headers give the proxy's address, never an
exception.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

FORWARDING_HEADERS = frozenset({b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"})
"""The request headers a trusted proxy's word is read from (lower case, as h11 gives them)."""


@dataclass(frozen=True, slots=True)
class Forwarded:
    """What trusted proxies say of a request's client."""

    client: str
    """The client's IP address (the proxy's own when the headers name none we can believe)."""
    proto: str | None = None
    """``http`` or ``https``: how the client reached the proxy; None if not said."""
    host: str | None = None
    """``host[:port]`` the client asked the proxy for; None if not said (the ``Host`` header then tells)."""


def parse_network(text: str) -> Network | None:
    """An address (``10.0.0.5``, ``::1``) or a network (``10.0.0.0/8``); None if it is neither."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def parse_address(text: str) -> IPAddress | None:
    """An IP address as forwarding headers write it: bare, ``a.b.c.d:port``, ``[v6]`` or ``[v6]:port``."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (text[end + 1 :] and not text[end + 1 :].startswith(":")):
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port (a bare IPv6 address has more than one colon)
        text = text.partition(":")[0]
    try:
        return _unmapped(ipaddress.ip_address(text))
    except ValueError:
        return None


def _unmapped(address: IPAddress) -> IPAddress:
    """``::ffff:10.0.0.5`` (an IPv4 client on an IPv6 socket) as ``10.0.0.5``."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class TrustedProxies:
    """The peers whose forwarding headers we believe."""

    __slots__ = ("networks",)

    def __init__(self, networks: Iterable[str] = ()) -> None:
        parsed = []
        for text in networks:
            network = parse_network(text)
            if network is None:
                raise ValueError(f"not an address or a network: {text!r}")
            parsed.append(network)
        self.networks: tuple[Network, ...] = tuple(parsed)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str) -> bool:
        """Whether ``address`` (a TCP peer, or an address in a forwarding header) is a trusted proxy."""
        if not self.networks:
            return False
        parsed = parse_address(address)
        return parsed is not None and self._trusted(parsed)

    def _trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def resolve(self, peer: str, headers: Iterable[tuple[bytes, bytes]]) -> Forwarded | None:
        """Who a request from ``peer`` is for: None unless ``peer`` is trusted; else what its headers say.

        ``headers``: the request's header fields, names in lower case (others than
        `FORWARDING_HEADERS` are skipped). With no forwarding header at all, the
        client is ``peer`` and nothing else is said.
        """
        if not self.trusts(peer):
            return None
        fields: dict[bytes, list[str]] = {}
        for name, value in headers:
            if name in FORWARDING_HEADERS:
                fields.setdefault(name, []).append(value.decode("latin-1"))
        x_for = _list(fields.get(b"x-forwarded-for"))
        elements = _forwarded_elements(fields.get(b"forwarded"))
        x_chosen = self._walk(x_for)
        f_chosen = self._walk([element.get("for", "") for element in elements])
        protos, hosts = _list(fields.get(b"x-forwarded-proto")), _list(fields.get(b"x-forwarded-host"))
        if x_for:
            if x_chosen is None or (elements and (f_chosen is None or f_chosen[1] != x_chosen[1])):
                return Forwarded(_canonical(peer))  # an entry we cannot read, or two stories: believe neither
            index, client = x_chosen
            proto, host = _proto(_aligned(protos, len(x_for), index)), _aligned(hosts, len(x_for), index)
            if elements and f_chosen is not None:  # (the same client in both: either may say the rest)
                element = elements[f_chosen[0]]
                proto, host = proto or _proto(element.get("proto")), host or element.get("host") or None
            return Forwarded(client, proto, host)
        if elements:
            if f_chosen is None:
                return Forwarded(_canonical(peer))
            element = elements[f_chosen[0]]
            return Forwarded(f_chosen[1], _proto(element.get("proto")), element.get("host") or None)
        # No client named: the request is the proxy's own, but it may still say how it was reached.
        return Forwarded(_canonical(peer), _proto(protos[-1] if protos else None), hosts[-1] if hosts else None)

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


def _canonical(address: str) -> str:
    parsed = parse_address(address)
    return address if parsed is None else str(parsed)


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
