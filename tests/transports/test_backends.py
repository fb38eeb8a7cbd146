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
    LogFailed,
    LoggedTalk,
    LogRequest,
    LogResult,
    NameSaved,
    Presence,
    Rename,
    Subscribe,
    UserAdded,
)
from chatcore.actions import Expire, Moderate
from chatcore.control import BANNED, LOCKED, Delete, Edit, End, Lock, Remove, RoomControl, SetRole, Title
from chatcore.memorylog import ENDED
from chatcore.results import ChangeArrived, Changed, Expired, LoggedChange, Refused
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
    assert {type(action) for action in [*SCRIPT, *CONTROL_SCRIPT]} == kinds(LogAction)


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


# Changes of rooms and retention: the same answers, and the same news of what retention erased

OWNER, MOD, BO = "o" * 64, "m" * 64, "b" * 64
CONTROL_SCRIPT: list[LogAction] = [
    Subscribe("c"), Subscribe("d"), Subscribe("e"),
    AddUser(1, "c", 5.0, token_hash=OWNER, name="Owner"),
    AddUser(2, "c", None, token_hash=MOD, name="Mo"),
    AddUser(3, "c", None, token_hash=BO, name="Bo"),
    Append(4, "c", 1, 6.0, "first", "Owner", "t1"),
    Append(5, "c", 2, 7.0, "second", "Mo", "t2"),
    Append(6, "c", 3, 8.0, "a distinctive secret", "Bo", "t3"),
    Moderate(7, "c", 2, 9.0, Edit(1, "not mine")),
    Moderate(8, "c", 1, 9.5, Edit(1, "first, edited")),
    Moderate(9, "c", 2, 10.0, Lock(True)),
    Moderate(10, "c", 1, 10.5, SetRole(2, True)),
    Moderate(11, "c", 2, 11.0, Delete(3)),
    Moderate(12, "c", 2, 11.5, Delete(3)),
    Moderate(13, "c", 2, 12.0, Edit(9, "nothing there")),
    Moderate(14, "c", 2, 12.5, Title("Math 7B")),
    Moderate(15, "c", 2, 13.0, Lock(True)),
    AddUser(16, "c", None, token_hash="n" * 64),
    AddUser(17, "c", None, resume_hash=BO),
    Moderate(18, "c", 2, 13.5, Remove(1)),
    Moderate(19, "c", 2, 14.0, Remove(3, ban=True)),
    AddUser(20, "c", None, resume_hash=BO),
    Moderate(21, "c", 1, 14.5, SetRole(3, True)),
    Moderate(22, "c", 1, 14.6, SetRole(5, True)),
    Append(23, "c", 1, 15.0, "first", "Owner", "t1"),
    Append(24, "c", 3, 15.5, "a distinctive secret", "Bo", "t3"),
    Load(25, "c", 10),
    History(26, "c", 4, 2),
    Fill("c", 1),
    Moderate(27, "c", 2, 16.0, End()),
    AddUser(28, "d", 1.0),
    Append(29, "d", 1, 2.0, "old"),
    Append(30, "d", 1, 50.0, "new"),
    AddUser(31, "e", 3.0),
    Expire(7.5),
    Load(32, "e", 5),
    History(33, "c", 10, 10),
    Load(34, "d", 5),
    Moderate(35, "c", 1, 17.0, End()),
    Load(36, "c", 5),
    AddUser(37, "c", None),
    Moderate(38, "c", 1, 18.0, Title(None)),
]
FIRST_EDITED = LoggedTalk("c", 1, 1, 6.0, "first, edited", "Owner", "t1", 9.5)
C2 = LoggedTalk("c", 2, 2, 7.0, "second", "Mo", "t2")
C3_DELETED = LoggedTalk("c", 3, 3, 8.0, None, None, "t3")
CONTROL_EXPECTED: list[Any] = [
    UserAdded(1, 1, False, "Owner"),
    UserAdded(2, 2, False, "Mo"),
    UserAdded(3, 3, False, "Bo"),
    Appended(4, LoggedTalk("c", 1, 1, 6.0, "first", "Owner", "t1")),
    Appended(5, C2),
    Appended(6, LoggedTalk("c", 3, 3, 8.0, "a distinctive secret", "Bo", "t3")),
    Refused(7, "you can only edit your own messages"),
    Changed(8, LoggedChange("c", 1, 3, 1, 9.5, Edit(1, "first, edited"), FIRST_EDITED)),
    Refused(9, "only the chat's owner and moderators can lock or unlock it"),
    Changed(10, LoggedChange("c", 2, 3, 1, 10.5, SetRole(2, True))),
    Changed(11, LoggedChange("c", 3, 3, 2, 11.0, Delete(3), C3_DELETED)),
    Refused(12, "that message was deleted"),
    Refused(13, "no such message in this chat"),
    Changed(14, LoggedChange("c", 4, 3, 2, 12.5, Title("Math 7B"))),
    Changed(15, LoggedChange("c", 5, 3, 2, 13.0, Lock(True))),
    Refused(16, LOCKED),
    UserAdded(17, 3, True, "Bo"),
    Refused(18, "the owner cannot be removed"),
    Changed(19, LoggedChange("c", 6, 3, 2, 14.0, Remove(3, ban=True))),
    Refused(20, BANNED),
    Refused(21, "that user is banned from this chat"),
    Refused(22, "no such user in this chat"),
    Appended(23, FIRST_EDITED, duplicate=True),
    Appended(24, C3_DELETED, duplicate=True),
    ("loaded", 25, 3, (FIRST_EDITED, C2, C3_DELETED),
     RoomControl("Math 7B", True, frozenset({2}), frozenset({3}), 6)),
    HistoryRead(26, (C2, C3_DELETED), True),
    ("filled", "c", 1, (C2, C3_DELETED)),
    Refused(27, "only the chat's owner can end it"),
    UserAdded(28, 1, False, None),
    Appended(29, LoggedTalk("d", 1, 1, 2.0, "old")),
    Appended(30, LoggedTalk("d", 2, 1, 50.0, "new")),
    UserAdded(31, 1, False, None),
    # Expire(7.5): c keeps its talks from 8.0 on, d from 50.0 on; e, quiet since 3.0, ends
    Loaded(32, None),
    HistoryRead(33, (C3_DELETED,), False),
    ("loaded", 34, 2, (LoggedTalk("d", 2, 1, 50.0, "new"),), RoomControl()),
    Changed(35, LoggedChange("c", 7, 3, 1, 17.0, End())),
    Loaded(36, None),
    LogFailed(37, "storage inconsistent"),
    Refused(38, ENDED),
]
RETENTION_NEWS = [Expired("c", 3), Expired("d", 2), ChangeArrived(LoggedChange("e", 1, 0, 0, 7.5, End()))]
CONTROL_ANSWERS = (UserAdded, Appended, Loaded, HistoryRead, Filled, Changed, Refused, LogFailed)


