"""Behind a proxy (``--trusted-proxy``): the one forwarding header named (``--proxy-header``) counts for the
per-address limit, the log and the origin check, only from trusted peers; and the docs' nginx block, run as
written, https and wss through it, where a client's own forwarding headers gain it nothing.

Both ports, both transports. The client addresses a proxy names are made up (203.0.113.0/24, a documentation
range); a "client" that really connects from another address binds a loopback one (127.0.0.2, ...).
"""

from __future__ import annotations

import http.client
import logging
import re
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trustme
from playwright.sync_api import Browser
from websockets.exceptions import InvalidStatus

from chat_client import ChatClient
from chat_page import two_in_a_room
from live import ROOT, TEST_LIMITS, LiveServer, wait_until
from nginx_server import nginx
from raw_websocket import read_until_closed
from redis_server import free_port
from transports import settings
from transports.cli import build_parser, config_from_args
from transports.config import ProxyHeader


@pytest.fixture
def proxied(start_server: Callable[..., LiveServer]) -> LiveServer:
    """A server behind a trusted proxy on 127.0.0.1 (the tests play the proxy), two connections per address."""
    return start_server(trusted_proxies=("127.0.0.1",), limits=replace(TEST_LIMITS, max_connections_per_address=2))


def url(live: LiveServer, port: str) -> str:
    """The chat on the socket's port, or on the page's."""
    if port == "page":
        return f"ws://127.0.0.1:{live.running.http_port}/ws"
    return live.ws_url


def connect(address: str, *, source: str = "127.0.0.1", **headers: str) -> ChatClient:
    """A client from ``source`` (a loopback address), sending these headers (``X_Forwarded_For=...``)."""
    extra = {name.replace("_", "-"): value for name, value in headers.items() if name != "origin"}
    options: dict[str, Any] = {"additional_headers": extra, "source_address": (source, 0)}
    if "origin" in headers:
        options["origin"] = headers["origin"]
    return ChatClient(address, **options)


def refused(address: str, **options: str) -> int:
    with pytest.raises(InvalidStatus) as refusal:
        connect(address, **options)
    return refusal.value.response.status_code


PORTS = ["socket", "page"]


@pytest.mark.parametrize("port", PORTS)
def test_the_client_a_trusted_proxy_names_is_what_the_per_address_limit_counts(
    proxied: LiveServer, port: str
) -> None:
    address = url(proxied, port)
    with ExitStack() as open_:
        for _ in range(2):
            open_.enter_context(connect(address, X_Forwarded_For="203.0.113.1"))
        assert refused(address, X_Forwarded_For="203.0.113.1") == 429
        # What the client wrote itself is left of what the proxy appended: never believed.
        assert refused(address, X_Forwarded_For="198.51.100.9, 203.0.113.1") == 429
        # Forwarded is not the header named: it is ignored, agreeing or not.
        assert refused(address, X_Forwarded_For="203.0.113.1", Forwarded="for=203.0.113.9") == 429
        # Other clients of the same proxy are not held back by it: the proxy is not one client.
        for client in ("203.0.113.2", "203.0.113.3", "2001:db8::1"):
            open_.enter_context(connect(address, X_Forwarded_For=client))
        open_.enter_context(connect(address, X_Forwarded_For="[2001:db8::2]:4711"))
        open_.enter_context(connect(address, X_Forwarded_For="203.0.113.4, 127.0.0.1"))  # a chain of proxies
        open_.enter_context(connect(address, X_Forwarded_For="203.0.113.4"))
        assert refused(address, X_Forwarded_For="203.0.113.4") == 429
        wait_until(lambda: proxied.connection_count() == 8)
    wait_until(lambda: proxied.slots_taken() == 0)


