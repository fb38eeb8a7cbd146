"""The origin policy and its parsers, without sockets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transports.http.origin import Origin, OriginPolicy, is_address, normalize_origin, parse_host, parse_origin

PAGE = 8000


@pytest.fixture
def policy() -> OriginPolicy:
    policy = OriginPolicy(frozenset({"https://Chat.Example.org:443", "http://partner.example:8080"}))
    policy.page_ports.add(PAGE)
    return policy


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("http://example.org", Origin("http", "example.org", 80)),
        ("HTTPS://Example.ORG:443", Origin("https", "example.org", 443)),
        ("http://127.0.0.1:8000", Origin("http", "127.0.0.1", 8000)),
        ("http://[::1]:8000", Origin("http", "::1", 8000)),
        ("http://[0:0::1]:8000", Origin("http", "::1", 8000)),
        (" http://a.b:1 ", Origin("http", "a.b", 1)),
    ],
)
def test_origins_browsers_send_are_parsed(text: str, parsed: Origin) -> None:
    assert parse_origin(text) == parsed


@pytest.mark.parametrize(
    "text",
    ["null", "", "http://a:99999", "http://a:0", "http://a:", "http://", "ftp://a", "http://a/path", "http://u@a",
     "http://[::1", "http://[zz]:1", "http://a b", "http://a:8000?x", "http://a\x00", "http://é.fr", "//a"],
)
def test_anything_else_is_not_an_origin(text: str) -> None:
    assert parse_origin(text) is None


def test_origins_serialize_without_default_ports() -> None:
    assert str(Origin("https", "a.org", 443)) == "https://a.org"
    assert str(Origin("http", "::1", 8000)) == "http://[::1]:8000"
    assert normalize_origin("HTTPS://A.org:443") == "https://a.org"
    assert normalize_origin(" Not An Origin ") == "not an origin"


@pytest.mark.parametrize(
    ("text", "host"),
    [("example.org", "example.org"), ("Example.org:8001", "example.org"), ("[::1]:8001", "::1"), ("[::1]", "::1"),
     ("127.0.0.1:", "127.0.0.1"), ("localhost", "localhost")],
)
def test_host_headers_give_their_host_name(text: str, host: str) -> None:
    assert parse_host(text) == host


@pytest.mark.parametrize("text", ["", ":8001", "a:99999", "a:1:2", "::1", "[::1", "[xyz]:1", "a b", "a/b", "é"])
def test_malformed_host_headers_give_none(text: str) -> None:
    assert parse_host(text) is None


@pytest.mark.parametrize("host", ["127.0.0.1", "10.0.0.1", "::1", "fe80::1"])
def test_addresses(host: str) -> None:
    assert is_address(host)


@pytest.mark.parametrize("host", ["localhost", "example.org", "127.1.example", "", "[::1]"])
def test_names(host: str) -> None:
    assert not is_address(host)


def test_clients_without_origin_are_accepted(policy: OriginPolicy) -> None:
    assert policy.allows(None, "anything")


def test_our_own_page_is_accepted_at_an_address(policy: OriginPolicy) -> None:
    assert policy.allows("http://192.168.1.20:8000", "192.168.1.20")
    assert policy.allows("http://127.0.0.2:8000", "127.0.0.2")
    assert policy.allows("http://[fe80::1]:8000", "fe80::1")


@pytest.mark.parametrize("page", ["localhost", "127.0.0.1", "[::1]"])
@pytest.mark.parametrize("socket_host", ["localhost", "127.0.0.1", "::1"])
def test_names_of_this_machine_are_one_host(policy: OriginPolicy, page: str, socket_host: str) -> None:
    assert policy.allows(f"http://{page}:{PAGE}", socket_host)


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("http://evil.example", "127.0.0.1"),
        ("http://evil.example:8000", "127.0.0.1"),  # our port, another host
        ("http://127.0.0.1:8001", "127.0.0.1"),  # our host, another port
        ("http://localhost:9999", "127.0.0.1"),
        ("http://localhost:8000", "chat.lan"),  # a page on the client's own machine, a socket to ours
        ("http://chat.lan:8000", "localhost"),
        ("https://127.0.0.1:8000", "localhost.example.org"),
        ("null", "127.0.0.1"),
        ("http://a:99999", "a"),
        ("http://evil.example:8000", "evil.example"),  # a name pointed at us: DNS rebinding
        ("http://chat.lan:8000", "chat.lan"),  # a name must be listed
        ("https://127.0.0.1:8000", "127.0.0.1"),  # our page is http
        ("https://localhost:8000", "localhost"),
        ("http://127.0.0.2:8000", "localhost"),  # only localhost, 127.0.0.1 and [::1] are interchangeable
        ("http://0.0.0.0:8000", "127.0.0.1"),
        ("http://app.localhost:8000", "localhost"),
        ("http://localhost.:8000", "localhost"),
        ("http://127.0.0.1:8000/", "127.0.0.1"),
        ("https://other.example.org", "chat.example.org"),
    ],
)
def test_foreign_and_unparseable_origins_are_refused(policy: OriginPolicy, origin: str, host: str) -> None:
    assert not policy.allows(origin, host)


def test_listed_origins_are_accepted_from_any_host(policy: OriginPolicy) -> None:
    assert policy.allows("https://chat.example.org", "backend.internal")
    assert policy.allows("HTTP://PARTNER.example:8080", "x")
    assert not policy.allows("http://partner.example", "x")


@settings(max_examples=500, deadline=None)
@given(st.none() | st.text(max_size=60), st.text(max_size=40))
def test_the_policy_is_total(origin: str | None, host_header: str) -> None:
    """Any text: an answer, never an exception; and only a parseable origin is ever accepted."""
    host = parse_host(host_header)
    assert host is None or host == host.lower()
    policy = OriginPolicy()
    policy.page_ports.add(PAGE)
    allowed = policy.allows(origin, host or "")
    if allowed and origin is not None:
        parsed = parse_origin(origin)
        assert parsed is not None
        assert parsed.port == PAGE


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["http", "https"]), st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True),
       st.integers(1, 65535))
def test_parsing_a_serialized_origin_gives_it_back(scheme: str, host: str, port: int) -> None:
    origin = Origin(scheme, host, port)
    assert parse_origin(str(origin)) == origin
