"""Scheduling a call on the running event loop from another thread, without waiting for it: trio or asyncio."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from typing import Any

import sniffio
import trio

LoopCall = Callable[..., None]
"""``call(function, *args)`` runs ``function(*args)`` on the event loop soon, in call order; safe from any thread."""


def loop_call() -> LoopCall:
    """The running loop's thread-safe "call soon": trio's token, or asyncio's ``call_soon_threadsafe``.

    anyio only offers the blocking ``from_thread.run_sync``, which would hold
    the calling thread until the loop gets round to it.
    """
    if sniffio.current_async_library() == "trio":
        return trio.lowlevel.current_trio_token().run_sync_soon
    loop = asyncio.get_running_loop()
    # A plain callback has no task for sniffio to find; anyio code it calls still needs to know the library.
    context = contextvars.copy_context()
    context.run(sniffio.current_async_library_cvar.set, "asyncio")

    def call(function: Callable[..., Any], *args: Any) -> None:
        loop.call_soon_threadsafe(function, *args, context=context)

    return call
