"""TLS in a connection's own path (`TlsSocket`): a real TLS client on the other end of a socket pair.

The server side runs under trio with our epoll readiness (edge-triggered): a
read that leaves deciphered bytes or whole records behind and then waits would
hang here, and `trio.fail_after` turns that into a failure.
"""

from __future__ import annotations

import itertools
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

from certificates import Certificate, make_certificate
from transports.net.rawsocket import RawSocket, raw_socket
from transports.net.tls import PLAIN_HTTP_ANSWER, SLICE, TlsServer, TlsSocket

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


class Client:
    """A blocking TLS client over memory buffers: what it sends, and when, is the test's to choose."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self.sock = sock
        sock.settimeout(TIMEOUT)
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._in, self._out, server_hostname="127.0.0.1")
        self.wire = b""
        """Everything received, as it came."""

    def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self.sock.sendall(self._out.read())
                self._receive()
                continue
            self.sock.sendall(self._out.read())
            return

    def records(self, data: bytes) -> bytes:
        """``data`` encrypted, not sent."""
        self.tls.write(data)
        return self._out.read()

    def read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            try:
                data += self.tls.read(size - len(data))
            except ssl.SSLWantReadError:
                self._receive()
        return data

    def read_close_notify(self) -> None:
        """Read until the server's close_notify; fails on anything else."""
        while True:
            try:
                assert self.tls.read(1) == b""
                return
            except ssl.SSLWantReadError:
                self._receive()

    def _receive(self) -> None:
        data = self.sock.recv(65536)
        self.wire += data
        if not data:
            self._in.write_eof()
        self._in.write(data)


def serve(
    certificate: Certificate,
    server: Callable[[RawSocket], Awaitable[None]],
    client: Callable[[socket.socket], None],
) -> None:
    """Run ``server`` on one end of a socket pair (a `TlsSocket`) and ``client`` on the other, in a thread."""
    tls = TlsServer.load(certificate.files)

    async def main() -> None:
        ours, theirs = socket.socketpair()
        raw = raw_socket(ours, ("127.0.0.1", 1), tls)
        try:
            with trio.fail_after(TIMEOUT):
                async with trio.open_nursery() as tasks:
                    tasks.start_soon(trio.to_thread.run_sync, client, theirs)
                    await server(raw)
        finally:
            raw.close()
            theirs.close()

    trio.run(main)


async def receive_exactly(raw: RawSocket, size: int, max_bytes: int = 65536) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await raw.receive(max_bytes)
        assert chunk, "the connection ended early"
        data += chunk
    return data


def test_a_connection_makes_its_tls_state_only_when_the_client_sends_something(certificate: Certificate) -> None:
    ours, theirs = socket.socketpair()
    try:
        async def made() -> RawSocket:
            return raw_socket(ours, ("127.0.0.1", 1), TlsServer.load(certificate.files))

        raw = trio.run(made)
        assert isinstance(raw, TlsSocket)
        assert raw._tls is None
    finally:
        ours.close()
        theirs.close()


@pytest.mark.parametrize("max_bytes", [65536, 1000, 1])
def test_plaintext_both_ways_whatever_the_records_and_segments(certificate: Certificate, max_bytes: int) -> None:
    # 300 kB: many records, more than one read of any size (30 kB a byte at a time: a read per byte is slow)
    message = bytes(range(256)) * (1200 if max_bytes > 1 else 120)
    answer = b"answer " * 5000

    async def server(raw: RawSocket) -> None:
        assert await receive_exactly(raw, len(message), max_bytes) == message
        await raw.send_all(answer)

    def client(sock: socket.socket) -> None:
        tls = Client(sock, certificate.client_context())
        tls.handshake()
        wire = b"".join(tls.records(message[i : i + 1500]) for i in range(0, len(message), 1500))
        cuts = [0, 1, 6, 7, 4000, 4001, *[cut for cut in (20000, 70000, 200000) if cut < len(wire)], len(wire)]
        # (a record's header cut, a record cut, many whole)
        for start, end in itertools.pairwise(cuts):
            sock.sendall(wire[start:end])
        assert tls.read(len(answer)) == answer

    serve(certificate, server, client)


