"""Plain non-blocking sockets driven by anyio's readiness waits: nothing between us and the kernel.

The same code runs on trio, asyncio and uvloop, and a connection costs a
socket and a task, no stream objects.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Protocol

import anyio
import anyio.lowlevel
import sniffio
import trio

from .readiness import Inline, current_readiness
from .tcp import format_remote


class WaitReadable(Protocol):
    """Waits until a socket may be readable; with ``inline``, the waiter may read meanwhile without waking."""

    def __call__(self, sock: socket.socket, inline: Inline | None = None) -> Awaitable[None]: ...


async def _wait_readable(sock: socket.socket, inline: Inline | None = None) -> None:
    """anyio's wait (asyncio, uvloop): it reads nothing inline."""
    await anyio.wait_readable(sock)


Cipher = Callable[[bytes | memoryview], bytes]
"""Encrypts what is written next on a TLS connection (`RawSocket.encryption`)."""


class RawSocket:
    """One accepted connection."""

    __slots__ = ("_full", "_wait_readable", "address", "port", "sock", "via")

    def __init__(self, sock: socket.socket, address: str, port: int, wait_readable: WaitReadable) -> None:
        self.sock = sock
        self.address = address
        """The client's IP address (once `forwarded_for` says so, the one a trusted proxy forwards for)."""
        self.port = port
        """The client's port (0 when a proxy forwards for the client: its port is not known)."""
        self._wait_readable = wait_readable
        self._full = False  # the last read filled its buffer: more may wait, which an edge-triggered wait misses
        self.via: str | None = None
        """``host:port`` of the trusted proxy the connection comes from, if it does."""

    @property
    def remote(self) -> str:
        """``host:port`` of the client, for log lines (``client via proxy:port`` through a trusted proxy)."""
        remote = format_remote(self.address, self.port)
        return remote if self.via is None else f"{remote} via {self.via}"

    def forwarded_for(self, client: str) -> None:
        """The connection comes from a trusted proxy for ``client``: from now on it is that client's."""
        self.via = format_remote(self.address, self.port)
        self.address, self.port = client, 0

    async def receive(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes``; ``b""`` once the client has closed or reset the connection."""
        while True:
            await self.wait_readable()
            data = self.receive_now(max_bytes)
            if data is not None:
                return data

    def wait_readable(self, inline: Inline | None = None) -> Awaitable[None]:
        """Wait until `receive_now` may have something (a checkpoint).

        `receive` in two steps, for a connection's read loop: awaited there, this
        adds no coroutine of its own to what every idle connection keeps. With
        ``inline`` (its read, which calls `receive_now`), the reading may be done
        meanwhile without waking the waiter, as long as ``inline`` says so.
        """
        if self._full:
            return anyio.lowlevel.checkpoint()
        return self._wait_readable(self.sock, inline)

    @property
    def backlog(self) -> bool:
        """Whether the last `receive_now` may have left something to read: read again before waiting."""
        return self._full

    def receive_now(self, max_bytes: int) -> bytes | None:
        """Up to ``max_bytes`` received; ``b""`` once the client has gone; None if nothing came (wait again)."""
        try:
            data = self.sock.recv(max_bytes)
        except BlockingIOError:
            self._full = False
            return None
        except OSError:
            return b""
        self._full = len(data) == max_bytes
        return data

    async def send_all(self, data: bytes) -> None:
        """Write everything, waiting for room; raises OSError if the client is gone."""
        view = memoryview(data)
        while view:
            with contextlib.suppress(BlockingIOError):
                view = view[self.sock.send(view) :]
            if view:
                await anyio.wait_writable(self.sock)

    def shutdown_write(self) -> None:
        """Send FIN: nothing more will be written."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def abort(self) -> None:
        """Make the coming close a reset, which frees what the kernel still holds for the connection."""
        abort_on_close(self.sock)

    def close(self) -> None:
        self.sock.close()

    def encryption(self, output: Callable[[bytes], None]) -> Cipher | None:
        """The cipher for what the caller writes to ``sock`` itself from now on: None, plain bytes are sent as they
        are (`tls.TlsSocket` has one)."""
        return None


class Secure(Protocol):
    """What makes an accepted connection a TLS one (`tls.TlsServer`)."""

    def accept(self, sock: socket.socket, address: str, port: int, wait_readable: WaitReadable) -> RawSocket:
        """``sock`` as a `RawSocket` that speaks TLS."""
        ...


def abort_on_close(sock: socket.socket | trio.socket.SocketType) -> None:
    """``SO_LINGER`` 0: closing ``sock`` resets the connection and drops its unsent data at once."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)


_LINGER_ZERO = struct.pack("ii", 1, 0)


def raw_socket(sock: socket.socket, remote_address: tuple[str, int], tls: Secure | None = None) -> RawSocket:
    """An accepted connection's socket as a `RawSocket` (non-blocking, no Nagle), a `tls.TlsSocket` with
    ``tls``; the caller closes it."""
    sock.setblocking(False)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    wait_readable: WaitReadable = _wait_readable
    if sniffio.current_async_library() == "trio":
        wait_readable = current_readiness().wait_readable  # one epoll registration per connection, not per wait
    if tls is not None:
        return tls.accept(sock, *remote_address, wait_readable)
    return RawSocket(sock, *remote_address, wait_readable)
