"""The page's HTTP side: files from the web folder, /config.js, and nothing outside the folder."""

from __future__ import annotations

import http.client
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from chat_client import ChatClient
from live import SEED_CLIENT, TEST_LIMITS, LiveServer, wait_until
from transports.http import static as static_http
from transports.http.static import Response, StaticSite


def get(live: LiveServer, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", live.running.http_port, timeout=5)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_index_is_the_chat_page_with_the_seed_dom(server: LiveServer) -> None:
    status, headers, body = get(server, "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    page = body.decode()
    for marker in ['id="name-span"', 'id="message-wrapper"', 'id="form"', 'id="message-input"',
                   "container is-max-desktop", "button is-primary", "field has-addons", 'class="box"']:
        assert marker in page
    assert "http://" not in page
    assert "https://" not in page


def test_config_js_tells_the_page_where_its_socket_is(server: LiveServer) -> None:
    status, headers, body = get(server, "/config.js")
    assert status == 200
    assert headers["content-type"].startswith("text/javascript")
    assert body.decode() == 'window.CHAT_CONFIG = {"wsPath": "/ws"};\n'  # the page's own origin


def test_config_js_names_the_public_socket_port_when_given(start_server: Callable[..., LiveServer]) -> None:
    live = start_server(public_ws_port=8443)
    assert get(live, "/config.js")[2].decode() == 'window.CHAT_CONFIG = {"wsPort": 8443};\n'


@pytest.mark.parametrize(("path", "kind"), [
    ("/main.js", "text/javascript"),
    ("/style.css", "text/css"),
    ("/vendor/bulma.min.css", "text/css"),
    ("/index.html?join=abc", "text/html"),
])
def test_page_files_are_served_with_their_types(server: LiveServer, path: str, kind: str) -> None:
    status, headers, body = get(server, path)
    assert status == 200
    assert headers["content-type"].startswith(kind)
    assert int(headers["content-length"]) == len(body) > 0


def test_bulma_is_served_locally(server: LiveServer) -> None:
    _, _, body = get(server, "/vendor/bulma.min.css")
    assert b"bulma.io v0.9" in body[:200]


@pytest.mark.parametrize("path", [
    "/missing.js",
    "/../pyproject.toml",
    "/%2e%2e/pyproject.toml",
    "/vendor/../../pyproject.toml",
    "/%00",
    "//etc/passwd",
])
def test_nothing_outside_the_web_folder_is_served(server: LiveServer, path: str) -> None:
    status, _, body = get(server, path)
    assert status == 404
    assert b"trio-chat" not in body
    assert b"root:" not in body


def test_head_has_no_body_and_other_methods_are_refused(server: LiveServer) -> None:
    status, headers, body = get(server, "/", method="HEAD")
    assert (status, body) == (200, b"")
    assert int(headers["content-length"]) > 0
    status, headers, _ = get(server, "/", method="POST")
    assert status == 405
    assert headers["allow"] == "GET, HEAD"


def test_garbage_gets_a_400_and_the_server_keeps_serving(server: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", server.running.http_port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")
    assert get(server, "/")[0] == 200


def test_keep_alive_serves_several_requests_on_one_connection(server: LiveServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.running.http_port, timeout=5)
    try:
        for path in ["/", "/main.js", "/config.js"]:
            connection.request("GET", path)
            response = connection.getresponse()
            assert response.status == 200
            response.read()
    finally:
        connection.close()


def test_another_client_folder_can_be_served(start_server: Callable[..., LiveServer]) -> None:
    live = start_server(web_dir=SEED_CLIENT)
    status, _, body = get(live, "/")
    assert status == 200
    assert body == (SEED_CLIENT / "index.html").read_bytes()
    assert get(live, "/main.js")[2] == (SEED_CLIENT / "main.js").read_bytes()


def exchange(live: LiveServer, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", live.running.http_port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * 20_000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(100)) + b"\r\n", 431),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 405),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
         b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET //[ HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"GET http://[::1/ HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    ],
    ids=["head-too-large", "too-many-headers", "post-with-body", "get-with-body", "get-chunked", "no-host", "http2",
         "length-and-chunked", "bad-ipv6-path", "bad-ipv6-absolute"],
)
def test_malformed_requests_get_their_status_and_a_short_body(
    server: LiveServer, request_bytes: bytes, status: int
) -> None:
    answer = exchange(server, request_bytes)
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:100]
    assert answer.count(b"HTTP/1.1 ") == 1  # one answer, then the connection closes
    assert 0 < len(answer.split(b"\r\n\r\n", 1)[1]) < 100
    assert get(server, "/")[0] == 200


def test_an_unchanged_file_is_not_sent_again(server: LiveServer) -> None:
    _, headers, _ = get(server, "/main.js")
    connection = http.client.HTTPConnection("127.0.0.1", server.running.http_port, timeout=5)
    try:
        connection.request("GET", "/main.js", headers={"If-None-Match": headers["etag"]})
        response = connection.getresponse()
        assert (response.status, response.read()) == (304, b"")
    finally:
        connection.close()


def test_a_bug_while_answering_gets_500_and_ends_that_connection_only(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    original = StaticSite.respond

    def respond(site: StaticSite, target: str, if_none_match: str | None = None) -> Response:
        if "inject" in target:
            raise RuntimeError("injected")
        return original(site, target, if_none_match)

    monkeypatch.setattr(StaticSite, "respond", respond)
    answer = exchange(server, b"GET /inject HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 500 ")
    assert [r.getMessage() for r in caplog.records if r.exc_info] == [
        next(r.getMessage() for r in caplog.records if "internal error while serving the page" in r.getMessage())
    ]
    assert get(server, "/")[0] == 200


def test_clients_resetting_their_connections_do_not_stop_the_server(server: LiveServer) -> None:
    for i in range(200):
        with socket.create_connection(("127.0.0.1", server.running.http_port)) as sock:
            if i % 2:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 20)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert get(server, "/")[0] == 200
    with ChatClient(server.ws_url) as client:
        assert client.init()["userId"] == 1


def test_page_connections_are_limited_per_address(start_server: Callable[..., LiveServer]) -> None:
    live = start_server(limits=replace(TEST_LIMITS, max_connections_per_address=2))
    idle = [socket.create_connection(("127.0.0.1", live.running.http_port)) for _ in range(2)]
    try:
        wait_until(lambda: exchange(live, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 429 "))
    finally:
        for sock in idle:
            sock.close()
    wait_until(lambda: get(live, "/")[0] == 200)


def test_a_page_client_that_never_reads_is_reset(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(static_http, "SEND_TIMEOUT", 1.0)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.running.http_port))
    sock.settimeout(10)
    try:
        sock.sendall(b"GET /vendor/bulma.min.css HTTP/1.1\r\nHost: x\r\n\r\n" * 100)  # ~20 MB of answers
        time.sleep(3)  # never reads meanwhile
        with pytest.raises(ConnectionResetError):
            read_all(sock)
    finally:
        sock.close()
    assert get(server, "/")[0] == 200


def read_all(sock: socket.socket) -> None:
    while sock.recv(65536):
        pass