async def control_answers_of(
    backend: Backend, settled: Callable[[], bool] = lambda: True
) -> tuple[list[Any], list[Any]]:
    """The backend's answers to the control script in a form the backends share, and its news of retention.

    ``settled``: whether the backend is done with what it was given (a sweep in Redis takes its own time); the
    actions after an `Expire` go once it is.
    """
    results: list[LogResult] = []
    expiring = next(n for n, action in enumerate(CONTROL_SCRIPT) if isinstance(action, Expire)) + 1
    asked = 0
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(backend.run, results.append)
        with anyio.fail_after(10):
            for part in (CONTROL_SCRIPT[:expiring], CONTROL_SCRIPT[expiring:]):
                for action in part:
                    backend.submit(action)
                asked += sum(isinstance(action, LogRequest | Fill) for action in part)
                while not settled() or sum(isinstance(result, CONTROL_ANSWERS) for result in results) < asked:
                    await backend.flush()
                    await anyio.sleep(0.01)
            while sum(_retention(result) for result in results) < len(RETENTION_NEWS):  # noqa: ASYNC110 (a thread's news)
                await anyio.sleep(0.01)
        tasks.cancel_scope.cancel()
    shared: list[Any] = []
    for result in results:
        if isinstance(result, Loaded) and result.room is not None:
            room = result.room
            shared.append(("loaded", result.ticket, room.last_offset, room.talks, room.control))
        elif isinstance(result, Filled):
            shared.append(("filled", result.join_key, result.after, result.talks))
        elif isinstance(result, CONTROL_ANSWERS):
            shared.append(result)
    return shared, [result for result in results if _retention(result)]


def _retention(result: LogResult) -> bool:
    """News of retention: talks erased, or a room ended by the log (not a user)."""
    return isinstance(result, Expired) or (isinstance(result, ChangeArrived) and result.entry.by == 0)


@pytest.mark.trio
async def test_the_memory_backend_answers_the_control_script() -> None:
    answers, news = await control_answers_of(MemoryBackend(CoreLimits()))
    assert answers == CONTROL_EXPECTED
    assert news == RETENTION_NEWS


@pytest.mark.trio
async def test_the_redis_backend_answers_the_control_script(tmp_path: Path) -> None:
    with redis_server(tmp_path) as redis:
        broker = RedisBroker(RedisSettings(redis.url))
        await anyio.to_thread.run_sync(broker.log.open)
        try:
            answers, news = await control_answers_of(broker, lambda: not broker.sweeping)
            assert answers == CONTROL_EXPECTED
            assert sorted(news, key=repr) == sorted(RETENTION_NEWS, key=repr)  # (heard on three channels)
            keys = sorted(key.decode() if isinstance(key, bytes) else key for key in redis.client().keys("chat:*"))
            assert keys == [  # (ended: a day's record of the end)
                "chat:epoch", "chat:{c}:ended", "chat:{d}:moved", "chat:{d}:room",
                f"chat:{{d}}:sent:{broker.log.origin}", "chat:{d}:talks", "chat:{e}:ended",
            ]
        finally:
            broker.log.close()
