"""Clients real deployments meet, on every listening surface: after each, the server is idle, serving and stoppable.

The matrix: each behaviour below, on the page port and the WebSocket port at once, plain or TLS, on both
transports and every event loop the wsproto transport runs on. Each is followed by the same three checks:

- the server's CPU falls back to idle: under 2 % over the next 2 s (its own utime + stime, from /proc);
- a new client is served on both ports (``/healthz`` on the page port, a chat ``init`` on the socket port);
- SIGTERM still drains and the process exits 0 within ``--drain-timeout``.

Behaviours that hold a connection open (a stalled ClientHello, close_notify with the socket kept open) hold
it through all three checks. The clients are hand-written bytes where the behaviour needs control of each
record, and the real thing where people use it: curl, ``openssl s_client`` and Python's ``ssl``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from certificates import Certificate, make_certificate
from chat_client import ChatClient
from processes import ServerProcess, server_process
from raw_websocket import handshake_request, read_until_closed
from transports.net.tls import PLAIN_HTTP_ANSWER

DRAIN_TIMEOUT = 3.0
SLACK = 1.5
"""What the process's own exit may add to its drain (interpreter teardown)."""
IDLE_WINDOW = 2.0
IDLE_SHARE = 0.02
SETTLE = 0.3
TIMEOUT = 5.0

SERVERS = {  # the transport and event loop of each server in the matrix
    "trio-websocket": ("--transport", "trio-websocket"),
    "wsproto-trio": ("--transport", "wsproto", "--event-loop", "trio"),
    "wsproto-asyncio": ("--transport", "wsproto", "--event-loop", "asyncio"),
    "wsproto-uvloop": ("--transport", "wsproto", "--event-loop", "uvloop"),
}


@dataclass(frozen=True)
class Target:
    """One listening surface, and what a polite client of it sends first and gets back."""

    port: int
    request: bytes
    answer: bytes
    """The start of the answer to ``request``."""
    context: ssl.SSLContext | None
    """A client context trusting the server's certificate; None on a plain port."""

    @property
    def scheme(self) -> str:
        return "http" if self.context is None else "https"


Behaviour = Callable[[Target], AbstractContextManager[None]]


# Tools --------------------------------------------------------------------------------------------------------


