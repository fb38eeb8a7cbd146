"""Plain non-blocking sockets driven by anyio's readiness waits: nothing between us and the kernel.

The same code runs on trio, asyncio and uvloop, and a connection costs a
socket and a task, no stream objects.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
import sniffio
import trio

from .listener import Listener
from .tcp import format_remote

WaitReadable = Callable[[socket.socket], Awaitable[None]]


class RawSocket:
    """One accepted connection."""

    __slots__ = ("_wait_readable", "address", "port", "sock")

    def __init__(self, sock: socket.socket, address: str, port: int, wait_readable: WaitReadable) -> None:
        self.sock = sock
        self.address = address
        """The client's IP address."""
        self.port = port
        self._wait_readable = wait_readable

    @property
    def remote(self) -> str:
        """``host:port`` of the client, for log lines."""
        return format_remote(self.address, self.port)

    async def receive(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes``; ``b""`` once the peer has closed or reset the connection."""
        while True:
            await self._wait_readable(self.sock)
            try:
                return self.sock.recv(max_bytes)
            except BlockingIOError:
                continue
            except OSError:
                return b""

    async def send_all(self, data: bytes) -> None:
        """Write everything, waiting for room; raises OSError if the peer is gone."""
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


def abort_on_close(sock: socket.socket | trio.socket.SocketType) -> None:
    """``SO_LINGER`` 0: closing ``sock`` resets the connection and drops its unsent data at once."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)


_LINGER_ZERO = struct.pack("ii", 1, 0)


async def serve_raw_tcp(handler: Callable[[RawSocket], Awaitable[None]], listener: Listener) -> None:
    """Call ``handler`` with a `RawSocket` for each connection ``listener`` accepts, until it stops accepting."""
    wait_readable: WaitReadable = anyio.wait_readable
    if sniffio.current_async_library() == "trio":  # its own wait saves a coroutine frame per idle connection
        wait_readable = trio.lowlevel.wait_readable
    await listener.serve(partial(_run, handler, wait_readable))


async def _run(
    handler: Callable[[RawSocket], Awaitable[None]],
    wait_readable: WaitReadable,
    sock: socket.socket,
    peer: tuple[str, int],
) -> None:
    sock.setblocking(False)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        await handler(RawSocket(sock, peer[0], peer[1], wait_readable))
    finally:
        sock.close()

