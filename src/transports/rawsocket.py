"""Plain non-blocking sockets driven by anyio's readiness waits: nothing between us and the kernel.

The same code runs on trio, asyncio and uvloop, and a connection costs a
socket and a task, no stream objects.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Awaitable, Callable

import anyio
import anyio.abc

BACKLOG = 1024


class RawSocket:
    """One accepted connection."""

    __slots__ = ("address", "remote", "sock")

    def __init__(self, sock: socket.socket, address: str, remote: str) -> None:
        self.sock = sock
        self.address = address
        """The client's IP address."""
        self.remote = remote
        """``host:port`` of the client, for log lines."""

    async def receive(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes``; ``b""`` once the peer has closed or reset the connection."""
        await anyio.wait_readable(self.sock)
        while True:
            try:
                return self.sock.recv(max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(self.sock)
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

    def close(self) -> None:
        self.sock.close()


async def serve_raw_tcp(
    handler: Callable[[RawSocket], Awaitable[None]],
    host: str,
    port: int,
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Call ``handler`` for each connection to ``host:port`` until cancelled; reports the bound port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family, backlog=BACKLOG)
    listener.setblocking(False)
    with listener:
        task_status.started(listener.getsockname()[1])
        async with anyio.create_task_group() as connections:
            while True:
                await anyio.wait_readable(listener)
                while True:  # take every connection that is waiting
                    try:
                        sock, peer = listener.accept()
                    except (BlockingIOError, ConnectionAbortedError):
                        break
                    except OSError:  # out of file descriptors, say: let the backlog wait
                        await anyio.sleep(0.1)
                        break
                    connections.start_soon(_run, handler, sock, peer)


async def _run(handler: Callable[[RawSocket], Awaitable[None]], sock: socket.socket, peer: tuple[str, int]) -> None:
    sock.setblocking(False)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    host, port = peer[0], peer[1]
    remote = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        await handler(RawSocket(sock, host, remote))
    finally:
        sock.close()
