"""The three backends of the room log take the same actions and answer them the same way.

One script holds every kind of log action (`chatcore.actions.LogAction`); each backend (memory,
SQLite through its worker thread, Redis through its broker, against a real redis-server) gets it
through ``submit``, as the hub hands it over, and its answers are compared: one per request, of the
same kind and with the same content, `Filled` for the fill, nothing for a notice.

A second script (`CONTROL_SCRIPT`) takes room control through each backend: changes judged and made or
refused, joins a lock or a ban refuses, retention and its news. A third (`SIGN_IN_SCRIPT`), joins of signed-in
users: one user per subject in a room, whatever token is presented. A fourth (`NAMES_SCRIPT`), the names signed-in
users hold, which unsigned users cannot take (on Redis, across processes too).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
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
    Typing,
    UserAdded,
    problems,
)
from chatcore.actions import Expire, Moderate
from chatcore.control import Delete, Edit, End, Lock, Remove, RoomControl, SetRole, Title
from chatcore.problems import BANNED, ENDED, LOCKED, TAKEN
from chatcore.results import ChangeArrived, Changed, Expired, LoggedChange, Refused
from redis_server import redis_server
from transports.config import RedisSettings
from transports.names import name_key
from transports.storage.memory import MemoryBackend
from transports.storage.redisbroker import RedisBroker
from transports.storage.sqlite import Database
from transports.storage.worker import LogWorker

SCRIPT: list[LogAction] = [
    Subscribe("k"),
    AddUser(1, "k", 5.0, token_hash="h" * 64, name="Ada"),
    Presence("k", 1, True, "Ada"),
    Typing("k", 1),
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


def test_the_scripts_hold_every_kind_of_log_action() -> None:
    assert {type(action) for action in [*SCRIPT, *STEPPED_SCRIPT, *CONTROL_SCRIPT]} == kinds(LogAction)


class Backend(Protocol):
    def submit(self, action: LogAction) -> None: ...
    async def run(self, deliver: Callable[[LogResult], None]) -> None: ...
    async def flush(self) -> None: ...


async def results_of(backend: Backend, steps: Sequence[Sequence[LogAction]], news: int = 0) -> list[LogResult]:
    """Everything the backend delivers for the script's steps, each submitted once the one before is answered
    (and its retention sweep done), and ``news`` pieces of retention's news.

    (A backend may answer a batch's reads after all of its writes: a step's reads come after its writes.)
    """
    results: list[LogResult] = []
    asked = 0
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(backend.run, results.append)
        for step in steps:
            for action in step:  # (the first step before the backend's task has run: the hub may do that too)
                backend.submit(action)
            asked += sum(isinstance(action, LogRequest | Fill) for action in step)
            with anyio.fail_after(10):
                while sum(isinstance(result, ANSWERS) for result in results) < asked or getattr(
                    backend, "sweeping", False
                ):  # (Redis sweeps for retention on a thread of its own)
                    await backend.flush()
                    await anyio.sleep(0.01)
        with anyio.fail_after(10):
            while sum(_retention(result) for result in results) < news:  # noqa: ASYNC110 (heard on channels)
                await anyio.sleep(0.01)
        tasks.cancel_scope.cancel()
    return results


async def answers_of(backend: Backend) -> list[Any]:
    """What the backend answers to the script, news left out, in a form the backends share."""
    results = await results_of(backend, [SCRIPT])
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


ANSWERS = (UserAdded, Appended, NameSaved, Loaded, HistoryRead, Filled, Changed, Refused, LogFailed)
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
    AddUser(28, "d", 8.3),  # (times grow as the talks are appended, as the server's clock does: SQLite relies on it)
    Append(29, "d", 1, 8.5, "old"),
    Append(30, "d", 1, 50.0, "new"),
    AddUser(31, "e", 8.6),
    Append(39, "c", 1, 9.0, "fourth", "Owner", None),
    Expire(8.7),
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
C4 = LoggedTalk("c", 4, 1, 9.0, "fourth", "Owner", None)
CONTROL_EXPECTED: list[Any] = [
    UserAdded(1, 1, False, "Owner"),
    UserAdded(2, 2, False, "Mo"),
    UserAdded(3, 3, False, "Bo"),
    Appended(4, LoggedTalk("c", 1, 1, 6.0, "first", "Owner", "t1")),
    Appended(5, C2),
    Appended(6, LoggedTalk("c", 3, 3, 8.0, "a distinctive secret", "Bo", "t3")),
    Refused(7, problems.EDIT_OWN_ONLY),
    Changed(8, LoggedChange("c", 1, 3, 1, 9.5, Edit(1, "first, edited"), FIRST_EDITED)),
    Refused(9, problems.STAFF_ONLY.format(doing="lock or unlock it")),
    Changed(10, LoggedChange("c", 2, 3, 1, 10.5, SetRole(2, True))),
    Changed(11, LoggedChange("c", 3, 3, 2, 11.0, Delete(3), C3_DELETED)),
    Refused(12, problems.MESSAGE_DELETED),
    Refused(13, problems.NO_SUCH_MESSAGE),
    Changed(14, LoggedChange("c", 4, 3, 2, 12.5, Title("Math 7B"))),
    Changed(15, LoggedChange("c", 5, 3, 2, 13.0, Lock(True))),
    Refused(16, LOCKED),
    UserAdded(17, 3, True, "Bo"),
    Refused(18, problems.REMOVE_OWNER),
    Changed(19, LoggedChange("c", 6, 3, 2, 14.0, Remove(3, ban=True))),
    Refused(20, BANNED),
    Refused(21, problems.BANNED_ROLE),
    Refused(22, problems.NO_SUCH_USER),
    Appended(23, FIRST_EDITED, duplicate=True),
    Appended(24, C3_DELETED, duplicate=True),
    ("loaded", 25, 3, (FIRST_EDITED, C2, C3_DELETED),
     RoomControl("Math 7B", True, frozenset({2}), frozenset({3}), 6)),
    HistoryRead(26, (C2, C3_DELETED), True),
    ("filled", "c", 1, (C2, C3_DELETED)),
    Refused(27, problems.OWNER_ONLY.format(doing="end it")),
    UserAdded(28, 1, False, None),
    Appended(29, LoggedTalk("d", 1, 1, 8.5, "old")),
    Appended(30, LoggedTalk("d", 2, 1, 50.0, "new")),
    UserAdded(31, 1, False, None),
    Appended(39, C4),
    # Expire(8.7): c keeps its talks from 9.0 on, d from 50.0 on; e, quiet since 8.6, ends
    Loaded(32, None),
    HistoryRead(33, (C4,), False),
    ("loaded", 34, 2, (LoggedTalk("d", 2, 1, 50.0, "new"),), RoomControl()),
    Changed(35, LoggedChange("c", 7, 4, 1, 17.0, End())),
    Loaded(36, None),
    LogFailed(37, "storage inconsistent"),
    Refused(38, ENDED),
]
RETENTION_NEWS = [Expired("c", 4), Expired("d", 2), ChangeArrived(LoggedChange("e", 1, 0, 0, 8.7, End()))]
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
async def test_the_sqlite_backend_answers_the_control_script(tmp_path: Path) -> None:
    async with backend_named("sqlite", tmp_path) as backend:
        answers, news = await control_answers_of(backend)
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


# Room control in steps: each step submitted once the one before it is answered (SQLite reads after a batch's
# writes), through every backend.

MO = "m" * 64  # the token hash of Mo, whom the owner bans
STEPPED_STEPS: list[list[LogAction]] = [[
    Subscribe("c"),
    AddUser(1, "c", 10.0, token_hash="o" * 64, name="Owner"),
    AddUser(2, "c", None, token_hash=MO, name="Mo"),
    AddUser(3, "c", None),  # a seed user: no token, no name
    Append(4, "c", 1, 11.0, "first", "Owner", "t1"),
    Append(5, "c", 2, 12.0, "second", "Mo", None),
    Append(6, "c", 3, 13.0, "third"),
    Moderate(7, "c", 2, 14.0, Edit(2, "second, edited")),
    Moderate(8, "c", 3, 14.0, Delete(1)),  # not its own, and not staff
    Moderate(9, "c", 1, 15.0, SetRole(3, True)),  # the seed user, which has no row of its own yet
    Moderate(10, "c", 3, 15.0, Delete(1)),
    Append(11, "c", 1, 15.5, "first again", "Owner", "t1"),  # a resent id: the deleted talk, a duplicate
    Moderate(12, "c", 3, 16.0, Title("Math 7B")),
    Moderate(13, "c", 3, 16.0, Lock(True)),
    AddUser(14, "c", None),  # a seed join
    AddUser(15, "c", None, token_hash="n" * 64, name="New"),
    AddUser(16, "c", None, token_hash="x" * 64, resume_hash=MO),  # a user of the room comes back
    Moderate(17, "c", 3, 17.0, Remove(1)),
    Moderate(18, "c", 1, 17.0, Remove(2, ban=True)),
    AddUser(19, "c", None, resume_hash=MO),
    Moderate(20, "c", 3, 18.0, Lock(False)),
    AddUser(21, "c", None),  # user id 4: the refused joins used none up
    Load(22, "c", 10),
    History(23, "c", 3, 10),
], [
    Subscribe("d"),
    AddUser(24, "d", 20.0),
    Append(25, "d", 1, 21.0, "old"),
    Subscribe("e"),
    AddUser(26, "e", 22.0),  # never talked in
    Append(27, "d", 1, 26.0, "new"),
    Append(28, "c", 4, 27.0, "fourth"),
    Expire(25.0),
], [
    Load(29, "c", 10),
    History(30, "d", 3, 10),
    Moderate(31, "d", 1, 31.0, Edit(1, "x")),  # erased by retention
], [
    Moderate(32, "d", 1, 31.0, End()),
    Moderate(33, "d", 1, 32.0, Title("too late")),
    Load(34, "d", 10),
    Load(35, "e", 10),
]]
STEPPED_SCRIPT = [action for step in STEPPED_STEPS for action in step]
EDITED = LoggedTalk("c", 2, 2, 12.0, "second, edited", "Mo", None, 14.0)
ERASED = LoggedTalk("c", 1, 1, 11.0, None, None, "t1")
THIRD = LoggedTalk("c", 3, 3, 13.0, "third")
FOURTH = LoggedTalk("c", 4, 4, 27.0, "fourth")
NEW = LoggedTalk("d", 2, 1, 26.0, "new")
STEPPED_CONTROL = RoomControl("Math 7B", False, frozenset({3}), frozenset({2}), 7)


def changed(ticket: int, join_key: str, seq: int, after: int, by: int, time: float, change: Any,
            talk: LoggedTalk | None = None) -> Changed:
    return Changed(ticket, LoggedChange(join_key, seq, after, by, time, change, talk))


STEPPED_EXPECTED: list[Any] = [
    UserAdded(1, 1, False, "Owner"),
    UserAdded(2, 2, False, "Mo"),
    UserAdded(3, 3),
    Appended(4, LoggedTalk("c", 1, 1, 11.0, "first", "Owner", "t1")),
    Appended(5, LoggedTalk("c", 2, 2, 12.0, "second", "Mo", None)),
    Appended(6, THIRD),
    changed(7, "c", 1, 3, 2, 14.0, Edit(2, "second, edited"), EDITED),
    Refused(8, problems.DELETE_OWN_ONLY),
    changed(9, "c", 2, 3, 1, 15.0, SetRole(3, True)),
    changed(10, "c", 3, 3, 3, 15.0, Delete(1), ERASED),
    Appended(11, ERASED, duplicate=True),
    changed(12, "c", 4, 3, 3, 16.0, Title("Math 7B")),
    changed(13, "c", 5, 3, 3, 16.0, Lock(True)),
    Refused(14, LOCKED),
    Refused(15, LOCKED),
    UserAdded(16, 2, True, "Mo"),
    Refused(17, problems.REMOVE_OWNER),
    changed(18, "c", 6, 3, 1, 17.0, Remove(2, ban=True)),
    Refused(19, BANNED),
    changed(20, "c", 7, 3, 3, 18.0, Lock(False)),
    UserAdded(21, 4),
    ("loaded", 22, 3, (ERASED, EDITED, THIRD), STEPPED_CONTROL),
    HistoryRead(23, (ERASED, EDITED), False),
    UserAdded(24, 1),
    Appended(25, LoggedTalk("d", 1, 1, 21.0, "old")),
    UserAdded(26, 1),
    Appended(27, NEW),
    Appended(28, FOURTH),
    Expired("c", 4),
    Expired("d", 2),
    ChangeArrived(LoggedChange("e", 1, 0, 0, 25.0, End())),
    ("loaded", 29, 4, (FOURTH,), STEPPED_CONTROL),
    HistoryRead(30, (NEW,), False),
    Refused(31, problems.NO_SUCH_MESSAGE),
    changed(32, "d", 1, 2, 1, 31.0, End()),
    Refused(33, ENDED),
    ("loaded", 34, None),
    ("loaded", 35, None),
]


def shared_stepped(results: list[LogResult]) -> list[Any]:
    """The script's answers and retention's news, in a form the backends share (Redis also tells a process its own
    changes again, on the rooms' channels: `_retention` keeps only the log's own news)."""
    shared: list[Any] = []
    for result in results:
        if isinstance(result, Expired | ChangeArrived) and not _retention(result):
            continue
        if isinstance(result, Loaded):
            room = result.room
            shared.append(("loaded", result.ticket, None) if room is None else
                          ("loaded", result.ticket, room.last_offset, room.talks, room.control))
        elif isinstance(result, UserAdded | Appended | HistoryRead | Changed | Refused | LogFailed | Expired |
                        ChangeArrived):
            shared.append(result)
    return shared


@asynccontextmanager
async def backend_named(name: str, tmp_path: Path) -> AsyncIterator[Backend]:
    if name == "memory":
        yield MemoryBackend(CoreLimits())
    elif name == "sqlite":
        database = Database.open(tmp_path / "chat.db")
        try:
            yield LogWorker(database)
        finally:
            database.close()
    else:
        with redis_server(tmp_path) as redis:
            broker = RedisBroker(RedisSettings(redis.url))
            await anyio.to_thread.run_sync(broker.log.open)
            try:
                yield broker
            finally:
                broker.log.close()


@pytest.mark.parametrize("name", ["memory", "sqlite", "redis"])
@pytest.mark.trio
async def test_the_backends_answer_the_script_in_steps(name: str, tmp_path: Path) -> None:
    async with backend_named(name, tmp_path) as backend:
        results = await results_of(backend, STEPPED_STEPS, news=sum(map(_retention, STEPPED_EXPECTED)))
    shared = shared_stepped(results)
    news = [result for result in shared if _retention(result)]  # (a shared log tells them in any order)
    assert [result for result in shared if not _retention(result)] == [
        result for result in STEPPED_EXPECTED if not _retention(result)
    ]
    assert sorted(news, key=repr) == sorted((result for result in STEPPED_EXPECTED if _retention(result)), key=repr)


# Signed-in users: one user per subject in a room (`chatcore.memorylog`, `_Room.user_of`), the subject first, then
# the resume token unless its user signed in as someone else.

ADA, BO, CY = "a" * 64, "b" * 64, "c" * 64  # the first token hash of each
SIGN_IN_SCRIPT: list[LogAction] = [
    Subscribe("s"),
    AddUser(1, "s", 5.0, token_hash=OWNER, name="Owner"),
    AddUser(2, "s", None, token_hash=ADA, name="Ada", subject="s-ada"),  # new: registered with its subject
    AddUser(3, "s", None, token_hash="2" * 64, name="Ada", subject="s-ada"),  # another device, no resume token
    AddUser(4, "s", None, token_hash=BO, name="Bo"),  # not signed in
    AddUser(5, "s", None, token_hash="3" * 64, resume_hash=BO, name="Ada L.", subject="s-ada"),  # not Bo: Ada
    AddUser(6, "s", None, token_hash="4" * 64, resume_hash=BO, name="Bo", subject="s-bo"),  # a new user: a resume
    # token never makes an identity (one left on a shared computer must not hand its user to the next sign-in)
    AddUser(7, "s", None, token_hash="5" * 64, subject="s-bo"),  # Bo on another device
    AddUser(8, "s", None, token_hash=CY, resume_hash=ADA, name="Cy", subject="s-cy"),  # Ada's token: a new user
    AddUser(9, "s", None, token_hash="6" * 64, resume_hash=ADA),  # Ada's token, not signed in: Ada
    Append(20, "s", 2, 5.5, "signed", "Ada L.", "a1", verified=True),  # a signed-in user's talks say so
    Append(21, "s", 1, 5.6, "anonymous", "Owner", "o1"),
    Append(22, "s", 2, 5.7, "signed, no name", verified=True),
    Moderate(23, "s", 2, 5.8, Edit(1, "signed, edited")),  # an edit keeps it
    Moderate(24, "s", 1, 5.9, Delete(3)),  # a delete erases it with the text
    Moderate(10, "s", 1, 6.0, Remove(2, ban=True)),
    AddUser(11, "s", None, token_hash="7" * 64, subject="s-ada"),  # the ban holds for the subject
    AddUser(12, "s", None, token_hash="8" * 64, resume_hash=CY, subject="s-ada"),  # whatever token it presents
    Moderate(13, "s", 1, 7.0, Lock(True)),
    AddUser(14, "s", None, token_hash="9" * 64, subject="s-bo"),  # a user of the room comes back
    AddUser(15, "s", None, token_hash="0" * 64, subject="s-dee"),  # a new one does not
    AddUser(17, "s", None, token_hash="a" * 64, resume_hash=BO),  # Bo's token alone: the unsigned user it was
    Load(16, "s", 0),
    History(25, "s", 10, 10),
    Load(26, "s", 10),
]
SIGNED_TALK = LoggedTalk("s", 1, 2, 5.5, "signed, edited", "Ada L.", "a1", edited=5.8, verified=True)
ANONYMOUS_TALK = LoggedTalk("s", 2, 1, 5.6, "anonymous", "Owner", "o1")
ERASED_TALK = LoggedTalk("s", 3, 2, 5.7, None)
SIGNED_IN_CONTROL = RoomControl(None, True, frozenset(), frozenset({2}), 4)
SIGN_IN_EXPECTED: list[Any] = [
    UserAdded(1, 1, False, "Owner"),
    UserAdded(2, 2, False, "Ada", verified=True),
    UserAdded(3, 2, True, "Ada", verified=True),
    UserAdded(4, 3, False, "Bo"),
    UserAdded(5, 2, True, "Ada L.", verified=True),
    UserAdded(6, 4, False, "Bo", verified=True),
    UserAdded(7, 4, True, "Bo", verified=True),
    UserAdded(8, 5, False, "Cy", verified=True),
    UserAdded(9, 2, True, "Ada L.", verified=True),  # a signed-in user, resumed by its token alone
    Appended(20, LoggedTalk("s", 1, 2, 5.5, "signed", "Ada L.", "a1", verified=True)),
    Appended(21, LoggedTalk("s", 2, 1, 5.6, "anonymous", "Owner", "o1")),
    Appended(22, LoggedTalk("s", 3, 2, 5.7, "signed, no name", verified=True)),
    changed(23, "s", 1, 3, 2, 5.8, Edit(1, "signed, edited"), SIGNED_TALK),
    changed(24, "s", 2, 3, 1, 5.9, Delete(3), ERASED_TALK),
    changed(10, "s", 3, 3, 1, 6.0, Remove(2, ban=True)),
    Refused(11, BANNED),
    Refused(12, BANNED),
    changed(13, "s", 4, 3, 1, 7.0, Lock(True)),
    UserAdded(14, 4, True, "Bo", verified=True),
    Refused(15, LOCKED),
    UserAdded(17, 3, True, "Bo"),
    ("loaded", 16, 3, (), SIGNED_IN_CONTROL),
    HistoryRead(25, (SIGNED_TALK, ANONYMOUS_TALK, ERASED_TALK), False),
    ("loaded", 26, 3, (SIGNED_TALK, ANONYMOUS_TALK, ERASED_TALK), SIGNED_IN_CONTROL),
]


@pytest.mark.parametrize("name", ["memory", "sqlite", "redis"])
@pytest.mark.trio
async def test_the_backends_keep_one_user_per_subject(name: str, tmp_path: Path) -> None:
    async with backend_named(name, tmp_path) as backend:
        results = await results_of(backend, [SIGN_IN_SCRIPT])
    assert shared_stepped(results) == SIGN_IN_EXPECTED


# Names signed-in users hold (`chatcore.memorylog`, `_Room.holds`): an unsigned user may not take one, by a join or a
# rename, whatever case or look-alike letters it is spelt with; a signed-in user's name is its sign-in's.

def named(ticket: int, name: str, **fields: Any) -> AddUser:
    """A join into room "n" with ``name`` and its key (Unicode's confusables skeleton, as the server computes it)."""
    return AddUser(ticket, "n", fields.pop("created", None), name=name, name_key=name_key(name), **fields)


def renamed(ticket: int, user_id: int, name: str) -> Rename:
    return Rename(ticket, "n", user_id, name, name_key(name))


T = [f"{n:x}" * 64 for n in range(16)]  # token hashes
NAMES_SCRIPT: list[LogAction] = [
    Subscribe("n"),
    named(1, "Owner", created=5.0, token_hash=T[0]),
    named(2, "Ada", token_hash=T[1], subject="s-ada"),  # holds "Ada"
    named(3, "Bo", token_hash=T[2]),  # not signed in: holds nothing
    named(4, "\u0391da", token_hash=T[3]),  # a Greek capital alpha
    named(5, "ADA", token_hash=T[4]),
    renamed(6, 3, "\uff41\uff44\uff41"),  # Bo, to a fullwidth "ada"
    renamed(7, 3, "Bob"),
    named(8, "ada", token_hash=T[5], resume_hash=T[2]),  # Bo's own token, with a name held
    AddUser(9, "n", None, token_hash=T[6], resume_hash=T[2]),  # Bo's own token alone: its name
    named(10, "Mallory", token_hash=T[7], resume_hash=T[1]),  # Ada's token without her sign-in: Ada, named so still
    renamed(11, 3, "Mallory"),  # nobody holds it
    named(12, "Ada Lovelace", token_hash=T[8], subject="s-ada"),  # her sign-in renames her: "Ada" is free again
    named(13, "ada", token_hash=T[9]),
    renamed(14, 3, "ADA LOVELACE"),
    named(15, "Cy", token_hash=T[10], subject="s-cy"),
    named(16, "Ada Lovelace", token_hash=T[11], subject="s-twin"),  # a namesake: signed-in users are never refused
    named(17, "Ada", token_hash=T[12], subject="s-ada"),  # "Ada" again: user 4 keeps the name it took meanwhile
    renamed(18, 4, "ada lovelace"),  # Ada left that name, her namesake holds it still
    named(19, "Cy", token_hash=T[13], resume_hash=T[9]),  # user 4's own token, with Cy's name
    AddUser(20, "n", None, token_hash=T[14], resume_hash=T[9]),  # user 4 by its token alone: "ada", kept
    renamed(21, 2, "Ada L."),  # (the core refuses a signed-in user's rename; the log keeps it, and her key moves)
    renamed(22, 3, "ada"),
]
NAMES_EXPECTED: list[Any] = [
    UserAdded(1, 1, False, "Owner"),
    UserAdded(2, 2, False, "Ada", verified=True),
    UserAdded(3, 3, False, "Bo"),
    Refused(4, TAKEN),
    Refused(5, TAKEN),
    Refused(6, TAKEN),
    ("renamed", 7),
    Refused(8, TAKEN),
    UserAdded(9, 3, True, "Bob"),
    UserAdded(10, 2, True, "Ada", verified=True),
    ("renamed", 11),
    UserAdded(12, 2, True, "Ada Lovelace", verified=True),
    UserAdded(13, 4, False, "ada"),
    Refused(14, TAKEN),
    UserAdded(15, 5, False, "Cy", verified=True),
    UserAdded(16, 6, False, "Ada Lovelace", verified=True),
    UserAdded(17, 2, True, "Ada", verified=True),
    Refused(18, TAKEN),
    Refused(19, TAKEN),
    UserAdded(20, 4, True, "ada"),
    ("renamed", 21),
    ("renamed", 22),
]


def shared_names(results: Sequence[LogResult]) -> list[Any]:
    """Answers in a form the backends share (a shared log's `NameSaved` also says which presence news it was)."""
    return [("renamed", result.ticket) if isinstance(result, NameSaved) else result
            for result in results if isinstance(result, ANSWERS)]


@pytest.mark.parametrize("name", ["memory", "sqlite", "redis"])
@pytest.mark.trio
async def test_the_backends_keep_the_names_signed_in_users_hold(name: str, tmp_path: Path) -> None:
    async with backend_named(name, tmp_path) as backend:
        results = await results_of(backend, [NAMES_SCRIPT])
    assert shared_names(results) == NAMES_EXPECTED


@pytest.mark.trio
async def test_processes_sharing_redis_keep_the_same_names_held(tmp_path: Path) -> None:
    """What one process's signed-in user holds, another process's unsigned users cannot take, at once."""
    steps: list[tuple[int, LogAction]] = [
        (0, Subscribe("n")), (1, Subscribe("n")),
        (0, named(1, "Owner", created=5.0, token_hash=T[0])),
        (1, named(2, "Bo", token_hash=T[1])),
        (0, named(3, "Ada", token_hash=T[2], subject="s-ada")),  # set on one process
        (1, named(4, "ADA", token_hash=T[3])),  # refused on the other
        (1, renamed(5, 2, "\u0391da")),
        (1, named(6, "ada", token_hash=T[4], resume_hash=T[2])),  # her token alone, on the other: her name kept
        (1, named(7, "Ada Lovelace", token_hash=T[5], subject="s-ada")),  # her sign-in there moves it
        (0, named(8, "Ada", token_hash=T[6])),
        (0, renamed(9, 1, "ada lovelace")),
    ]
    with redis_server(tmp_path) as redis:
        brokers = [RedisBroker(RedisSettings(redis.url)) for _ in range(2)]
        for broker in brokers:
            await anyio.to_thread.run_sync(broker.log.open)
        delivered: list[list[LogResult]] = [[], []]
        answers: list[LogResult] = []
        try:
            async with anyio.create_task_group() as tasks:
                for broker, into in zip(brokers, delivered, strict=True):
                    tasks.start_soon(broker.run, into.append)
                for which, action in steps:
                    brokers[which].submit(action)
                    if not isinstance(action, LogRequest):
                        continue
                    with anyio.fail_after(10):
                        while not [r for r in delivered[which] if getattr(r, "ticket", None) == action.ticket]:
                            await brokers[which].flush()
                            await anyio.sleep(0.01)
                    answers += [r for r in delivered[which] if getattr(r, "ticket", None) == action.ticket]
                tasks.cancel_scope.cancel()
        finally:
            for broker in brokers:
                broker.log.close()
    assert shared_names(answers) == [
        UserAdded(1, 1, False, "Owner"),
        UserAdded(2, 2, False, "Bo"),
        UserAdded(3, 3, False, "Ada", verified=True),
        Refused(4, TAKEN),
        Refused(5, TAKEN),
        UserAdded(6, 3, True, "Ada", verified=True),
        UserAdded(7, 3, True, "Ada Lovelace", verified=True),
        UserAdded(8, 4, False, "Ada"),
        Refused(9, TAKEN),
    ]
