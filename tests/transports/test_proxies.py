"""Trusted proxies without sockets: whose forwarding headers count (the one header named, from trusted peers),
which client they name, and the origin check behind them; hypothesis: any headers from any peer give an answer,
never an exception, and the client is always a plain address."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transports.config import Limits, ProxyHeader
from transports.http.admission import ConnectionSlots
from transports.http.answers import Refusal
from transports.http.origin import OriginPolicy
from transports.http.proxies import Forwarded, TrustedProxies, parse_address, parse_network
from transports.websocket.handshake import HandshakeParser

PROXIES = TrustedProxies(["127.0.0.1", "10.0.0.0/8", "fd00::/8"])
RFC_7239 = TrustedProxies(["127.0.0.1", "10.0.0.0/8", "fd00::/8"], ProxyHeader.FORWARDED)


def resolve(peer: str, *headers: tuple[str, str], proxies: TrustedProxies = PROXIES) -> Forwarded | None:
    return proxies.resolve(peer, [(name.lower().encode(), value.encode()) for name, value in headers])


@pytest.mark.parametrize(("text", "address"), [
    ("203.0.113.7", "203.0.113.7"),
    (" 203.0.113.7:4711 ", "203.0.113.7"),
    ("2001:db8::1", "2001:db8::1"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("[2001:db8::1]:4711", "2001:db8::1"),
    ("::ffff:10.1.2.3", "10.1.2.3"),
    ("unknown", None),
    ("_hidden", None),
    ("[2001:db8::1", None),
    ("[2001:db8::1]x", None),
    ("", None),
    ("203.0.113.7:_port", "203.0.113.7"),  # RFC 7239's obfuscated port
    ("203.0.113.7:", None),
    ("203.0.113.7:80x", None),
    ("[2001:db8::1]:", None),
    ("203.0.113.7 via 6.6.6.6", None),
    ("6.6.6.6, 7.7.7.7", None),
    # A zone names an interface of the proxy's machine, and ipaddress takes any text after "%": refused.
    ("fe80::1%eth0", None),
    ("[fe80::1%eth0]:4711", None),
    ("fe80::1%a b via 6.6.6.6", None),
    ("fe80::1%", None),
])
def test_addresses_as_forwarding_headers_write_them(text: str, address: str | None) -> None:
    parsed = parse_address(text)
    assert (None if parsed is None else str(parsed)) == address


def test_networks_and_addresses_are_what_may_be_trusted() -> None:
    assert str(parse_network("10.0.0.0/8")) == "10.0.0.0/8"
    assert str(parse_network("10.1.2.3/8")) == "10.0.0.0/8"  # (host bits allowed)
    assert str(parse_network("::1")) == "::1/128"
    assert parse_network("chat.example.org") is None
    with pytest.raises(ValueError, match="not an address"):
        TrustedProxies(["localhost"])
    assert all(PROXIES.trusts(address) for address in ("10.9.8.7", "::ffff:127.0.0.1", "fd00::5"))
    assert not any(PROXIES.trusts(address) for address in ("127.0.0.2", "2001:db8::1", "junk"))
    assert not TrustedProxies().trusts("127.0.0.1")
    # A link-local peer comes from the kernel with its zone: trusted by its address.
    link = TrustedProxies(["fe80::/10"])
    assert link.trusts("fe80::1%eth0")
    assert link.resolve("fe80::1%eth0", []) == Forwarded("fe80::1")


def test_an_untrusted_peer_says_nothing() -> None:
    assert resolve("198.51.100.1", ("X-Forwarded-For", "203.0.113.7")) is None
    assert resolve("198.51.100.1") is None


def test_the_right_most_address_that_is_not_a_trusted_proxy_is_the_client() -> None:
    assert resolve("127.0.0.1", ("X-Forwarded-For", "203.0.113.7")) == Forwarded("203.0.113.7")
    # the client's own claim (left), then what our proxies appended:
    assert resolve("127.0.0.1", ("X-Forwarded-For", "198.51.100.9, 203.0.113.7, 10.0.0.2")) == \
        Forwarded("203.0.113.7")
    # several header fields are one list, in order:
    assert resolve("127.0.0.1", ("X-Forwarded-For", "198.51.100.9"), ("X-Forwarded-For", "203.0.113.7")) == \
        Forwarded("203.0.113.7")
    # every hop a trusted proxy: the left-most
    assert resolve("127.0.0.1", ("X-Forwarded-For", "10.0.0.3, 10.0.0.2")) == Forwarded("10.0.0.3")
    # an entry that is not an address, reached before any client: the proxy's own
    assert resolve("127.0.0.1", ("X-Forwarded-For", "203.0.113.7, unknown")) == Forwarded("127.0.0.1")
    assert resolve("::ffff:127.0.0.1", ("X-Forwarded-For", "garbage")) == Forwarded("127.0.0.1")


@pytest.mark.parametrize("entry", ["fe80::1%a b via 6.6.6.6", "fe80::1%eth0", "[fe80::1%eth0]:4711",
                                   "6.6.6.6 via 7.7.7.7", "9.9.9.9 9.9.9.8", "203.0.113.7:x", "\u00e9"])
def test_a_malformed_entry_counts_as_the_proxy_never_as_its_text(entry: str) -> None:
    assert resolve("127.0.0.1", ("X-Forwarded-For", entry)) == Forwarded("127.0.0.1")
    assert resolve("127.0.0.1", ("X-Forwarded-For", f"203.0.113.7, {entry}")) == Forwarded("127.0.0.1")
    quoted = entry.replace('"', "")
    assert resolve("127.0.0.1", ("Forwarded", f'for="{quoted}"'), proxies=RFC_7239) == Forwarded("127.0.0.1")


def test_proto_comes_with_the_client() -> None:
    # X-Forwarded-Host is not read: the host is the Host header as the proxy sent it.
    assert resolve("127.0.0.1", ("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "HTTPS"),
                   ("X-Forwarded-Host", "chat.example.org")) == Forwarded("203.0.113.7", "https")
    # lists that line up: the entry of the chosen client; others: the last proxy's
    assert resolve("127.0.0.1", ("X-Forwarded-For", "203.0.113.7, 10.0.0.2"),
                   ("X-Forwarded-Proto", "https, http")) == Forwarded("203.0.113.7", "https")
    assert resolve("127.0.0.1", ("X-Forwarded-For", "203.0.113.7, 10.0.0.2"),
                   ("X-Forwarded-Proto", "http")) == Forwarded("203.0.113.7", "http")
    assert resolve("127.0.0.1", ("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "gopher")) == \
        Forwarded("203.0.113.7")
    # only proto and host: the proxy's own request, reached how it says
    assert resolve("127.0.0.1", ("X-Forwarded-Proto", "https")) == Forwarded("127.0.0.1", "https")
    assert resolve("127.0.0.1") == Forwarded("127.0.0.1")


def test_forwarded_rfc_7239() -> None:
    def rfc(value: str) -> Forwarded | None:
        return resolve("127.0.0.1", ("Forwarded", value), proxies=RFC_7239)

    assert rfc('for="[2001:db8:cafe::17]:4711";proto=https;host=chat.example.org') == \
        Forwarded("2001:db8:cafe::17", "https", "chat.example.org")
    assert rfc("for=198.51.100.9;proto=http, For=203.0.113.7;Proto=https, for=10.0.0.2") == \
        Forwarded("203.0.113.7", "https")
    assert rfc('for="_gazonk"') == Forwarded("127.0.0.1")
    assert rfc('for=unknown, for="203.0.113.7"') == Forwarded("203.0.113.7")
    assert rfc('for="a,b;c=d", for=203.0.113.7') == Forwarded("203.0.113.7")
    # no client named: the proxy's own request, reached how it says
    assert rfc("proto=https;host=203.0.113.5") == Forwarded("127.0.0.1", "https", "203.0.113.5")


def test_only_the_header_the_operator_names_counts() -> None:
    xff = ("X-Forwarded-For", "203.0.113.8")
    # X-Forwarded-For (the default): Forwarded is ignored, whatever it says and whether or not it agrees.
    assert resolve("127.0.0.1", xff, ("Forwarded", "for=203.0.113.9;proto=https;host=203.0.113.5")) == \
        Forwarded("203.0.113.8")
    assert resolve("127.0.0.1", xff, ("Forwarded", "for=unknown")) == Forwarded("203.0.113.8")
    assert resolve("127.0.0.1", ("Forwarded", "for=203.0.113.9")) == Forwarded("127.0.0.1")
    assert resolve("127.0.0.1", xff, ("X-Forwarded-Host", "203.0.113.5")) == Forwarded("203.0.113.8")
    # Forwarded: the X-Forwarded-* are ignored.
    assert resolve("127.0.0.1", xff, ("X-Forwarded-Proto", "https"), ("Forwarded", "for=203.0.113.9"),
                   proxies=RFC_7239) == Forwarded("203.0.113.9")
    assert resolve("127.0.0.1", xff, ("X-Forwarded-Proto", "https"), proxies=RFC_7239) == Forwarded("127.0.0.1")


def test_a_trusted_proxys_connection_takes_only_a_slot_in_the_total_until_the_client_is_known() -> None:
    slots = ConnectionSlots(Limits(max_connections=4, max_connections_per_address=1), PROXIES)
    for _ in range(3):
        slots.take("127.0.0.1")  # the proxy: not limited per address
    slots.take_client("203.0.113.7")
    with pytest.raises(Refusal) as refusal:
        slots.take_client("203.0.113.7")
    assert refusal.value.status == 429
    slots.take("198.51.100.1")
    with pytest.raises(Refusal) as full:
        slots.take("127.0.0.1")
    assert full.value.status == 503
    slots.give_back_client("203.0.113.7")
    for address in ("127.0.0.1", "127.0.0.1", "127.0.0.1", "198.51.100.1"):
        slots.give_back(address)
    assert slots.taken == 0
    slots.take_client("203.0.113.7")


def test_the_origin_check_behind_a_proxy_is_the_page_the_proxy_serves() -> None:
    policy = OriginPolicy(frozenset({"https://chat.example.org"}))
    policy.page_ports.add(8000)
    https = Forwarded("203.0.113.7", "https", None)
    assert policy.allows("https://203.0.113.5", "203.0.113.5", https, "203.0.113.5")
    assert policy.allows("https://203.0.113.5:8443", "203.0.113.5", https, "203.0.113.5:8443")
    assert policy.allows("https://localhost:8443", "127.0.0.1", https, "127.0.0.1:8443")
    assert not policy.allows("https://203.0.113.5", "203.0.113.5", https, "203.0.113.5:8443")  # another port
    assert not policy.allows("http://203.0.113.5", "203.0.113.5", https, "203.0.113.5")  # another scheme
    assert not policy.allows("https://evil.example", "evil.example", https, "evil.example")  # a name: listed only
    assert policy.allows("https://chat.example.org", "chat.example.org", https, "chat.example.org")
    assert policy.allows("https://203.0.113.5", "x", Forwarded("203.0.113.7", "https", "203.0.113.5"), "x")
    # A proxy that says nothing of proto or host: the direct rule (our page's port and scheme).
    assert policy.allows("http://127.0.0.1:8000", "127.0.0.1", Forwarded("203.0.113.7"), "127.0.0.1:8001")
    tls = OriginPolicy(page_scheme="https")
    tls.page_ports.add(8000)
    assert tls.allows("https://127.0.0.1:8000", "127.0.0.1")
    assert not tls.allows("http://127.0.0.1:8000", "127.0.0.1")


def test_the_handshake_keeps_its_forwarding_headers_and_host() -> None:
    request = (b"GET /ws HTTP/1.1\r\nHost: chat.example.org:8443\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               b"X-Forwarded-For: 203.0.113.7\r\nX-Other: 1\r\nforwarded: for=203.0.113.7\r\n\r\n")
    handshake = HandshakeParser().receive_data(request)
    assert handshake is not None
    assert handshake.authority == "chat.example.org:8443"
    assert handshake.forwarding == ((b"x-forwarded-for", b"203.0.113.7"), (b"forwarded", b"for=203.0.113.7"))


header_names = st.sampled_from([b"x-forwarded-for", b"forwarded", b"x-forwarded-proto", b"x-forwarded-host"])
header_values = st.one_of(
    st.binary(max_size=80),
    st.lists(st.sampled_from(["203.0.113.7", "10.0.0.2", "unknown", "[2001:db8::1]:80", '"', ";", ",", "=",
                              "for=", "proto=https", "host=x", "_x", " ", "::1", "127.0.0.1:8", "fe80::1",
                              "%eth0", "%", "[", "]", " via "]),
             max_size=12).map(lambda parts: "".join(parts).encode()),
)


@given(
    peer=st.sampled_from(["127.0.0.1", "10.1.1.1", "203.0.113.1", "::1", "fd00::1", "garbage"]),
    headers=st.lists(st.tuples(header_names, header_values), max_size=6),
    proxies=st.sampled_from([PROXIES, RFC_7239]),
)
def test_any_headers_from_any_peer_give_an_answer(
    peer: str, headers: list[tuple[bytes, bytes]], proxies: TrustedProxies
) -> None:
    forwarded = proxies.resolve(peer, headers)
    if not proxies.trusts(peer):
        assert forwarded is None
        return
    assert forwarded is not None
    address = parse_address(forwarded.client)
    assert address is not None
    assert forwarded.client == str(address)  # a plain address as ipaddress writes it, never the header's text
    assert forwarded.proto in (None, "http", "https")
    policy = OriginPolicy()
    policy.page_ports.add(8000)
    policy.allows("https://203.0.113.5", "203.0.113.5", forwarded, "203.0.113.5")  # never raises
