"""TLS built in (``--tls-cert``, ``--tls-key``): https for the page and wss for the chat, on the same ports.

Real TLS handshakes with certificates made by trustme at test time, on both transports; the page in
Chromium over https connects with wss; SIGHUP swaps the certificate for new connections only; a
certificate that cannot be used stops the server at start with one line.
"""

from __future__ import annotations

import http.client
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from certificates import Certificate, make_certificate
from chat_client import ChatClient
from chat_page import two_in_a_room
from chatcore import CoreLimits
from live import TEST_LIMITS, LiveServer, live_server, wait_until
from processes import server_process
from raw_websocket import client_frame, handshake_request, read_until_closed
from transports.config import ServerConfig, Transport
from transports.net.tls import PLAIN_HTTP_ANSWER


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    return make_certificate(tmp_path / "tls")


@pytest.fixture
def tls_server(server_config: ServerConfig, certificate: Certificate) -> Iterator[LiveServer]:
    with live_server(replace(server_config, tls=certificate.files)) as live:
        yield live


def presented(port: int, context: ssl.SSLContext) -> bytes:
    """The certificate the server presents to a new connection (DER)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, \
            context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def https_get(port: int, path: str, context: ssl.SSLContext) -> tuple[int, bytes]:
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_the_page_over_https_and_the_chat_over_wss_on_both_ports(
    tls_server: LiveServer, certificate: Certificate
) -> None:
    context = certificate.client_context()
    status, page = https_get(tls_server.running.http_port, "/", context)
    assert status == 200
    assert b'id="message-wrapper"' in page
    assert https_get(tls_server.running.http_port, "/config.js", context) == (
        200, b'window.CHAT_CONFIG = {"wsPath": "/ws"};\n'
    )
    page_origin = f"https://127.0.0.1:{tls_server.running.http_port}"  # our own page, over https
    on_page_port = f"wss://127.0.0.1:{tls_server.running.http_port}/ws"
    on_socket_port = f"wss://localhost:{tls_server.running.ws_port}/"
    with ChatClient(on_page_port, ssl=context, origin=page_origin) as ada, \
            ChatClient(on_socket_port, ssl=context, origin=page_origin) as bob:
        room = ada.init()["joinKey"]
        bob.init(room)
        ada.talk("over wss, on the page's port")
        assert ada.recv()["payload"] == bob.recv()["payload"] == "over wss, on the page's port"
        bob.talk("x" * 60_000)  # several TLS records
        assert bob.recv()["type"] == "error"  # (over --max-payload-chars: refused)
        bob.talk("over wss, on the socket's port")
        assert ada.recv()["payload"] == "over wss, on the socket's port"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_tls_on_the_other_event_loops(tmp_path: Path, loop: str) -> None:
    certificate = make_certificate(tmp_path / "tls")
    files = certificate.files
    with server_process(
        "--transport", "wsproto", "--event-loop", loop, "--http-port", "0", "--ws-port", "0", "--db", ":memory:",
        "--tls-cert", str(files.certificate), "--tls-key", str(files.key),
    ) as server:
        context = certificate.client_context()
        assert https_get(server.http_port, "/config.js", context)[0] == 200
        with ChatClient(f"wss://127.0.0.1:{server.http_port}/ws", ssl=context) as ada, \
                ChatClient(f"wss://127.0.0.1:{server.ws_port}/", ssl=context) as bob:
            bob.init(ada.init()["joinKey"])
            ada.talk("on " + loop)
            assert bob.recv()["payload"] == "on " + loop
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(timeout=15) == 0


def test_an_http_page_origin_is_not_ours_over_https(tls_server: LiveServer, certificate: Certificate) -> None:
    context = certificate.client_context()
    url = f"wss://127.0.0.1:{tls_server.running.http_port}/ws"
    with pytest.raises(Exception, match="403"):
        ChatClient(url, ssl=context, origin=f"http://127.0.0.1:{tls_server.running.http_port}")


def test_clients_that_do_not_speak_tls_are_turned_away_and_the_server_goes_on(
    tls_server: LiveServer, certificate: Certificate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tasks_before = tls_server.task_count()
    for port in (tls_server.running.http_port, tls_server.running.ws_port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # plain HTTP on a TLS port
            answer = read_until_closed(sock, timeout=5)
            assert answer == PLAIN_HTTP_ANSWER  # told in plain text, then the end
        for _ in range(5):  # and clients that connect and leave, or reset, mid-handshake
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"\x16\x03\x01\x00")
        untrusting = ssl.create_default_context()  # a client that does not trust our CA gives up
        with pytest.raises(ssl.SSLCertVerificationError):
            presented(port, untrusting)
    assert any("TLS handshake failed" in r.getMessage() for r in caplog.records)
    assert [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
    wait_until(lambda: tls_server.slots_taken() == 0)
    wait_until(lambda: tls_server.task_count() <= tasks_before)  # no relay left behind
    with ChatClient(f"wss://127.0.0.1:{tls_server.running.ws_port}/", ssl=certificate.client_context()) as client:
        assert client.init()["type"] == "init"


def test_a_client_that_never_reads_over_tls_is_cut_and_leaves_nothing_behind(
    start_server: Callable[..., LiveServer], certificate: Certificate
) -> None:
    # No talk rate to speak of: the talker keeps talking for the sleeper's buffers to fill and its close to time
    # out (about a second, as fast as TLS lets it), and must never be slowed down itself.
    live = start_server(tls=certificate.files, limits=replace(TEST_LIMITS, outbox_bytes=64 * 1024),
                        core_limits=CoreLimits(messages_per_second=100_000, message_burst=100_000))
    context = certificate.client_context()
    tasks_before = live.task_count()
    with ChatClient(f"wss://127.0.0.1:{live.running.ws_port}/", ssl=context) as talker:
        room = talker.init()["joinKey"]
        sleeper = socket.socket()
        sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # (before connecting: a small window)
        sleeper.settimeout(5)
        sleeper.connect(("127.0.0.1", live.running.http_port))
        tls = context.wrap_socket(sleeper, server_hostname="127.0.0.1", suppress_ragged_eofs=False)
        tls.sendall(handshake_request("127.0.0.1", live.running.http_port).replace(b"GET / ", b"GET /ws "))
        assert tls.recv(12) == b"HTTP/1.1 101"
        tls.sendall(client_frame(0x1, f'{{"type": "init", "joinKey": "{room}"}}'.encode()))  # then never reads
        wait_until(lambda: live.connection_count() == 2)
        sent = 0
        while live.connection_count() == 2:  # until the sleeper is cut (1008, then reset)
            assert sent < 20_000, "the sleeper was never cut"  # ~180 MB: far beyond every buffer on the way
            talker.talk(f"{sent} " + "y" * 9000)
            assert talker.recv()["payload"].startswith(f"{sent} ")  # the talker is never held up
            sent += 1
        received, end = read_to_the_end(tls)
        assert isinstance(end, ConnectionResetError | ssl.SSLError), end  # reset: no close_notify, and what
        assert received < sent * 9000 / 4  # the kernel held for it was dropped
        tls.close()
    wait_until(lambda: live.connection_count() == 0 and live.slots_taken() == 0)
    wait_until(lambda: live.task_count() <= tasks_before)


def read_to_the_end(tls: ssl.SSLSocket) -> tuple[int, OSError | None]:
    """How many bytes came until the connection ended, and the error it ended with (None: a clean end)."""
    received = 0
    try:
        while data := tls.recv(65536):
            received += len(data)
    except OSError as error:
        return received, error
    return received, None


@pytest.mark.parametrize("transport", list(Transport))
def test_sighup_reloads_the_certificate_for_new_connections_and_old_ones_go_on(
    tmp_path: Path, transport: Transport
) -> None:
    first = make_certificate(tmp_path / "first")
    files = first.files
    with server_process(
        "--transport", transport.value, "--http-port", "0", "--ws-port", "0", "--db", ":memory:",
        "--tls-cert", str(files.certificate), "--tls-key", str(files.key),
    ) as server:
        context = first.client_context()
        assert presented(server.ws_port, context) == first.der
        old = ChatClient(f"wss://127.0.0.1:{server.ws_port}/", ssl=context)
        room = old.init()["joinKey"]

        second = make_certificate(tmp_path / "second", first.ca)
        os.replace(second.files.certificate, files.certificate)
        os.replace(second.files.key, files.key)
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while presented(server.http_port, context) != second.der:
            assert time.monotonic() < deadline, "".join(server.log)
            time.sleep(0.05)
        assert presented(server.ws_port, context) == second.der
        assert any("TLS certificate reloaded" in line for line in server.log)

        with ChatClient(f"wss://127.0.0.1:{server.http_port}/ws", ssl=context) as new:
            new.init(room)
            old.talk("still here, on the first certificate")
            assert new.recv()["payload"] == old.recv()["payload"] == "still here, on the first certificate"

        files.key.write_text("not a key")  # a broken renewal: logged, and the current certificate stays
        server.process.send_signal(signal.SIGHUP)
        wait_until(lambda: any("was not reloaded" in line for line in server.log))
        assert presented(server.ws_port, context) == second.der
        old.talk("and after a failed reload")
        assert old.recv()["payload"] == "and after a failed reload"
        old.close()
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(timeout=15) == 0


@pytest.mark.parametrize(
    ("make_files", "says"),
    [
        (lambda folder: ["--tls-cert", str(folder / "missing.pem")], "no such file"),
        (lambda folder: ["--tls-cert", str(folder / "first" / "cert.pem"), "--tls-key",
                         str(folder / "other" / "key.pem")], "is not the private key of"),
        (lambda folder: ["--tls-cert", str(folder / "first" / "key.pem"), "--tls-key",
                         str(folder / "first" / "key.pem")], "holds no PEM certificate"),
        (lambda folder: ["--tls-key", str(folder / "first" / "key.pem")], "--tls-key needs --tls-cert"),
    ],
    ids=["missing", "key-of-another", "not-a-certificate", "key-alone"],
)
def test_a_certificate_that_cannot_be_used_is_one_line_at_start(
    tmp_path: Path, make_files: Callable[[Path], list[str]], says: str
) -> None:
    make_certificate(tmp_path / "first")
    make_certificate(tmp_path / "other")
    result = subprocess.run(
        [sys.executable, "-m", "transports", "--http-port", "0", "--ws-port", "0", "--db", ":memory:",
         *make_files(tmp_path)],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 or lines[-1].startswith("chat-server: error:"), result.stderr
    assert lines[-1].startswith("chat-server: error:")
    assert says in lines[-1]


def test_the_page_over_https_connects_with_wss(
    start_server: Callable[..., LiveServer], certificate: Certificate, browser: Browser
) -> None:
    live = start_server(tls=certificate.files)
    url = f"https://127.0.0.1:{live.running.http_port}/"
    with two_in_a_room(browser, url, ignore_https_errors=True) as (alice, bob):
        alice.send_with_enter("over https and wss")
        assert bob.wait_for_messages(1) == ["Alice: over https and wss"]
        for page in (alice, bob):
            assert page.sockets == [f"wss://127.0.0.1:{live.running.http_port}/ws"]
            page.assert_stayed_on("127.0.0.1")
            assert all(request.startswith("https://") for request in page.requests if not request.startswith("data:"))
