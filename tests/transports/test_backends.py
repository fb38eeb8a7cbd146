"""The three backends of the room log take the same actions and answer them the same way.

One script holds every kind of log action (`chatcore.actions.LogAction`); each backend (memory,
SQLite through its worker thread, Redis through its broker, against a real redis-server) gets it
through ``submit``, as the hub hands it over, and its answers are compared: one per request, of the
same kind and with the same content, `Filled` for the fill, nothing for a notice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, get_args

import anyio
import pytest

from chatcore import (
    AddUser,
    Append,
    Appended,
    CoreLimits,
    Fill,
    Filled,
    Forget,
    History,
    HistoryRead,
    Load,
    Loaded,
    LogAction,
    LoggedTalk,
    LogResult,
    NameSaved,
    Presence,
    Rename,
    Subscribe,
    UserAdded,
)
from redis_server import redis_server
from transports.config import RedisSettings
from transports.storage.memory import MemoryBackend
from transports.storage.redisbroker import RedisBroker
from transports.storage.sqlite import Database
from transports.storage.worker import LogWorker

SCRIPT: list[LogAction] = [
    Subscribe("k"),
    AddUser(1, "k", 5.0, token_hash="h" * 64, name="Ada"),
    Presence("k", 1, True, "Ada"),
    Append(2, "k", 1, 6.0, "hello", "Ada", "t1"),
    Append(3, "k", 1, 7.0, "hello again", "Ada", "t1"),
    Append(4, "k", 1, 8.0, "second", "Ada", None),
    Rename(5, "k", 1, "Bea"),
    Load(6, "k", 10),
    History(7, "k", 3, 10),
    Fill("k", 1),
    Presence("k", 1, False, None),
    Forget("k"),
]
FIRST = LoggedTalk("k", 1, 1, 6.0, "hello", "Ada", "t1")
SECOND = LoggedTalk("k", 2, 1, 8.0, "second", "Ada", None)


def kinds(alias: Any) -> set[type]:
    """The classes a type alias of unions names."""
    args = get_args(alias)
    return set().union(*(kinds(arg) for arg in args)) if args else {alias}


def test_the_script_holds_every_kind_of_log_action() -> None:
    assert {type(action) for action in SCRIPT} == kinds(LogAction)


class Backend(Protocol):
    def submit(self, action: LogAction) -> None: ...
    async def run(self, deliver: Callable[[LogResult], None]) -> None: ...
    async def flush(self) -> None: ...


async def answers_of(backend: Backend) -> list[Any]:
    """What the backend answers to the script, news left out, in a form the backends share."""
    results: list[LogResult] = []
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(backend.run, results.append)
        for action in SCRIPT:  # (before the backend's task has run: the hub may do that too)
            backend.submit(action)
        with anyio.fail_after(10):
            while sum(isinstance(result, ANSWERS) for result in results) < len(EXPECTED):
                await backend.flush()
                await anyio.sleep(0.01)
        tasks.cancel_scope.cancel()
    shared: list[Any] = []
    for result in results:
        if isinstance(result, NameSaved):
            shared.append(("renamed", result.ticket))  # (a shared log also says which presence news it was)
        elif isinstance(result, Loaded):
            assert result.room is not None
            shared.append(("loaded", result.ticket, result.room.last_offset, result.room.talks))
        elif isinstance(result, UserAdded | Appended | HistoryRead | Filled):
            shared.append(result)
    return shared


ANSWERS = (UserAdded, Appended, NameSaved, Loaded, HistoryRead, Filled)
EXPECTED = [
    UserAdded(1, 1, False, "Ada"),
    Appended(2, FIRST),
    Appended(3, FIRST, duplicate=True),
    Appended(4, SECOND),
    ("renamed", 5),
    ("loaded", 6, 2, (FIRST, SECOND)),
    HistoryRead(7, (FIRST, SECOND), False),
    Filled("k", 1, (SECOND,)),
]


@pytest.mark.trio
async def test_the_memory_backend_answers_the_script() -> None:
    assert await answers_of(MemoryBackend(CoreLimits())) == EXPECTED


@pytest.mark.trio
async def test_the_sqlite_backend_answers_the_script(tmp_path: Path) -> None:
    database = Database.open(tmp_path / "chat.db")
    try:
        assert await answers_of(LogWorker(database)) == EXPECTED
    finally:
        database.close()


@pytest.mark.trio
async def test_the_redis_backend_answers_the_script(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis:
        broker = RedisBroker(RedisSettings(redis.url))
        await anyio.to_thread.run_sync(broker.log.open)
        try:
            assert await answers_of(broker) == EXPECTED
        finally:
            broker.log.close()