def connect(target: Target) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", target.port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class MemoryTls:
    """A TLS client on memory buffers over a plain socket: every record is ours to send, hold back or cut."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self.sock = sock
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._in, self._out, server_hostname="127.0.0.1")

    def records(self) -> bytes:
        """What TLS has made for the server since the last call (not sent)."""
        return self._out.read()

    def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self.sock.sendall(self.records())
                self._receive()
                continue
            self.sock.sendall(self.records())
            return

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self.sock.sendall(self.records())

    def read_until(self, marker: bytes) -> bytes:
        data = b""
        while marker not in data:
            try:
                data += self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._receive()
        return data

    def exchange(self, target: Target) -> None:
        """The polite client's request, and the start of the answer."""
        self.send(target.request)
        assert self.read_until(b"\r\n\r\n").startswith(target.answer)

    def end_and_wait(self) -> None:
        """FIN, then read until the server ends the connection too; fails if it does not within `TIMEOUT`."""
        self.sock.shutdown(socket.SHUT_WR)
        ended(self.sock)

    def close_notify(self) -> None:
        with suppress(ssl.SSLWantReadError):
            self.tls.unwrap()
        self.sock.sendall(self.records())

    def _receive(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self._in.write(data)


@contextmanager
def memory_tls(target: Target, context: ssl.SSLContext | None = None) -> Iterator[MemoryTls]:
    assert target.context is not None
    sock = connect(target)
    try:
        yield MemoryTls(sock, context or target.context)
    finally:
        sock.close()


@contextmanager
def after_a_request(target: Target, context: ssl.SSLContext | None = None) -> Iterator[MemoryTls]:
    """A TLS client that has made the polite request and read the start of the answer."""
    with memory_tls(target, context) as client:
        client.handshake()
        client.exchange(target)
        yield client


def ended(sock: socket.socket) -> bytes:
    """What the server sends until it ends the connection; fails if it does not within `TIMEOUT`."""
    return read_until_closed(sock, timeout=TIMEOUT)


@dataclass(frozen=True)
class Until:
    """A step of `run_client`: wait until the client has printed ``marker`` (on stdout, or stderr)."""

    marker: bytes
    stderr: bool = False


HANDSHAKEN = Until(b"Verify return code")
"""openssl s_client is through the handshake."""


def run_client(argv: list[str], steps: list[bytes | Until] | None = None) -> subprocess.CompletedProcess[bytes]:
    """A real client program; ``steps``: bytes to write to its standard input, and what to wait for in between.

    After the steps its standard input ends (which ends ``openssl s_client``, with close_notify).
    """
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdin is not None
    assert process.stdout is not None
    assert process.stderr is not None
    printed = {False: bytearray(), True: bytearray()}
    readers = [threading.Thread(target=_collect, args=(stream, printed[which]), daemon=True)
               for which, stream in ((False, process.stdout), (True, process.stderr))]
    for reader in readers:
        reader.start()
    try:
        for step in steps or []:
            if isinstance(step, Until):
                deadline = time.monotonic() + TIMEOUT * 2
                while step.marker not in printed[step.stderr]:
                    assert time.monotonic() < deadline, (step, bytes(printed[False]), bytes(printed[True]))
                    assert process.poll() is None, (step, bytes(printed[False]), bytes(printed[True]))
                    time.sleep(0.02)
            else:
                process.stdin.write(step)
                process.stdin.flush()
        with suppress(BrokenPipeError):  # (it may have ended by itself)
            process.stdin.close()
        process.wait(timeout=TIMEOUT * 2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for reader in readers:
            reader.join(timeout=TIMEOUT)
    return subprocess.CompletedProcess(argv, process.returncode, bytes(printed[False]), bytes(printed[True]))


def _collect(stream: IO[bytes], into: bytearray) -> None:
    while chunk := os.read(stream.fileno(), 65536):
        into += chunk
    stream.close()


# Behaviours on a TLS port -------------------------------------------------------------------------------------


@contextmanager
def close_notify_then_fin(target: Target) -> Iterator[None]:
    with after_a_request(target) as client:
        client.close_notify()
        client.end_and_wait()
        yield


@contextmanager
def close_notify_and_keep_the_socket_open(target: Target) -> Iterator[None]:
    with after_a_request(target) as client:
        client.close_notify()
        yield  # (the socket stays open, unread, through the checks)


@contextmanager
def fin_without_close_notify(target: Target) -> Iterator[None]:
    with after_a_request(target) as client:
        client.end_and_wait()
        yield


@contextmanager
def reset_in_the_middle_of_a_record(target: Target) -> Iterator[None]:
    with after_a_request(target) as client:
        client.tls.write(b"x" * 3000)
        record = client.records()
        client.sock.sendall(record[: len(record) // 2])
        time.sleep(0.1)
        reset(client.sock)
        yield


@contextmanager
def half_a_client_hello_that_stalls(target: Target) -> Iterator[None]:
    with memory_tls(target) as client:
        with suppress(ssl.SSLWantReadError):
            client.tls.do_handshake()
        hello = client.records()
        client.sock.sendall(hello[: len(hello) // 2])
        yield  # (stalled through the checks)


def _polite_with(version: ssl.TLSVersion) -> Behaviour:
    @contextmanager
    def behaviour(target: Target) -> Iterator[None]:
        assert target.context is not None
        context = ssl.create_default_context()
        context.load_verify_locations(cadata=_trusted(target.context))
        context.minimum_version = context.maximum_version = version
        with after_a_request(target, context) as client:
            assert client.tls.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[
                version
            ]
            client.close_notify()
            client.end_and_wait()
        yield

    behaviour.__name__ = f"a_polite_{version.name.replace('v', '_').replace('_', '', 1).lower()}_client"
    return behaviour


def _trusted(context: ssl.SSLContext) -> str:
    return "".join(ssl.DER_cert_to_PEM_cert(der) for der in context.get_ca_certs(binary_form=True))


@contextmanager
def renegotiation(target: Target) -> Iterator[None]:
    """TLS 1.2 renegotiation, asked for by openssl s_client ("R"): refused, and the server goes on."""
    result = run_client(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{target.port}", "-tls1_2", "-servername", "localhost"],
        [HANDSHAKEN, b"R\n", Until(b"RENEGOTIATING", stderr=True)],
    )
    assert b"RENEGOTIATING" in result.stderr, result.stdout + result.stderr
    yield


@contextmanager
def key_update(target: Target) -> Iterator[None]:
    """A TLS 1.3 key update that asks for the server's ("K" in openssl s_client), then the request."""
    result = run_client(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{target.port}", "-tls1_3", "-servername", "localhost"],
        [HANDSHAKEN, b"K\n", Until(b"KEYUPDATE", stderr=True), target.request, Until(target.answer)],
    )
    assert b"KEYUPDATE" in result.stderr, result.stdout + result.stderr
    assert target.answer in result.stdout, result.stdout + result.stderr
    yield


@contextmanager
def openssl_s_client(target: Target) -> Iterator[None]:
    """openssl s_client as people use it: a request on its standard input, which then ends (close_notify)."""
    result = run_client(["openssl", "s_client", "-connect", f"127.0.0.1:{target.port}"],
                        [target.request, Until(target.answer)])
    assert target.answer in result.stdout, result.stdout + result.stderr
    yield


@contextmanager
def python_ssl_with_unwrap(target: Target) -> Iterator[None]:
    """Python's own ``ssl`` socket, ended properly: ``unwrap()`` sends close_notify and waits for the server's."""
    assert target.context is not None
    sock = connect(target)
    with target.context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        tls.sendall(target.request)
        head = b""
        while b"\r\n\r\n" not in head:
            head += tls.recv(1)
        assert head.startswith(target.answer)
        if length := re.search(rb"(?i)content-length: *(\d+)", head):
            received_exactly(tls, int(length.group(1)))  # (unwrap() refuses data that comes before the end)
        if target.answer.startswith(b"HTTP/1.1 101"):
            tls.sendall(b"\x88\x82abcd" + bytes([0x03 ^ 0x61, 0xE8 ^ 0x62]))  # a close frame, 1000
            assert received_exactly(tls, 4) == b"\x88\x02\x03\xe8"  # and the server's
        plain = tls.unwrap()
        plain.close()
    yield


def received_exactly(tls: ssl.SSLSocket, size: int) -> bytes:
    """``size`` bytes, however the server's records cut them (one ``recv`` returns at most one record's)."""
    data = b""
    while len(data) < size:
        chunk = tls.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"the server ended after {len(data)} of {size} bytes")
        data += chunk
    return data


@contextmanager
def plain_http_on_the_tls_port(target: Target) -> Iterator[None]:
    for line in [b"GET /healthz", b"OPTIONS *", b"DELETE /", b"PATCH /", b"CONNECT 127.0.0.1:443"]:
        with connect(target) as sock:  # (OpenSSL itself recognises only some methods)
            sock.sendall(line + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = ended(sock)
        assert answer == PLAIN_HTTP_ANSWER, line
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.split(b"\r\n\r\n", 1)[1].count(b"\n") == 1  # one line of plain text
    yield


@contextmanager
def curl(target: Target) -> Iterator[None]:
    """curl, as a readiness probe uses it (``-k`` on TLS: it ends with close_notify)."""
    path = "/healthz" if target.answer == b"HTTP/1.1 200" else "/"
    result = run_client(["curl", "-sk", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
                         f"{target.scheme}://127.0.0.1:{target.port}{path}"])
    assert result.returncode == 0, result.stderr
    assert result.stdout in {b"200", b"400", b"426"}, result.stdout
    yield


# Behaviours on a plain port -----------------------------------------------------------------------------------


@contextmanager
def fin_in_the_middle_of_a_request(target: Target) -> Iterator[None]:
    with connect(target) as sock:
        sock.sendall(target.request[: len(target.request) // 2])
        sock.shutdown(socket.SHUT_WR)
        ended(sock)
    yield


@contextmanager
def reset_in_the_middle_of_a_request(target: Target) -> Iterator[None]:
    sock = connect(target)
    sock.sendall(target.request[: len(target.request) // 2])
    time.sleep(0.1)
    reset(sock)
    yield


@contextmanager
def half_a_request_that_stalls(target: Target) -> Iterator[None]:
    with connect(target) as sock:
        sock.sendall(target.request[: len(target.request) // 2])
        yield


@contextmanager
def tls_hello_on_the_plain_port(target: Target) -> Iterator[None]:
    client = ssl.create_default_context().wrap_bio(ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(),
                                                  server_hostname="127.0.0.1")
    with suppress(ssl.SSLWantReadError):
        client.do_handshake()
    with connect(target) as sock:
        sock.sendall(outgoing.read())
        answer = ended(sock)
    assert answer.startswith(b"HTTP/1.1 400 "), answer
    yield


TLS_BEHAVIOURS: list[Behaviour] = [
    close_notify_then_fin, close_notify_and_keep_the_socket_open, fin_without_close_notify,
    reset_in_the_middle_of_a_record, half_a_client_hello_that_stalls, _polite_with(ssl.TLSVersion.TLSv1_2),
    _polite_with(ssl.TLSVersion.TLSv1_3), renegotiation, key_update, openssl_s_client, python_ssl_with_unwrap,
    plain_http_on_the_tls_port, curl,
]
PLAIN_BEHAVIOURS: list[Behaviour] = [
    fin_in_the_middle_of_a_request, reset_in_the_middle_of_a_request, half_a_request_that_stalls,
    tls_hello_on_the_plain_port, curl,
]


def _name(behaviour: Behaviour) -> str:
    return getattr(behaviour, "__name__", "behaviour").replace("_", "-")


CASES = [
    pytest.param(server, tls, behaviour, id=f"{server}-{'tls' if tls else 'plain'}-{_name(behaviour)}")
    for server in SERVERS
    for tls, behaviours in ((True, TLS_BEHAVIOURS), (False, PLAIN_BEHAVIOURS))
    for behaviour in behaviours
]


# The checks ---------------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def assert_idle(server: ServerProcess) -> None:
    time.sleep(SETTLE)  # the client's own ending (a close, a reset) is work the server may still be doing
    before = cpu_seconds(server.process.pid)
    time.sleep(IDLE_WINDOW)
    used = cpu_seconds(server.process.pid) - before
    assert used < IDLE_SHARE * IDLE_WINDOW, f"{used:.2f} s of CPU in {IDLE_WINDOW} s:\n" + "".join(server.log)


def assert_serving(page: Target, socket_port: Target) -> None:
    sock = connect(page)
    with sock if page.context is None else page.context.wrap_socket(sock, server_hostname="127.0.0.1") as stream:
        stream.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = read_until_closed(stream, timeout=TIMEOUT)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert answer.endswith(b"\r\n\r\nok\n"), answer
    scheme = "ws" if socket_port.context is None else "wss"
    options = {} if socket_port.context is None else {"ssl": socket_port.context}
    with ChatClient(f"{scheme}://127.0.0.1:{socket_port.port}/", **options) as client:
        assert client.init()["type"] == "init"


def assert_drains(server: ServerProcess) -> None:
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=DRAIN_TIMEOUT + SLACK + 5) == 0, "".join(server.log)
    assert time.monotonic() - signalled < DRAIN_TIMEOUT + SLACK


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def test_the_real_clients_are_here() -> None:
    for program in ("curl", "openssl"):
        assert shutil.which(program), f"{program} is needed by the rude-client matrix"


@pytest.mark.parametrize(("server_kind", "tls", "behaviour"), CASES)
def test_after_a_rude_client_the_server_is_idle_serving_and_stoppable(
    server_kind: str, tls: bool, behaviour: Behaviour, certificate: Certificate
) -> None:
    args = [*SERVERS[server_kind], "--http-port", "0", "--ws-port", "0", "--db", ":memory:",
            "--drain-timeout", str(DRAIN_TIMEOUT), "--handshake-timeout", "10"]
    context = None
    if tls:
        args += ["--tls-cert", str(certificate.files.certificate), "--tls-key", str(certificate.files.key)]
        context = certificate.client_context()
    with server_process(*args) as server, ExitStack() as held:
        page = Target(server.http_port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"HTTP/1.1 200",
                      context)
        socket_port = Target(server.ws_port, handshake_request("127.0.0.1", server.ws_port), b"HTTP/1.1 101",
                             context)
        for target in (page, socket_port):
            held.enter_context(behaviour(target))
        assert_idle(server)
        assert_serving(page, socket_port)
        assert_drains(server)
        assert "Traceback" not in "".join(server.log)
