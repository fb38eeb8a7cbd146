"""What the stream-based servers share: the errors of a gone client, and how an address is written."""

from __future__ import annotations

import anyio

STREAM_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream, OSError)
"""What reading or writing a stream raises when the client has gone."""


def format_remote(address: str, port: int) -> str:
    """``host:port``, with brackets around an IPv6 address; the address alone for port 0 (not known)."""
    if not port:
        return address
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
