"""Task groups for what runs once per connection: trio's own nursery under trio, anyio's elsewhere.

anyio's task group on trio wraps every task it starts (a `TaskHandle` with a
cancel scope, an event and a coroutine of its own, about 1.2 KiB) and itself
(a task group object and a cancel scope around trio's): an idle connection
keeps all of it for life. A trio nursery does the same job without them, and
has the same face (`start_soon`, ``cancel_scope`` with ``deadline``,
``cancel`` and ``cancel_called``); anyio's is kept where trio is not running
(asyncio, uvloop).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import anyio
import sniffio
import trio


class Scope(Protocol):
    """What a connection asks of its task group's cancel scope."""

    deadline: float

    def cancel(self) -> None: ...

    @property
    def cancel_called(self) -> bool: ...


class TaskGroup(Protocol):
    """What a connection asks of a task group: starting tasks, and its cancel scope."""

    @property
    def cancel_scope(self) -> Scope: ...

    def start_soon(
        self, function: Callable[..., Coroutine[Any, Any, Any]], /, *args: Any, name: object = None
    ) -> object: ...


def open_task_group() -> AbstractAsyncContextManager[TaskGroup]:
    """A task group: trio's nursery when trio runs, else anyio's."""
    if sniffio.current_async_library() == "trio":
        return trio.open_nursery()
    return anyio.create_task_group()
