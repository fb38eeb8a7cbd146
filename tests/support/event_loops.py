"""Running an event loop from a sync test, whatever ran before it in the session."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable

import anyio


def run(main: Callable[[], Awaitable[object]], backend: str) -> None:
    """``anyio.run(main, backend=backend)`` on a thread of its own: once a browser test has run, Playwright's sync
    API keeps an asyncio loop running on the main thread, and asyncio refuses to start a second one there."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            anyio.run(main, backend=backend)
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=target, name=f"{backend} loop")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
