"""Changes of rooms and retention in Redis, on a real redis-server: across processes, after lost messages, and erased.

Each process is a `RedisBroker` (or its storage side, `RedisLog`) with an origin of its own, as if on its own
host. What one changes, the others hear in the changes' order; one whose subscriber lost its connection catches
up with a `Fill`; what a delete, an end or retention erases is in no key of Redis afterwards, not even in the
bytes of a stream (Redis only flags an entry XDEL removes). A signed-in user's subject is one user of a room on
every process, as in the memory log, and a ban holds for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
import pytest

from chatcore import (
    AddUser,
    Append,
    Appended,
    Fill,
    Filled,
    History,
    HistoryRead,
    Load,
    Loaded,
    LogFailed,
    LoggedTalk,
    LogResult,
    Subscribe,
    Subscribed,
    TalkArrived,
    UserAdded,
    problems,
)
from chatcore.actions import Expire, Moderate
from chatcore.control import Change, Delete, Edit, End, Lock, Remove, SetRole, Title
from chatcore.memorylog import MemoryLog
from chatcore.problems import BANNED, ENDED, LOCKED
from chatcore.results import ChangeArrived, Changed, Expired, LoggedChange, Refused, TypingHeard
from redis_model import RedisModel
from redis_server import RedisServer
from transports.config import RedisSettings
from transports.storage.redisbroker import RedisBroker
from transports.storage.redischanges import message_tail, published_change, version, versioned_talk
from transports.storage.redislog import FilledFrom, RedisLog
from transports.storage.redismoderation import SWEEP_LOCK_MS
from transports.storage.redisscheme import SWEEP_KEY, channel, join_key_of, published, typing_news

# What the formats carry


@pytest.mark.parametrize("talk", [
    LoggedTalk("k", 7, 3, 12.5, "new\ntext", "Ada", "m-1", 13.25),
    LoggedTalk("k", 7, 3, 12.5, "as sent", None, None),
    LoggedTalk("k", 7, 3, 12.5, None, None, "m-1"),
    LoggedTalk("k", 7, 3, 12.5, None, None, None),
])
def test_a_talks_version_reads_back_as_it_was_written(talk: LoggedTalk) -> None:
    assert versioned_talk("k", 7, version(talk).encode()) == talk


EDITED = LoggedTalk("k", 4, 2, 3.0, "fixed\nit", "Bo", "b-1", 9.0)
ERASED = LoggedTalk("k", 4, 2, 3.0, None, None, "b-1")


@pytest.mark.parametrize(("change", "talk"), [
    (Edit(4, "fixed\nit"), EDITED), (Delete(4), ERASED), (Title("Math 7B"), None), (Title(None), None),
    (Lock(True), None), (Lock(False), None), (Remove(5, ban=True), None), (Remove(5), None),
    (SetRole(5, True), None), (SetRole(5, False), None), (End(), None),
])
def test_a_change_on_the_channel_reads_back_as_it_was_made(change: Change, talk: LoggedTalk | None) -> None:
    entry = LoggedChange("k", 6, 11, 2, 9.0, change, talk)
    message = f"C\n6\n11\n{message_tail(2, 9.0, change, talk)}".encode()
    assert published("k", message) == entry
    assert published("k", b"X\n42") == Expired("k", 42)


def test_typing_on_the_channel_reads_back_as_it_was_published() -> None:
    assert published("k", typing_news("host-1:7", 12)) == TypingHeard("k", "host-1:7", 12)


@pytest.mark.parametrize("junk", [b"T\nhost", b"T\nhost\nx"])
def test_typing_that_is_not_ours_is_refused(junk: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (any ValueError: the subscriber logs and skips it)
        published("k", junk)


@pytest.mark.parametrize("junk", [
    b"C\n1\n2\n3\n4.0\nshout", b"C\n1\n2\n3\n4.0\nlock\nmaybe", b"C\n1\n2\n3\n4.0\ndelete\n4\ne\n2\n3.0\n\n\n\nx",
    b"C\n1\n2\n3\n4.0\nedit\n4\nd\n2\n3.0\n", b"C\n1\n2", b"X\nx", b"C\n1\n2\n3\n4.0\nend\nmore",
])
def test_a_change_that_is_not_ours_is_refused(junk: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (any ValueError: the subscriber logs and skips it)
        published_change("k", junk)


# On a real Redis


def every_value(redis: RedisServer) -> dict[str, bytes]:
    """Every key of Redis and all it holds: what DUMP serializes (a stream's flagged entries included) and what the
    key's type reads back."""
    client = redis.client()
    values: dict[str, bytes] = {}
    for key in client.scan_iter(count=100):
        kind = client.type(key)
        read: Any = (
            client.get(key) if kind == b"string" else client.hgetall(key) if kind == b"hash"
            else client.xrange(key) if kind == b"stream" else client.zrange(key, 0, -1, withscores=True)
            if kind == b"zset" else client.smembers(key)
        )
        dumped: Any = client.dump(key)
        values[key.decode()] = dumped + repr(read).encode()
    return values


def holding(values: dict[str, bytes], text: str) -> list[str]:
    return sorted(key for key, value in values.items() if text.encode() in value)


def test_what_a_delete_an_edit_an_end_and_retention_erase_is_in_no_key(
    open_log: Callable[..., RedisLog], redis: RedisServer
) -> None:
    log = open_log("o1")
    talks = [Append(10 + n, "k", 1 + n % 2, 100.0 + n, f"talk {n} secret-{n}-end", None, f"i{n}") for n in range(300)]
    assert [type(answer) for answer in log.run([AddUser(1, "k", 1.0), AddUser(2, "k", None), *talks])] == [
        UserAdded, UserAdded, *[Appended] * 300
    ]
    values = every_value(redis)
    assert holding(values, "secret-151-end") == ["chat:{k}:talks"]  # (the scan finds what is there)
    assert log.run([
        Moderate(400, "k", 2, 500.0, Delete(152)),  # talk 151 (its sender's), in the middle of a stream node
        Moderate(401, "k", 1, 501.0, Edit(11, "talk 10, as it is now")),
        Moderate(402, "k", 2, 502.0, Edit(301, "no")),
    ]) == [
        Changed(400, LoggedChange("k", 1, 300, 2, 500.0, Delete(152), LoggedTalk("k", 152, 2, 251.0, None, None,
                                                                                  "i151"))),
        Changed(401, LoggedChange("k", 2, 300, 1, 501.0, Edit(11, "talk 10, as it is now"), LoggedTalk(
            "k", 11, 1, 110.0, "talk 10, as it is now", None, "i10", 501.0))),
        Refused(402, problems.NO_SUCH_MESSAGE),
    ]
    values = every_value(redis)
    assert holding(values, "secret-151-end") == []
    assert holding(values, "secret-10-end") == []
    assert holding(values, "secret-150-end") == ["chat:{k}:moved"]  # its neighbours moved, as they are
    assert holding(values, "talk 10, as it is now") == ["chat:{k}:moved"]
    [loaded] = log.run([Load(403, "k", 300)])  # every talk, as it is now, in order
    assert isinstance(loaded, Loaded) and loaded.room is not None  # noqa: PT018
    assert [talk.offset for talk in loaded.room.talks] == list(range(1, 301))
    assert [talk.payload for talk in loaded.room.talks] == [
        None if n == 151 else "talk 10, as it is now" if n == 10 else f"talk {n} secret-{n}-end" for n in range(300)
    ]
    assert log.run([History(404, "k", 154, 3)]) == [HistoryRead(404, loaded.room.talks[150:153], True)]

    log.sweep(220.0)  # retention: the talks sent before 220 go (offsets 1 to 120), and the stream node they shared
    values = every_value(redis)
    assert [n for n in range(300) if holding(values, f"secret-{n}-end")] == [n for n in range(120, 300) if n != 151]
    [loaded] = log.run([Load(405, "k", 300)])
    assert isinstance(loaded, Loaded) and loaded.room is not None  # noqa: PT018
    assert [talk.offset for talk in loaded.room.talks] == list(range(121, 301))
    assert log.run([History(406, "k", 123, 5)]) == [HistoryRead(406, loaded.room.talks[:2], False)]

    assert isinstance(log.run([Moderate(407, "k", 1, 503.0, End())])[0], Changed)
    values = every_value(redis)
    assert [key for key in values if "{k}" in key] == ["chat:{k}:ended"]
    assert not any(holding(values, f"secret-{n}-end") for n in range(300))


async def hear(
    brokers: list[RedisBroker], script: Callable[[list[list[LogResult]]], Awaitable[None]]
) -> list[list[LogResult]]:
    """Run the brokers while ``script`` (async) uses them; what each delivered."""
    heard: list[list[LogResult]] = [[] for _ in brokers]
    async with anyio.create_task_group() as tasks:
        for broker, results in zip(brokers, heard, strict=True):
            tasks.start_soon(broker.run, results.append)
        with anyio.fail_after(20):
            await script(heard)
        tasks.cancel_scope.cancel()
    return heard


async def until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 (what the brokers' threads deliver)
        await anyio.sleep(0.01)


def changes_in(results: list[LogResult], join_key: str) -> list[LoggedChange]:
    """The changes of a room a process heard (its own included), in the order heard."""
    return [result.entry for result in results if isinstance(result, ChangeArrived)
            and result.entry.join_key == join_key]


@pytest.fixture
def brokers(redis: RedisServer) -> Iterator[list[RedisBroker]]:
    made = [RedisBroker(RedisSettings(redis.url, timeout=1.0), origin) for origin in ("a", "b")]
    for broker in made:
        broker.log.open()
    yield made
    for broker in made:
        broker.log.close()


@pytest.mark.trio
async def test_a_change_made_on_one_process_is_heard_on_the_other_in_order(brokers: list[RedisBroker]) -> None:
    a, b = brokers
    answers: list[LogResult] = []

    async def script(heard: list[list[LogResult]]) -> None:
        a.submit(Subscribe("k"))
        a.submit(AddUser(1, "k", 1.0, token_hash="t1"))
        b.submit(Subscribe("k"))
        await until(lambda: any(isinstance(result, UserAdded) for result in heard[0]))
        b.submit(AddUser(2, "k", None, token_hash="t2"))
        for n in range(5):
            b.submit(Append(300 + n, "k", 2, 1.5, f"b{n}"))
        await until(lambda: sum(isinstance(result, Appended) for result in heard[1]) == 5)
        for n in range(20):  # the two processes change the room at once, and talk
            a.submit(Append(10 + n, "k", 1, 2.0 + n, f"a{n}"))
            a.submit(Moderate(100 + n, "k", 1, 3.0 + n, Title(f"t{n}") if n % 2 else Lock(n % 4 == 0)))
            b.submit(Moderate(200 + n, "k", 2, 3.0 + n, Delete(n + 1) if n < 5 else Title("refused")))
        await until(lambda: len(changes_in(heard[0], "k")) == len(changes_in(heard[1], "k")) == 25)
        answers.extend(heard[0] + heard[1])

    heard = await hear(brokers, script)
    on_a, on_b = changes_in(heard[0], "k"), changes_in(heard[1], "k")
    assert on_a == on_b  # one order, the same everywhere
    assert [entry.seq for entry in on_a] == list(range(1, 26))
    changed = sorted((result.entry for result in answers if isinstance(result, Changed)), key=lambda e: e.seq)
    assert changed == on_a  # what each process was answered is what every process heard
    refused = [result for result in answers if isinstance(result, Refused)]
    assert sorted(result.ticket for result in refused) == list(range(205, 220))
    assert {result.reason for result in refused} == {problems.STAFF_ONLY.format(doing="set its title")}
    deletes = [(entry.after, entry.change.offset) for entry in on_a if isinstance(entry.change, Delete)]
    assert len(deletes) == 5
    assert all(after >= offset for after, offset in deletes)  # after the talk it names


@pytest.mark.trio
async def test_a_process_that_lost_its_subscription_catches_up_with_a_fill(
    brokers: list[RedisBroker], redis: RedisServer
) -> None:
    a, b = brokers
    stop = threading.Event()

    def cut_subscribers() -> None:  # Redis drops every pub/sub connection, again and again
        client = redis.client()
        while not stop.is_set():
            client.client_kill_filter(_type="pubsub")
            time.sleep(0.02)

    async def script(heard: list[list[LogResult]]) -> None:
        for broker in brokers:
            broker.submit(Subscribe("k"))
        await until(lambda: any(isinstance(result, Subscribed) for result in heard[1]))  # b listens
        a.submit(AddUser(1, "k", 1.0))
        a.submit(Append(2, "k", 1, 2.0, "hello"))
        await until(lambda: any(isinstance(result, TalkArrived) for result in heard[1]))
        cutter = threading.Thread(target=cut_subscribers)
        cutter.start()
        try:
            for n in range(30):
                a.submit(Moderate(10 + n, "k", 1, 3.0 + n, Edit(1, f"hello {n}") if n % 3 else Title(f"t{n}")))
                await anyio.sleep(0.01)
            await a.flush()
        finally:
            stop.set()
            cutter.join()
        seen = [entry.seq for entry in changes_in(heard[1], "k")]
        contiguous = next((n for n, seq in enumerate(seen, 1) if seq != n), len(seen) + 1) - 1
        b.submit(Fill("k", 1, contiguous))
        await until(lambda: any(isinstance(result, Filled) for result in heard[1]))

    heard = await hear(brokers, script)
    filled = next(result for result in heard[1] if isinstance(result, Filled))
    live = changes_in(heard[1], "k")
    assert len(live) < 30, "the cuts lost nothing: the test shows nothing"
    known = {entry.seq: entry for entry in live}
    assert all(known.get(entry.seq, entry) == entry for entry in filled.changes if not isinstance(entry.change, Edit))
    assert sorted({*known, *(entry.seq for entry in filled.changes)}) == list(range(1, 31))
    assert [entry.seq for entry in filled.changes] == sorted(entry.seq for entry in filled.changes)
    for entry in filled.changes:
        if isinstance(entry.change, Edit):  # an edit is read back with its talk as it is now
            assert entry.change == Edit(1, "hello 29")
            assert entry.talk == LoggedTalk("k", 1, 1, 2.0, "hello 29", None, None, 32.0)


@pytest.mark.trio
async def test_locks_and_bans_keep_joins_out_on_every_process_and_a_missed_end_is_filled(
    brokers: list[RedisBroker],
) -> None:
    a, b = brokers
    results: list[Any] = []

    async def ask(broker: RedisBroker, heard: list[LogResult], request: Any) -> Any:
        broker.submit(request)
        await until(lambda: any(getattr(result, "ticket", None) == request.ticket for result in heard))
        return next(result for result in heard if getattr(result, "ticket", None) == request.ticket)

    async def script(heard: list[list[LogResult]]) -> None:
        async def on_a(request: Any) -> Any:
            return await ask(a, heard[0], request)

        async def on_b(request: Any) -> Any:
            return await ask(b, heard[1], request)

        results.extend([
            await on_a(AddUser(1, "k", 1.0, token_hash="owner")),
            await on_b(AddUser(2, "k", None, token_hash="bo")),
            await on_a(Moderate(3, "k", 1, 2.0, Lock(True))),
            await on_b(AddUser(4, "k", None, token_hash="new")),  # locked: no user id handed out
            await on_b(AddUser(5, "k", None, resume_hash="bo")),  # a token of the room: back in
            await on_a(Moderate(6, "k", 1, 3.0, Lock(False))),
            await on_b(AddUser(7, "k", None, token_hash="cy")),  # user 3: the lock took no number
            await on_a(Moderate(8, "k", 1, 4.0, Remove(2, ban=True))),
            await on_b(AddUser(9, "k", None, resume_hash="bo")),
            await on_b(AddUser(10, "k", None)),  # (a new user without a token is not that user)
        ])
        b.submit(Subscribe("k"))  # b listens from now on; the end it misses is read back
        await on_b(Load(11, "k", 0))
        b.log.subscriber.unsubscribe("k")  # (as if its connection were down when the room ended)
        results.append(await on_a(Moderate(12, "k", 1, 5.0, End())))
        results.append(await on_b(AddUser(13, "k", None, resume_hash="owner")))
        results.append(await on_b(Moderate(14, "k", 1, 6.0, Title("after the end"))))
        b.submit(Fill("k", 0, 2))
        await until(lambda: any(isinstance(result, Filled) for result in heard[1]))
        results.append(next(result for result in heard[1] if isinstance(result, Filled)))

    await hear(brokers, script)
    assert results == [
        UserAdded(1, 1), UserAdded(2, 2), Changed(3, LoggedChange("k", 1, 0, 1, 2.0, Lock(True))),
        Refused(4, LOCKED), UserAdded(5, 2, resumed=True), Changed(6, LoggedChange("k", 2, 0, 1, 3.0, Lock(False))),
        UserAdded(7, 3), Changed(8, LoggedChange("k", 3, 0, 1, 4.0, Remove(2, ban=True))), Refused(9, BANNED),
        UserAdded(10, 4), Changed(12, LoggedChange("k", 4, 0, 1, 5.0, End())),
        LogFailed(13, "storage inconsistent"), Refused(14, ENDED),
        Filled("k", 0, (), (LoggedChange("k", 4, 0, 1, 5.0, End()),)),
    ]


@pytest.mark.trio
async def test_retention_sweeps_once_across_processes_and_every_process_hears_what_it_erased(
    brokers: list[RedisBroker], redis: RedisServer
) -> None:
    a, b = brokers
    busy_talks = tuple(LoggedTalk("busy", 1 + n, 1, 10.0 + n, f"b{n}") for n in range(250))

    async def script(heard: list[list[LogResult]]) -> None:
        for broker in brokers:
            for key in ("old", "quiet", "busy"):
                broker.submit(Subscribe(key))
        a.submit(AddUser(1, "old", 1.0))
        a.submit(Append(2, "old", 1, 2.0, "long ago"))
        a.submit(AddUser(3, "quiet", 1.0))
        a.submit(AddUser(4, "busy", 1.0))
        for n in range(250):
            a.submit(Append(10 + n, "busy", 1, 10.0 + n, f"b{n}"))
        await a.flush()
        redis.client().set(SWEEP_KEY, "another process", px=SWEEP_LOCK_MS)
        b.submit(Expire(100.0))  # another process is sweeping: this one leaves it be
        await b.flush()
        await until(lambda: not b.sweeping)
        assert not any(isinstance(result, Expired | ChangeArrived) for result in heard[0] + heard[1])
        redis.client().delete(SWEEP_KEY)
        b.submit(Expire(100.0))
        await until(lambda: sum(isinstance(result, Expired | ChangeArrived) for result in heard[0]) == 3)
        await until(lambda: sum(isinstance(result, Expired | ChangeArrived) for result in heard[1]) == 3)
        await until(lambda: not b.sweeping)  # (the news goes out before the sweep lets go of its lock)
        assert redis.client().get(SWEEP_KEY) is None  # (let go once done)
        a.submit(Load(500, "busy", 1000))
        a.submit(Load(501, "old", 5))
        await until(lambda: sum(isinstance(result, Loaded) for result in heard[0]) == 2)
        a.submit(Fill("busy", 240))  # (a fill tells again what retention erased: for one that missed its news)
        await until(lambda: isinstance(heard[0][-1], Filled))
        assert heard[0][-2:] == [Expired("busy", 91), Filled("busy", 240, busy_talks[-10:])]

    heard = await hear(brokers, script)
    for results in (heard[0][:-2], heard[1]):  # (a's last two: its fill's)
        news = sorted((result for result in results if isinstance(result, Expired | ChangeArrived)), key=repr)
        assert news == sorted([
            ChangeArrived(LoggedChange("old", 1, 1, 0, 100.0, End())),
            ChangeArrived(LoggedChange("quiet", 1, 0, 0, 100.0, End())),
            Expired("busy", 91),
        ], key=repr)
    busy, old = [result for result in heard[0] if isinstance(result, Loaded)]
    assert busy.room is not None and [talk.offset for talk in busy.room.talks] == list(range(91, 251))  # noqa: PT018
    assert old.room is None


def test_the_model_of_redis_changes_rooms_as_the_real_scripts_do(
    open_log: Callable[..., RedisLog], redis: RedisServer
) -> None:
    """What the simulation's model answers, publishes and reads back is what the real scripts do."""
    log = open_log("o1")
    model = RedisModel()
    listener = redis.client().pubsub()
    listener.subscribe(channel("k"), channel("q"))
    steps: list[Any] = [
        AddUser(1, "k", 1.0, token_hash="owner", name="Ada"), AddUser(2, "k", None, token_hash="bo"),
        AddUser(3, "k", None, token_hash="cy"), AddUser(4, "q", 1.0),
        *(Append(10 + n, "k", 1 + n % 3, 2.0 + n, f"talk {n}", None, f"i{n}") for n in range(12)),
        Moderate(30, "k", 2, 20.0, Edit(2, "bo's, edited")), Moderate(31, "k", 1, 21.0, Edit(2, "not mine")),
        Moderate(32, "k", 1, 22.0, SetRole(2, True)), Moderate(33, "k", 2, 23.0, Delete(4)),
        Moderate(34, "k", 2, 24.0, Edit(5, "bo again")), Moderate(35, "k", 2, 25.0, Delete(5)),
        Moderate(36, "k", 3, 26.0, Title("mine")), Moderate(37, "k", 2, 27.0, Title("Math 7B")),
        Moderate(38, "k", 2, 28.0, Lock(True)), AddUser(39, "k", None, token_hash="new"),
        Moderate(40, "k", 2, 29.0, Remove(1)), Moderate(41, "k", 2, 30.0, Remove(3, ban=True)),
        AddUser(42, "k", None, resume_hash="cy"), AddUser(43, "k", None, resume_hash="bo", name="Bo"),
        Append(44, "k", 2, 31.0, "again", None, "i1"), Append(45, "k", 1, 32.0, "again", None, "i3"),
        Load(46, "k", 5), History(47, "k", 7, 4), Fill("k", 0), Fill("k", 3, 4),
        Expire(7.5),  # k keeps its talks from 8.0 on (offset 7); q, quiet since 1.0, ends
        Fill("k", 7, 8), Fill("k", 7), Load(48, "k", 100), History(49, "k", 100, 3), Fill("q", 0), Fill("q", 0, 1),
        Moderate(50, "k", 2, 33.0, End()), Moderate(51, "k", 1, 34.0, End()), Fill("k", 0, 8), Load(52, "k", 5),
        Moderate(53, "k", 1, 35.0, Lock(False)),
    ]
    for step in steps:
        if isinstance(step, Expire):
            log.sweep(step.before)
            model.expire(step.before)
            continue
        real = log.run([step])
        if isinstance(step, Fill):
            expected = model.fill(step)
            if len(real) == 1 and isinstance(real[0], FilledFrom):
                real = [Expired("k", real[0].first), real[0].filled]
        elif isinstance(step, Load):
            expected = [model.load(step, log.origin)]
        else:
            expected = [model_answer(model, step)]
        assert real == expected, step
    heard: list[Any] = []
    while (message := listener.get_message(timeout=0.2)) is not None:
        if message["type"] == "message":
            heard.append(published(join_key_of(message["channel"]), message["data"]))
    listener.close()
    for key in ("k", "q"):  # (a sweep goes over the rooms in Redis's order: each room's own is the same)
        assert [news for news in heard if news.join_key == key] == [
            news for news in model.published if news.join_key == key
        ]


def model_answer(model: RedisModel, request: Any) -> LogResult:
    if isinstance(request, AddUser):
        return model.add_user(request)
    if isinstance(request, Append):
        return model.append(request)
    if isinstance(request, History):
        return model.history(request)
    assert isinstance(request, Moderate)
    return model.moderate(request)


# Signed-in users: one user per subject in a room, as in the memory log

ODD = "s:1 t:h1 S:2 %d+ .. '\" \\ é " + "x" * 224
"""A subject of 256 characters with what could confuse a script that parsed its keys (it never does)."""


def test_a_subject_is_one_user_per_room_as_in_the_memory_log_and_the_model(
    open_log: Callable[..., RedisLog], redis: RedisServer
) -> None:
    log = open_log("o1")
    memory = MemoryLog(100)
    model = RedisModel()
    steps: list[Any] = [
        AddUser(1, "k", 1.0, token_hash="owner", name="Owner", subject="own"),  # a new room, its owner signed in
        AddUser(2, "k", None, token_hash="h2", name="Ada", subject="ada"),  # a new subject: a new user
        AddUser(3, "k", None, subject="ada"),  # the subject again, no token: the same user
        AddUser(4, "k", None, token_hash="h4", resume_hash="owner", subject="ada"),  # another user's token: ada
        AddUser(5, "k", None, token_hash="h5", name="Bo"),  # a user without a subject
        AddUser(6, "k", None, resume_hash="h5", subject="bo"),  # its token: no matter, a new user (a resume
        # token never makes an identity)
        AddUser(7, "k", None, token_hash="h7", subject="bo"),  # the subject alone finds it
        AddUser(8, "k", None, token_hash="h8", resume_hash="h2", subject="cy"),  # ada's token, cy: a new user
        AddUser(9, "k", None, resume_hash="h2"),  # ada's token without a subject: still ada
        AddUser(10, "k", None, token_hash="h10", subject=ODD), AddUser(11, "k", None, subject=ODD),
        AddUser(12, "k", None, subject="s:1"), AddUser(13, "k", None, subject=""),
        Moderate(20, "k", 1, 2.0, Remove(2, ban=True)),
        AddUser(21, "k", None, token_hash="fresh", subject="ada"),  # banned: whatever device, whatever token
        AddUser(22, "k", None, resume_hash="h2"),  # and its token
        Moderate(23, "k", 1, 3.0, Lock(True)),
        AddUser(24, "k", None, token_hash="h24", subject="dee"),  # locked: a new subject is a new user
        AddUser(25, "k", None, resume_hash="h5", subject="bo"),  # a known one comes back
        AddUser(26, "k", None, resume_hash="h8", subject="bo"),  # (cy's token: bo wins)
        AddUser(27, "q", None, subject="ada"),  # no such room
    ]
    answers: list[Any] = []
    for step in steps:
        real = log.run([step])
        assert real == memory.perform(step), step
        assert real == [model_answer(model, step)], step
        answers.extend(real)
    assert [(added.user_id, added.resumed) for added in answers[:13]] == [
        (1, False), (2, False), (2, True), (2, True), (3, False), (4, False), (4, True), (5, False), (2, True),
        (6, False), (6, True), (7, False), (8, False),
    ]
    assert [type(answer) for answer in answers[13:]] == [Changed, Refused, Refused, Changed, Refused, UserAdded,
                                                         UserAdded, LogFailed]
    assert answers[14:16] == [Refused(21, BANNED), Refused(22, BANNED)]
    assert answers[17:20] == [
        Refused(24, LOCKED), UserAdded(25, 4, True, None, verified=True), UserAdded(26, 4, True, None, verified=True),
    ]
    users = redis.client().hgetall("chat:{k}:users")
    assert {field: value for field, value in users.items() if field[:2] in (b"s:", b"S:")} == {
        b"s:own": b"1", b"S:1": b"own", b"s:ada": b"2", b"S:2": b"ada", b"s:bo": b"4", b"S:4": b"bo",
        b"s:cy": b"5", b"S:5": b"cy", b"s:" + ODD.encode(): b"6", b"S:6": ODD.encode(),
        b"s:s:1": b"7", b"S:7": b"s:1", b"s:": b"8", b"S:8": b"",
    }


@pytest.mark.trio
async def test_two_processes_see_one_user_per_subject_and_its_ban(brokers: list[RedisBroker]) -> None:
    a, b = brokers
    results: list[list[Any]] = [[], []]

    async def script(heard: list[list[LogResult]]) -> None:
        def answer(ticket: int) -> Any:
            return next((result for result in heard[0] + heard[1] if getattr(result, "ticket", None) == ticket), None)

        async def ask(broker: RedisBroker, request: Any) -> Any:
            broker.submit(request)
            await until(lambda: answer(request.ticket) is not None)
            return answer(request.ticket)

        await ask(a, AddUser(1, "k", 1.0, token_hash="owner", subject="own"))
        for n in range(10):  # each subject signs in on both processes at once, with a token of its own on each
            a.submit(AddUser(10 + n, "k", None, token_hash=f"a{n}", subject=f"user {n}"))
            b.submit(AddUser(30 + n, "k", None, token_hash=f"b{n}", subject=f"user {n}"))
        await until(lambda: all(answer(10 + n) and answer(30 + n) for n in range(10)))
        results[0].extend(answer(10 + n) for n in range(10))
        results[1].extend(answer(30 + n) for n in range(10))
        await ask(a, Moderate(50, "k", 1, 2.0, Remove(answer(10).user_id, ban=True)))
        results[0].append(await ask(a, AddUser(51, "k", None, token_hash="new", subject="user 0")))
        results[1].append(await ask(b, AddUser(52, "k", None, resume_hash="b0", subject="user 0")))
        results[1].append(await ask(b, AddUser(53, "k", None, resume_hash="b1", subject="user 1")))

    await hear(brokers, script)
    on_a, on_b = results
    assert [added.user_id for added in on_a[:10]] == [added.user_id for added in on_b[:10]]
    assert sorted(added.user_id for added in on_a[:10]) == list(range(2, 12))  # one user per subject, no more
    assert all(added.resumed != other.resumed for added, other in zip(on_a[:10], on_b[:10], strict=True))
    assert on_a[10] == Refused(51, BANNED) and on_b[10] == Refused(52, BANNED)  # noqa: PT018
    assert on_b[11] == UserAdded(53, on_a[1].user_id, resumed=True, verified=True)
