"""Keepalive under overload: a client is judged by what it sent, not by how late the server read it.

The server process is stopped (SIGSTOP) right after it pinged its clients,
long past the ping timeout; the clients answer while it is stopped. When it
runs again, their pongs wait in the kernel behind a timer that has long
expired: none of them may be dropped as dead. A client that sends nothing
after a ping is still dropped.
"""

from __future__ import annotations

import json
import signal
import socket
import time

from processes import server_process
from raw_websocket import client_frame, open_raw, read_frame
from transports.config import Transport

CLIENTS = 20
PING, PONG, TEXT, CLOSE = 0x9, 0xA, 0x1, 0x8


def _next_frame(sock: socket.socket, wanted: int) -> bytes:
    """The payload of the next frame of kind ``wanted``, answering pings on the way."""
    while True:
        opcode, payload = read_frame(sock)
        if opcode == wanted:
            return payload
        if opcode == PING:
            sock.sendall(client_frame(PONG, payload))
        elif opcode == CLOSE:
            raise ConnectionError(f"closed by the server: {payload!r}")


def _joined(port: int) -> socket.socket:
    sock = open_raw("127.0.0.1", port)
    sock.sendall(client_frame(TEXT, json.dumps({"type": "init"}).encode()))
    assert json.loads(_next_frame(sock, TEXT))["type"] == "init"
    return sock


def test_an_overloaded_server_does_not_drop_clients_whose_pongs_it_has_not_read(transport: Transport) -> None:
    with server_process(
        "--transport", transport.value, "--http-port", "0", "--ws-port", "0", "--db", ":memory:",
        "--ping-interval", "1", "--ping-timeout", "2", "--log-level", "INFO",
    ) as server:
        clients = [_joined(server.ws_port) for _ in range(CLIENTS)]
        silent = _joined(server.ws_port)
        pings = [_next_frame(sock, PING) for sock in clients]  # every client has a ping outstanding
        server.process.send_signal(signal.SIGSTOP)
        try:
            for sock, payload in zip(clients, pings, strict=True):
                sock.sendall(client_frame(PONG, payload))  # answered at once; the server reads it late
            time.sleep(4)  # two ping timeouts
        finally:
            server.process.send_signal(signal.SIGCONT)
        # (At once: from here on the clients answer new pings as they come, as real ones do.)
        for number, sock in enumerate(clients):
            sock.sendall(client_frame(TEXT, json.dumps({"type": "talk", "payload": f"still here {number}"}).encode()))
            assert json.loads(_next_frame(sock, TEXT))["payload"] == f"still here {number}"
        # The control: a client that never answers is dropped (without a close frame: it is presumed dead).
        silent.settimeout(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                opcode, _ = read_frame(silent)
            except (ConnectionError, OSError):
                break
            assert opcode == PING, "the silent client should only be pinged, then dropped"
        else:
            raise AssertionError("a client that answered nothing was not dropped")
        for sock in [*clients, silent]:
            sock.close()
