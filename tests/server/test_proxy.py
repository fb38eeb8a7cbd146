"""Behind a proxy (``--trusted-proxy``): forwarding headers count for the per-address limit, the log and the
origin check, only from trusted peers; and the README's nginx block, run as written, https and wss through it.

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
from contextlib import ExitStack
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
        assert refused(address, Forwarded='for="203.0.113.1:4711";proto=https') == 429
        # Other clients of the same proxy are not held back by it: the proxy is not one client.
        for client in ("203.0.113.2", "203.0.113.3", "2001:db8::1"):
            open_.enter_context(connect(address, X_Forwarded_For=client))
        open_.enter_context(connect(address, Forwarded='for="[2001:db8::2]:4711"'))
        open_.enter_context(connect(address, X_Forwarded_For="203.0.113.4, 127.0.0.1"))  # a chain of proxies
        open_.enter_context(connect(address, X_Forwarded_For="203.0.113.4"))
        assert refused(address, X_Forwarded_For="203.0.113.4") == 429
        wait_until(lambda: proxied.connection_count() == 8)
    wait_until(lambda: proxied.slots_taken() == 0)


@pytest.mark.parametrize("port", PORTS)
def test_a_proxy_request_naming_no_believable_client_counts_as_the_proxy(proxied: LiveServer, port: str) -> None:
    address = url(proxied, port)
    with connect(address), connect(address, X_Forwarded_For="unknown"):
        assert refused(address) == 429
        assert refused(address, X_Forwarded_For="_hidden, 203.0.113.1".replace("203.0.113.1", "unknown")) == 429
        # Two stories (a proxy that writes Forwarded, a client that wrote X-Forwarded-For): neither is believed.
        assert refused(address, X_Forwarded_For="203.0.113.8", Forwarded="for=203.0.113.9") == 429
        with connect(address, X_Forwarded_For="203.0.113.8", Forwarded="for=203.0.113.8") as agreeing:
            assert agreeing.init()["type"] == "init"


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
    page = {"X_Forwarded_For": "203.0.113.1", "X_Forwarded_Proto": "https", "X_Forwarded_Host": "203.0.113.5:8443"}
    with connect(address, origin="https://203.0.113.5:8443", **page) as ours:  # the page the proxy serves
        assert ours.init()["type"] == "init"
    with connect(address, origin="https://203.0.113.5", X_Forwarded_For="203.0.113.1",
                 Forwarded="for=203.0.113.1;proto=https;host=203.0.113.5") as ours:
        assert ours.init()["type"] == "init"
    assert refused(address, origin="https://evil.example", **page) == 403
    assert refused(address, origin="http://203.0.113.5:8443", **page) == 403  # not the scheme the proxy said
    assert refused(address, origin="https://chat.example.org",  # a name: only if listed
                   **{**page, "X_Forwarded_Host": "chat.example.org"}) == 403
    # The same headers from a peer we do not trust say nothing: that origin is not our page's.
    assert refused(address, source="127.0.0.2", origin="https://203.0.113.5:8443", **page) == 403


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


# --- the README's nginx configuration ---------------------------------------------------------------------


def readme_nginx_block() -> str:
    """The nginx block of the README's "One port, behind a proxy"."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### One port, behind a proxy", 1)[1]
    return section.split("```nginx\n", 1)[1].split("```", 1)[0]


@pytest.fixture
def behind_nginx(
    start_server: Callable[..., LiveServer], tmp_path: Path
) -> Iterator[tuple[LiveServer, int, ssl.SSLContext]]:
    """A chat server behind the README's nginx block, as written but for its ports and certificate paths."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "fullchain.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "privkey.pem"))
    live = start_server(trusted_proxies=("127.0.0.1",), limits=replace(TEST_LIMITS, max_connections_per_address=2))
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
