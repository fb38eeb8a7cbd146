"""TCP plumbing shared by the servers written on anyio."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import anyio.abc

STREAM_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError)
"""What reading or writing a stream raises when the peer has gone."""


async def serve_tcp(
    handler: Callable[[anyio.abc.SocketStream], Awaitable[None]],
    host: str,
    port: int,
    *,
    task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Call ``handler`` for each connection to ``host:port`` until cancelled; reports the bound port."""
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    async with listener:
        task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
        await listener.serve(handler)


def format_remote(address: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 address."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
