"""Listening sockets the server process owns: transports accept from them until the process says stop."""

from __future__ import annotations

import socket
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, Protocol

import anyio
import anyio.lowlevel

from .tasks import open_task_group

BACKLOG = 1024

Handler = Callable[[socket.socket, tuple[str, int]], Coroutine[Any, Any, None]]
"""Serves one accepted connection: its (blocking-mode) socket and the client's address and port."""


class Wrapper(Protocol):
    """What stands between the listener and every handler (`tls.TlsServer`): it serves the connection through it."""

    async def serve(self, handler: Handler, sock: socket.socket, remote_address: tuple[str, int]) -> None: ...


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
        self.tls: Wrapper | None = None
        """With TLS (``--tls-cert``), each connection goes through it: the handler sees plain bytes."""

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
        if self.tls is not None:
            handler = partial(self.tls.serve, handler)
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