@pytest.mark.parametrize("port", PORTS)
def test_a_proxy_request_naming_no_believable_client_counts_as_the_proxy(
    proxied: LiveServer, port: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    address = url(proxied, port)
    with connect(address), connect(address, X_Forwarded_For="unknown"):
        assert refused(address) == 429
        assert refused(address, X_Forwarded_For="_hidden, unknown") == 429
        # Not a plain address: a scoped IPv6 one, garbage with spaces; never taken as the client's.
        assert refused(address, X_Forwarded_For="fe80::1%a b via 6.6.6.6") == 429
        assert refused(address, X_Forwarded_For="6.6.6.6 via 7.7.7.7") == 429
        # Forwarded alone is not the header named: the request names no client.
        assert refused(address, Forwarded="for=203.0.113.9") == 429
        # A Forwarded that disagrees does not send a client into the proxy's count.
        with connect(address, X_Forwarded_For="203.0.113.8", Forwarded="for=203.0.113.9") as other:
            assert other.init()["type"] == "init"
    lines = [record.getMessage() for record in caplog.records]
    assert not [line for line in lines if "fe80" in line or "6.6.6.6" in line or "203.0.113.9" in line]
    assert any(line.startswith("127.0.0.1 via 127.0.0.1:") and "refused" in line for line in lines), lines


@pytest.mark.parametrize("port", PORTS)
def test_an_untrusted_peers_forwarding_headers_are_ignored(proxied: LiveServer, port: str) -> None:
    address = url(proxied, port)
    with connect(address, source="127.0.0.2", X_Forwarded_For="203.0.113.1"), \
            connect(address, source="127.0.0.2", Forwarded="for=203.0.113.2"):
        assert refused(address, source="127.0.0.2", X_Forwarded_For="203.0.113.3") == 429
        assert refused(address, source="127.0.0.2") == 429


def test_the_total_limit_still_holds_behind_a_trusted_proxy(start_server: Callable[..., LiveServer]) -> None:
    live = start_server(trusted_proxies=("127.0.0.0/8",), limits=replace(TEST_LIMITS, max_connections=2))
    with connect(live.ws_url, X_Forwarded_For="203.0.113.1"), connect(live.ws_url, X_Forwarded_For="203.0.113.2"):
        assert refused(live.ws_url, X_Forwarded_For="203.0.113.3") == 503


@pytest.mark.parametrize("port", PORTS)
def test_the_log_names_the_client_and_the_proxy(
    proxied: LiveServer, port: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with connect(url(proxied, port), X_Forwarded_For="203.0.113.7") as client:
        client.init()
    wait_until(lambda: proxied.connection_count() == 0)
    lines = [record.getMessage() for record in caplog.records]
    assert any(re.match(r"203\.0\.113\.7 via 127\.0\.0\.1:\d+: connection closed", line) for line in lines), lines


@pytest.mark.parametrize("port", PORTS)
def test_the_origin_check_sees_the_page_the_browser_is_on(proxied: LiveServer, port: str) -> None:
    address = url(proxied, port)
    host = address.split("/")[2]  # the Host the client sends, as a proxy passes it on
    page = {"X_Forwarded_For": "203.0.113.1", "X_Forwarded_Proto": "https"}
    with connect(address, origin=f"https://{host}", **page) as ours:  # the page the proxy serves
        assert ours.init()["type"] == "init"
    assert refused(address, origin="https://evil.example", **page) == 403
    assert refused(address, origin=f"http://{host}", **page) == 403  # not the scheme the proxy said
    # X-Forwarded-Host is not read, nor Forwarded's host (not the header named): the host is Host.
    assert refused(address, origin="https://203.0.113.5:8443", X_Forwarded_Host="203.0.113.5:8443", **page) == 403
    assert refused(address, origin="https://203.0.113.5", X_Forwarded_For="203.0.113.1",
                   Forwarded="for=203.0.113.1;proto=https;host=203.0.113.5") == 403
    # The same headers from a peer we do not trust say nothing: that origin is not our page's.
    assert refused(address, source="127.0.0.2", origin=f"https://{host}", **page) == 403


@pytest.mark.parametrize("port", PORTS)
def test_with_proxy_header_forwarded_only_forwarded_counts(
    start_server: Callable[..., LiveServer], port: str
) -> None:
    live = start_server(trusted_proxies=("127.0.0.1",), proxy_header=ProxyHeader.FORWARDED,
                        limits=replace(TEST_LIMITS, max_connections_per_address=2))
    address = url(live, port)
    with ExitStack() as open_:
        for _ in range(2):
            open_.enter_context(connect(address, Forwarded='for="203.0.113.1:4711"'))
        assert refused(address, Forwarded="for=203.0.113.1", X_Forwarded_For="203.0.113.2") == 429
        for _ in range(2):  # X-Forwarded-For is not the header named: these are the proxy's own
            open_.enter_context(connect(address, X_Forwarded_For="203.0.113.3"))
        assert refused(address, X_Forwarded_For="203.0.113.4") == 429
        assert refused(address, Forwarded="for=fe80::1%eth0") == 429  # not a plain address: the proxy's too
        with connect(address, origin="https://203.0.113.5", Forwarded="for=203.0.113.6;proto=https;host=203.0.113.5"):
            pass
        assert refused(address, origin="https://203.0.113.5", Forwarded="for=203.0.113.7",
                       X_Forwarded_Proto="https", X_Forwarded_Host="203.0.113.5") == 403


def test_the_proxy_header_is_a_flag_and_a_variable() -> None:
    def header(argv: list[str], **environ: str) -> ProxyHeader:
        args, _ = settings.parse_args(build_parser(), argv, environ)
        return config_from_args(args).proxy_header

    assert header([]) is ProxyHeader.X_FORWARDED_FOR
    assert header(["--proxy-header", "forwarded"]) is ProxyHeader.FORWARDED
    assert header([], CHAT_SERVER_PROXY_HEADER="forwarded") is ProxyHeader.FORWARDED
    assert header(["--proxy-header", "x-forwarded-for"], CHAT_SERVER_PROXY_HEADER="forwarded") is \
        ProxyHeader.X_FORWARDED_FOR


def test_page_connections_are_counted_by_the_client_too(proxied: LiveServer) -> None:
    def request(client: str) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", proxied.running.http_port), timeout=5)
        sock.sendall(f"GET /config.js HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {client}\r\n\r\n".encode())
        return sock

    held = [request("203.0.113.1"), request("203.0.113.1")]  # keep-alive: held open
    try:
        for sock in held:
            assert sock.recv(12) == b"HTTP/1.1 200"
        third = request("203.0.113.1")
        assert read_until_closed(third, 5).startswith(b"HTTP/1.1 429 ")
        third.close()
        other = request("203.0.113.2")
        assert other.recv(12) == b"HTTP/1.1 200"
        other.close()
    finally:
        for sock in held:
            sock.close()


# --- the docs' nginx configuration -----------------------------------------------------------------------


def readme_nginx_block() -> str:
    """The nginx block of the docs' "One port, behind a proxy" (Deploying)."""
    readme = (ROOT / "docs" / "deploying.md").read_text()
    section = readme.split("## One port, behind a proxy", 1)[1]
    return section.split("```nginx\n", 1)[1].split("```", 1)[0]


@contextmanager
def readme_nginx(live: LiveServer, tmp_path: Path) -> Iterator[tuple[int, ssl.SSLContext]]:
    """The docs' nginx block in front of ``live``, as written but for its ports and certificate paths: its port
    and a context trusting its certificate."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "fullchain.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "privkey.pem"))
    port = free_port("127.0.0.1")
    block = readme_nginx_block()
    replaced = (block.replace("127.0.0.1:8000", f"127.0.0.1:{live.running.http_port}")
                .replace("listen 443 ssl", f"listen 127.0.0.1:{port} ssl")
                .replace("/etc/letsencrypt/live/chat.example.org/fullchain.pem", str(tmp_path / "fullchain.pem"))
                .replace("/etc/letsencrypt/live/chat.example.org/privkey.pem", str(tmp_path / "privkey.pem")))
    assert replaced.count(str(tmp_path)) == 2
    assert f"127.0.0.1:{port} ssl" in replaced
    assert f"127.0.0.1:{live.running.http_port};" in replaced
    folder = tmp_path / "nginx"
    body = f"http {{\n    access_log {folder}/access.log;\n{replaced}}}\n"
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with nginx(folder, body, [("127.0.0.1", port)]):
        yield port, context


@pytest.fixture
def behind_nginx(
    start_server: Callable[..., LiveServer], tmp_path: Path
) -> Iterator[tuple[LiveServer, int, ssl.SSLContext]]:
    """A chat server (``--trusted-proxy 127.0.0.1``, two connections per address) behind the docs' nginx block."""
    live = start_server(trusted_proxies=("127.0.0.1",), limits=replace(TEST_LIMITS, max_connections_per_address=2))
    with readme_nginx(live, tmp_path) as (port, context):
        yield live, port, context


def test_the_readmes_nginx_block_carries_https_and_wss_with_the_clients_address(
    behind_nginx: tuple[LiveServer, int, ssl.SSLContext], caplog: pytest.LogCaptureFixture
) -> None:
    _, port, context = behind_nginx
    caplog.set_level(logging.INFO)
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    connection.request("GET", "/config.js")
    assert connection.getresponse().read() == b'window.CHAT_CONFIG = {"wsPath": "/ws"};\n'
    connection.close()

    address = f"wss://127.0.0.1:{port}/ws"
    origin = f"https://127.0.0.1:{port}"  # the page nginx serves: ours, with nothing listed
    with ExitStack() as open_:
        ada = open_.enter_context(ChatClient(address, ssl=context, origin=origin, source_address=("127.0.0.5", 0)))
        room = ada.init()["joinKey"]
        bob = open_.enter_context(ChatClient(address, ssl=context, origin=origin, source_address=("127.0.0.5", 0)))
        bob.init(room)
        with pytest.raises(InvalidStatus) as third:  # two per address: the client's, not nginx's
            ChatClient(address, ssl=context, origin=origin, source_address=("127.0.0.5", 0))
        assert third.value.response.status_code == 429
        cy = open_.enter_context(ChatClient(address, ssl=context, origin=origin, source_address=("127.0.0.6", 0)))
        cy.init(room)
        ada.talk("through nginx")
        assert [client.recv()["payload"] for client in (ada, bob, cy)] == ["through nginx"] * 3
        with pytest.raises(InvalidStatus) as foreign:
            ChatClient(address, ssl=context, origin="https://evil.example")
        assert foreign.value.response.status_code == 403
    lines = [record.getMessage() for record in caplog.records]
    assert any(re.match(r"127\.0\.0\.5 via 127\.0\.0\.1:\d+: connection opened", line) for line in lines), lines


def test_a_page_loaded_through_nginx_connects(
    behind_nginx: tuple[LiveServer, int, ssl.SSLContext], browser: Browser
) -> None:
    live, port, _ = behind_nginx
    with two_in_a_room(browser, f"https://127.0.0.1:{port}/", ignore_https_errors=True) as (alice, bob):
        bob.send_with_enter("hello through the proxy")
        assert alice.wait_for_messages(1) == ["Bob: hello through the proxy"]
        for page in (alice, bob):
            assert page.sockets == [f"wss://127.0.0.1:{port}/ws"]
            page.assert_stayed_on("127.0.0.1")
        assert live.connection_count() == 2


@pytest.mark.parametrize("trusted", ["127.0.0.1", "127.0.0.0/8"])  # (also: a network the clients are in too)
def test_a_clients_own_forwarding_headers_gain_it_nothing_through_the_readmes_nginx_block(
    start_server: Callable[..., LiveServer], tmp_path: Path, caplog: pytest.LogCaptureFixture, trusted: str
) -> None:
    live = start_server(trusted_proxies=(trusted,), limits=replace(TEST_LIMITS, max_connections_per_address=3))
    caplog.set_level(logging.INFO)
    with readme_nginx(live, tmp_path) as (port, context), ExitStack() as open_:
        address, page = f"wss://127.0.0.1:{port}/ws", f"https://127.0.0.1:{port}"

        def client(source: str, origin: str = page, **headers: str) -> ChatClient:
            return ChatClient(address, ssl=context, origin=origin, source_address=(source, 0),
                              additional_headers=headers)

        def refused(source: str, origin: str = page, **headers: str) -> int:
            with pytest.raises(InvalidStatus) as refusal:
                client(source, origin, **headers)
            return refusal.value.response.status_code

        forged = [{"Forwarded": "for=9.9.9.1"}, {"X-Forwarded-For": "9.9.9.2"},
                  {"X-Forwarded-For": "9.9.9.3", "Forwarded": "for=9.9.9.3"}]
        for headers in forged:  # each a client somebody else: all counted as 127.0.0.5
            open_.enter_context(client("127.0.0.5", **headers))
        for headers in [*forged, {"Forwarded": "for=9.9.9.4"}, {"X-Forwarded-For": "fe80::1%a b via 6.6.6.6"}]:
            assert refused("127.0.0.5", **headers) == 429
        # Two stories, garbage: still 127.0.0.5's own count, not the proxy's...
        for headers in [{"Forwarded": "for=9.9.9.5"}, {"X-Forwarded-For": "garbage with spaces"},
                        {"X-Forwarded-For": "fe80::1%a b via 6.6.6.6"}]:
            open_.enter_context(client("127.0.0.6", **headers))
        # ...so a client whose own proxy wrote a Forwarded header is not pushed out by them.
        for _ in range(3):
            open_.enter_context(client("127.0.0.7", Forwarded="for=10.1.2.3;proto=http"))
        wait_until(lambda: live.connection_count() == 9)

        # The origin check uses the host the browser asked nginx for, whatever the client says.
        with client("127.0.0.8", **{"X-Forwarded-Host": "203.0.113.66"}) as ours:
            assert ours.init()["type"] == "init"
        assert refused("127.0.0.8", "https://203.0.113.66", **{"X-Forwarded-Host": "203.0.113.66"}) == 403
        assert refused("127.0.0.8", "https://203.0.113.67",
                       Forwarded="for=127.0.0.8;proto=https;host=203.0.113.67") == 403
    lines = [record.getMessage() for record in caplog.records]
    for source in ("127.0.0.5", "127.0.0.6", "127.0.0.7"):
        assert sum(bool(re.match(rf"{re.escape(source)} via 127\.0\.0\.1:\d+: connection opened", line))
                   for line in lines) == 3, lines
    assert not [line for line in lines if re.search(r"9\.9\.9|6\.6\.6\.6|fe80|garbage|10\.1\.2\.3", line)]
