"""Listening sockets the server process owns: transports accept from them until the process says stop."""

from __future__ import annotations

import socket
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import anyio
import anyio.lowlevel
import sniffio

from .rawsocket import RawSocket, raw_socket
from .readiness import current_readiness
from .tasks import open_task_group
from .tls import TlsServer

BACKLOG = 1024

Handler = Callable[[socket.socket, tuple[str, int]], Coroutine[Any, Any, None]]
"""Serves one accepted connection: its (blocking-mode) socket and the client's address and port."""


class Listener:
    """One listening TCP socket.

    The process binds it (so a bind error is reported before anything runs)
    and gives it to a transport, whose `serve` accepts from it. `stop_accepting`
    ends the accepting only: connections already accepted go on, in their own
    task group, until they end or the caller of `serve` is cancelled.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.socket = sock
        self.port: int = sock.getsockname()[1]
        """The port bound (the one asked for, or the one the system picked for port 0)."""
        self._accepting = anyio.CancelScope()
        self.tls: TlsServer | None = None
        """With TLS (``--tls-cert``): what its connections are served with (`rawsocket.raw_socket` takes it)."""

    @classmethod
    def bind(cls, host: str, port: int, *, reuse_port: bool = False) -> Listener:
        """Listen on ``host:port`` (shared with other processes when ``reuse_port``); `OSError` if it cannot be had."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=BACKLOG, reuse_port=reuse_port)
        sock.setblocking(False)
        return cls(sock)

    def stop_accepting(self) -> None:
        """Accept no more connections and close the listening socket; those accepted carry on."""
        self._accepting.cancel()

    def close(self) -> None:
        """Close the socket of a listener that never served."""
        self.socket.close()

    async def serve(self, handler: Handler) -> None:
        """Call ``handler`` for each connection until stopped, then wait for the handlers to finish."""
        listener = self.socket
        task_name = f"connection to port {self.port}"  # one string for all (else each task makes its own)
        async with open_task_group() as connections:
            with self._accepting, listener:
                while True:
                    await anyio.wait_readable(listener)
                    while True:  # take every connection that is waiting
                        try:
                            sock, remote_address = listener.accept()
                        except (BlockingIOError, ConnectionAbortedError):
                            break
                        except OSError:  # out of file descriptors, say: let the backlog wait
                            await anyio.sleep(0.1)
                            break
                        connections.start_soon(handler, sock, remote_address, name=task_name)
                        # Each handler takes its first step (where it takes a connection slot) before the
                        # next one is started, so connections are admitted in the order they were accepted.
                        await anyio.lowlevel.checkpoint()


async def serve_raw_tcp(handler: Callable[[RawSocket], Coroutine[Any, Any, None]], listener: Listener) -> None:
    """Call ``handler`` with a `RawSocket` for each connection ``listener`` accepts, until it stops accepting.

    The socket is closed once the handler returns. Under trio that is the
    handler's own doing (`lifecycle.serve_connection` closes it, however the
    connection ends): a trio task runs its coroutine at least to its first
    checkpoint, so the handler's ``finally`` always runs, and no coroutine of
    ours around it stays with every idle connection.
    """
    if sniffio.current_async_library() == "trio":
        current_readiness()  # (its task starts with the server, not with the first connection)
        await listener.serve(partial(_start, handler, listener.tls))
    else:
        await listener.serve(partial(_run, handler, listener.tls))


def _start(
    handler: Callable[[RawSocket], Coroutine[Any, Any, None]],
    tls: TlsServer | None,
    sock: socket.socket,
    remote_address: tuple[str, int],
) -> Coroutine[Any, Any, None]:
    return handler(raw_socket(sock, remote_address, tls))


async def _run(
    handler: Callable[[RawSocket], Coroutine[Any, Any, None]],
    tls: TlsServer | None,
    sock: socket.socket,
    remote_address: tuple[str, int],
) -> None:
    raw = raw_socket(sock, remote_address, tls)
    try:
        await handler(raw)
    finally:
        raw.close()
