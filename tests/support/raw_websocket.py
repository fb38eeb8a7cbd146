"""A deliberately minimal WebSocket client on a plain socket, for clients that misbehave."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True, rsv: int = 0) -> bytes:
    """One client frame, masked with a random key as RFC 6455 requires (unless told not to)."""
    mask = os.urandom(4) if masked else b""
    header = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if masked else 0
    length = len(payload)
    if length < 126:
        header += bytes([mask_bit | length])
    elif length < 1 << 16:
        header += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        header += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if masked:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + payload


def open_raw(host: str, port: int, *, receive_buffer: int | None = None) -> socket.socket:
    """Connect and complete the opening handshake; returns the socket, ready for frames."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(5)
    sock.connect((host, port))
    sock.sendall(handshake_request(host, port))
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(1)
        assert chunk, "server closed during the handshake"
        response += chunk
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the TCP connection (or resets it)."""
    sock.settimeout(timeout)
    received = bytearray()
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return bytes(received)


def handshake_request(host: str, port: int, *, origin: str | None = None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET / HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """One server frame (servers do not mask): its opcode and payload."""
    head = _read_exactly(sock, 2)
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", _read_exactly(sock, 2))[0]
    elif length == 127:
        length = struct.unpack("!Q", _read_exactly(sock, 8))[0]
    return opcode, _read_exactly(sock, length)


def close_code(sock: socket.socket) -> int:
    """Skip data frames until the server's close frame; return its code."""
    while True:
        opcode, payload = read_frame(sock)
        if opcode == 0x8:
            return int(struct.unpack("!H", payload[:2])[0])


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("server closed the connection")
        data += chunk
    return data


def raw_handshake(
    *extra: str, target: str = "/", host: str = "127.0.0.1", version: str = "13", line: str | None = None
) -> bytes:
    """A WebSocket handshake request with ``extra`` header lines (or another request ``line``), as bytes."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [line or f"GET {target} HTTP/1.1", f"Host: {host}", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {key}", f"Sec-WebSocket-Version: {version}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def exchange(port: int, request: bytes) -> bytes:
    """Send ``request`` to the server on ``port``, then read everything until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        return read_until_closed(sock, timeout=10)


def answer_to_init_sent_with_the_handshake(port: int, request: bytes) -> dict[str, object]:
    """Send a handshake and an ``init`` frame in one write, before any answer: the server's answer to the init."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request + client_frame(0x1, b'{"type": "init"}'))
        response = b""
        while b"\r\n\r\n" not in response:
            response += sock.recv(1)
        assert response.startswith(b"HTTP/1.1 101 "), response
        opcode, payload = read_frame(sock)
        assert opcode == 0x1
        event = json.loads(payload)
        assert isinstance(event, dict)
        return event