def test_a_read_that_fills_up_before_its_last_slice_is_read_again(certificate: Certificate) -> None:
    """Two records whose plaintext is the read's size end on a slice's edge, with a third record behind them.

    The first record's start came in an earlier read (TLS holds it), so the
    socket gave less than the read's size: only the bytes left in TLS's buffer
    say that the third record is there.
    """
    size = 9000

    async def server(raw: RawSocket) -> None:
        assert await receive_exactly(raw, size + 100, max_bytes=size) == b"a" * 5000 + b"b" * 4000 + b"c" * 100

    def client(sock: socket.socket) -> None:
        tls = Client(sock, certificate.client_context())
        tls.handshake()
        first, second, third = tls.records(b"a" * 5000), tls.records(b"b" * 4000), tls.records(b"c" * 100)
        early = len(first) + len(second) - 2 * SLICE  # so that the second record ends where a slice does
        assert len(third) < early < len(first)
        sock.sendall(first[:early])
        time.sleep(0.3)  # (read by then: TLS holds the first record's start)
        rest = first[early:] + second + third
        assert len(rest) < size
        sock.sendall(rest)

    serve(certificate, server, client)


def test_what_arrives_with_the_handshakes_end_is_read(certificate: Certificate) -> None:
    async def server(raw: RawSocket) -> None:
        assert await receive_exactly(raw, 5) == b"hello"

    def client(sock: socket.socket) -> None:
        tls = Client(sock, certificate.client_context())
        while True:
            try:
                tls.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(tls._out.read())
                tls._receive()
        sock.sendall(tls._out.read() + tls.records(b"hello"))  # the client's Finished and data, in one segment

    serve(certificate, server, client)


def test_the_write_path_encrypts_in_order_and_close_sends_close_notify(certificate: Certificate) -> None:
    async def server(raw: RawSocket) -> None:
        assert await receive_exactly(raw, 2) == b"go"
        await raw.send_all(b"101 ")
        own: list[bytes] = []

        def output(records: bytes) -> None:  # (a WebSocket's write path sends them after what it sent)
            own.append(records)
            raw.sock.sendall(records)

        encrypt = raw.encryption(output)
        assert encrypt is not None
        for frame in (b"one ", b"two ", memoryview(b"three")):
            raw.sock.sendall(encrypt(frame))
        assert own == []  # nothing of TLS's own since
        raw.close()
        assert len(own) == 1  # close_notify

    def client(sock: socket.socket) -> None:
        tls = Client(sock, certificate.client_context())
        tls.handshake()
        sock.sendall(tls.records(b"go"))
        assert tls.read(17) == b"101 one two three"
        tls.read_close_notify()

    serve(certificate, server, client)


def record_sizes(wire: bytes) -> list[int]:
    sizes = []
    while wire:
        size = int.from_bytes(wire[3:5], "big")
        sizes.append(size)
        wire = wire[5 + size:]
    return sizes


def test_a_large_write_goes_through_tls_a_slice_at_a_time(certificate: Certificate) -> None:
    """A 60 kB history goes out in records of a slice each, the HTTP stage's way and the write path's."""
    history = bytes(range(256)) * 240

    async def server(raw: RawSocket) -> None:
        assert await receive_exactly(raw, 2) == b"go"
        await raw.send_all(history)  # the HTTP stage
        encrypt = raw.encryption(raw.sock.sendall)
        assert encrypt is not None
        raw.sock.sendall(encrypt(history))  # the WebSocket's write path

    def client(sock: socket.socket) -> None:
        tls = Client(sock, certificate.client_context())
        tls.handshake()
        sock.sendall(tls.records(b"go"))
        start = len(tls.wire)
        assert tls.read(2 * len(history)) == 2 * history
        sizes = record_sizes(tls.wire[start:])
        assert len(sizes) >= 2 * len(history) // SLICE
        assert max(sizes) <= SLICE + 256, sizes  # (a record's own bytes: at most 256 more than its plaintext)

    serve(certificate, server, client)


def test_a_plain_http_request_is_told_in_plain_text_and_ends(certificate: Certificate) -> None:
    async def server(raw: RawSocket) -> None:
        assert await raw.receive(65536) == b""

    def client(sock: socket.socket) -> None:
        sock.settimeout(TIMEOUT)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
            if answer == PLAIN_HTTP_ANSWER:
                return
        raise AssertionError(answer)

    serve(certificate, server, client)


def test_a_broken_handshake_gets_an_alert_and_ends(certificate: Certificate, caplog: pytest.LogCaptureFixture) -> None:
    async def server(raw: RawSocket) -> None:
        assert await raw.receive(65536) == b""
        with pytest.raises(ConnectionResetError):
            await raw.send_all(b"nothing")

    def client(sock: socket.socket) -> None:
        sock.settimeout(TIMEOUT)
        sock.sendall(b"\x16\x03\x01\x00\x05hello")  # a handshake record that holds no ClientHello
        assert sock.recv(1) == b"\x15"  # an alert

    with caplog.at_level("INFO", logger="transports.net.tls"):
        serve(certificate, server, client)
    assert "TLS handshake failed" in caplog.text


def test_a_client_gone_in_the_handshake_reads_as_the_end(certificate: Certificate, tmp_path: Path) -> None:
    async def server(raw: RawSocket) -> None:
        assert await raw.receive(65536) == b""
        assert await raw.receive(65536) == b""

    def client(sock: socket.socket) -> None:
        tls = Client(sock, certificate.client_context())
        try:
            tls.tls.do_handshake()
        except ssl.SSLWantReadError:
            sock.sendall(tls._out.read()[:50])
        sock.shutdown(socket.SHUT_WR)

    serve(certificate, server, client)


def test_an_answer_before_the_handshake_is_done_waits_for_it(certificate: Certificate) -> None:
    """A refusal sent before the client's handshake is done (a full server): it goes out once TLS is up."""
    async def server(raw: RawSocket) -> None:
        await raw.send_all(b"503 busy")
        raw.shutdown_write()
        assert await receive_exactly(raw, 4) == b"late"

    def client(sock: socket.socket) -> None:
        tls = Client(sock, certificate.client_context())
        tls.handshake()
        assert tls.read(8) == b"503 busy"
        tls.read_close_notify()
        sock.sendall(tls.records(b"late"))

    serve(certificate, server, client)


def test_connections_of_one_server_interleaved_each_get_their_own_records(certificate: Certificate) -> None:
    """A server's connections share the buffers TLS reads and writes records through: none may get another's.

    Eight clients take turns at every step (their handshakes' flights, a
    failed handshake among them, data cut across records, answers through
    `send_all` and through the write path, large and small, close_notify), so
    that each server-side call runs between calls of other connections.
    """
    tls = TlsServer.load(certificate.files)
    count = 8
    broken = 3  # this client sends garbage instead of a ClientHello

    def message(index: int) -> bytes:
        return bytes([65 + index]) * (300 + 2500 * index)  # some under a slice, some over

    async def server(raw: RawSocket, index: int) -> None:
        if index == broken:
            assert await raw.receive(65536) == b""
            return
        got = await receive_exactly(raw, len(message(index)), max_bytes=1000)
        assert got == message(index)
        await raw.send_all(got[:100])
        encrypt = raw.encryption(raw.sock.sendall)
        assert encrypt is not None
        raw.sock.sendall(encrypt(got))
        raw.close()

    def client(sock: socket.socket, index: int) -> None:
        if index == broken:
            sock.sendall(b"\x16\x03\x01\x00\x05hello")
            assert sock.recv(100)[:1] == b"\x15"  # an alert, its own
            return
        peer = Client(sock, certificate.client_context())
        peer.handshake()
        mine = message(index)
        wire = b"".join(peer.records(mine[start:start + 500]) for start in range(0, len(mine), 500))
        for start in range(0, len(wire), 3000):  # whole records and cut ones, more than a read takes
            sock.sendall(wire[start:start + 3000])
            time.sleep(0.01)  # (the others' pieces come between)
        expected = message(index)[:100] + message(index)
        assert peer.read(len(expected)) == expected
        peer.read_close_notify()

    async def main() -> None:
        pairs = [socket.socketpair() for _ in range(count)]
        raws = [raw_socket(ours, ("127.0.0.1", 1), tls) for ours, _ in pairs]
        try:
            with trio.fail_after(TIMEOUT):
                async with trio.open_nursery() as tasks:
                    for index, (_, theirs) in enumerate(pairs):
                        tasks.start_soon(trio.to_thread.run_sync, client, theirs, index)
                        tasks.start_soon(server, raws[index], index)
        finally:
            for raw, (_, theirs) in zip(raws, pairs, strict=True):
                raw.close()
                theirs.close()
        assert all(buffer.pending == 0 for buffer in tls._buffers)

    trio.run(main)
