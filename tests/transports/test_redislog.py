"""The Redis log: its pure helpers, and its scripts on a real redis-server against the simulation's model of them.

The model (``tests/support/redis_model.py``) stands for Redis in the
cluster simulation: here each script's answers, and what it publishes, are
checked against the model's, request by request (and, for the names signed-in users hold, against the memory
log's).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

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
    LogRequest,
    LogResult,
    NameSaved,
    Presence,
    PresenceHeard,
    PresenceSnapshot,
    Rename,
    Subscribe,
    UserAdded,
)
from chatcore.identity import folded
from chatcore.memorylog import MemoryLog
from chatcore.problems import TAKEN
from chatcore.results import INCONSISTENT, Refused
from redis_model import RedisModel
from redis_model import Refresh as ModelRefresh
from redis_server import STALLS, RedisServer, redis_proxy, stalled
from tcp_proxy import TcpProxy
from transports.config import RedisSettings
from transports.storage.redisconnection import redacted
from transports.storage.redislog import RETRY_AFTER_FAILURE, UNREACHABLE, AskAgain, RedisLog, Refresh
from transports.storage.redisscheme import (
    SCRIPTS,
    SENT_TTL_MS,
    channel,
    ids_key,
    join_key_of,
    moved_key,
    published,
    room_key,
    sent_key,
    talks_key,
    users_key,
    who_key,
)
from transports.storage.redissubscriber import MAX_BURST


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("redis://:secret@10.0.0.5:6379/0", "redis://:***@10.0.0.5:6379/0"),
    ("rediss://chat:secret@redis.example.org/2", "rediss://chat:***@redis.example.org/2"),
    ("unix:///run/redis/redis.sock?db=0&password=secret", "unix:///run/redis/redis.sock?db=0&password=***"),
    ("unix:///run/redis/redis.sock", "unix:///run/redis/redis.sock"),
])
def test_a_password_never_reaches_a_log_line(url: str, shown: str) -> None:
    assert redacted(url) == shown


def test_a_rooms_keys_and_channel_share_one_hash_tag() -> None:
    key = "Ab-_09xyzABCDEFG"
    assert room_key(key) == "chat:{Ab-_09xyzABCDEFG}:room"
    assert talks_key(key) == "chat:{Ab-_09xyzABCDEFG}:talks"
    assert users_key(key) == "chat:{Ab-_09xyzABCDEFG}:users"
    assert ids_key(key) == "chat:{Ab-_09xyzABCDEFG}:ids"
    assert sent_key(key, "p1") == "chat:{Ab-_09xyzABCDEFG}:sent:p1"
    assert who_key(key) == "chat:{Ab-_09xyzABCDEFG}:who"
    assert join_key_of(channel(key)) == key


def test_what_a_channel_carries_is_read_back_as_it_was_published() -> None:
    assert published("k", b"7\n3\n12.5\nAda\nm-1\nhello\nwith a newline") == LoggedTalk(
        "k", 7, 3, 12.5, "hello\nwith a newline", "Ada", "m-1"
    )
    assert published("k", b"8\n3\n13.0\n\n\n") == LoggedTalk("k", 8, 3, 13.0, "", None, None)
    assert published("k", b"P\n4\nab12\n3\n1\nAda") == PresenceHeard("k", 4, "ab12", 3, True, "Ada")
    assert published("k", b"P\n5\nab12\n3\n0\n") == PresenceHeard("k", 5, "ab12", 3, False, None)
    assert published("k", b"P\n6\nab12\n3\nr\nAda L.") == PresenceHeard("k", 6, "ab12", 3, None, "Ada L.")
    assert published("k", b"V\n9\n3\n14.0\nAda\n\nsigned") == LoggedTalk(
        "k", 9, 3, 14.0, "signed", "Ada", None, verified=True
    )
    assert published("k", b"P\n7\nab12\n3\n1v\nAda") == PresenceHeard("k", 7, "ab12", 3, True, "Ada", True)
    assert published("k", b"P\n8\nab12\n3\nrv\nAda") == PresenceHeard("k", 8, "ab12", 3, None, "Ada", True)
    for junk in (b"hello", b"P\n1\nx\n2\n?\n", b"P\n1\nx\n2\nv\n", b"x\n1\n1.0\n\n\np", b"P\n1\nx\n2\n1"):
        with pytest.raises(ValueError):  # noqa: PT011 (any ValueError: the subscriber logs and skips it)
            published("k", junk)


# The scripts on a real Redis


class Listener:
    """Everything published on some rooms' channels, read on a connection of its own."""

    def __init__(self, redis: RedisServer, *join_keys: str) -> None:
        self._pubsub = redis.client().pubsub()
        self._pubsub.subscribe(*(channel(key) for key in join_keys))
        confirmed, deadline = 0, time.monotonic() + 5
        while confirmed < len(join_keys):
            assert time.monotonic() < deadline
            message = self._pubsub.get_message(timeout=1)
            confirmed += message is not None and message["type"] == "subscribe"

    def heard(self) -> list[Any]:
        messages: list[Any] = []
        while (message := self._pubsub.get_message(timeout=0.2)) is not None:
            if message["type"] == "message":
                messages.append(published(join_key_of(message["channel"]), message["data"]))
        return messages

    def close(self) -> None:
        self._pubsub.close()


@pytest.fixture
def listen(redis: RedisServer) -> Iterator[Callable[..., Listener]]:
    listeners: list[Listener] = []

    def listen_(*join_keys: str) -> Listener:
        listener = Listener(redis, *join_keys)
        listeners.append(listener)
        return listener

    yield listen_
    for listener in listeners:
        listener.close()


def model_answer(model: RedisModel, request: LogRequest, origin: str) -> LogResult:
    if isinstance(request, AddUser):
        return model.add_user(request)
    if isinstance(request, Append):
        return model.append(request)
    if isinstance(request, Rename):
        return model.rename(request, origin)
    if isinstance(request, History):
        return model.history(request)
    assert isinstance(request, Load)
    return model.load(request, origin)


def model_work(model: RedisModel, work: LogRequest | Presence | Refresh, origin: str, ttl: int) -> list[Any]:
    """What `RedisLog.run` answers to ``[work]``, as the model has it."""
    if isinstance(work, Presence):
        model.presence(work, origin, ttl)
        return []
    if isinstance(work, Refresh):
        snapshot = model.refresh(ModelRefresh(work.join_key, work.user_ids), origin, ttl)
        return [] if snapshot is None else [snapshot]
    return [model_answer(model, work, origin)]


def test_users_names_talk_ids_history_and_renames_answer_as_the_model_does(
    redis: RedisServer, open_log: Callable[..., RedisLog], listen: Callable[..., Listener]
) -> None:
    log = open_log("a1b2c3")
    model = RedisModel()
    listener = listen("k", "nope")
    requests: list[LogRequest] = [
        AddUser(1, "k", 10.0, token_hash="h1", name="Ada"),  # a new room; its user 1, named, with a token
        AddUser(2, "k", None, token_hash="h2"),
        AddUser(3, "k", None, token_hash="h3", resume_hash="h1"),  # user 1 again, and its name
        AddUser(4, "k", None, token_hash="h4", resume_hash="h1", name="Ada L."),  # and a new name kept
        AddUser(5, "k", None, token_hash="h5", resume_hash="nobody's"),  # not a token of the room: a new user
        AddUser(6, "k", None, resume_hash="h5"),
        AddUser(7, "nope", None, resume_hash="h1"),
        Append(8, "k", 1, 20.0, "hi\nthere", "Ada L.", "m-1"),
        Append(9, "k", 2, 21.0, "no id, no name"),
        Append(10, "k", 1, 22.0, "sent again", "Ada L.", "m-1"),  # stored already: the original, nothing published
        Append(11, "k", 2, 23.0, "another user's m-1", None, "m-1"),
        Rename(12, "k", 2, "Bo"),
        Append(13, "k", 2, 24.0, "named now", "Bo", "m-2"),
        Rename(14, "nope", 1, "Nobody"),
        Append(15, "nope", 1, 1.0, "x", None, "m-1"),
        History(16, "k", 4, 2), History(17, "k", 100, 3), History(18, "k", 1, 5), History(19, "k", 2, 5),
        History(20, "k", 2**70, 2), History(21, "nope", 5, 5),
        Load(22, "k", 3), Load(23, "k", 0), Load(24, "nope", 3),
    ]
    real = log.run(requests)
    expected = [model_answer(model, request, log.origin) for request in requests]
    assert real == expected
    assert real[2] == UserAdded(3, 1, True, "Ada") and real[3] == UserAdded(4, 1, True, "Ada L.")  # noqa: PT018
    assert real[9] == Appended(10, LoggedTalk("k", 1, 1, 20.0, "hi\nthere", "Ada L.", "m-1"), duplicate=True)
    assert isinstance(real[11], NameSaved)
    assert real[15] == HistoryRead(16, (real[8].talk, real[10].talk), older=True)  # type: ignore[union-attr]
    assert isinstance(real[13], LogFailed) and isinstance(real[20], LogFailed)  # noqa: PT018
    assert listener.heard() == model.published
    keys = sorted(key.decode() if isinstance(key, bytes) else key for key in redis.client().keys("chat:{k}:*"))
    assert keys == ["chat:{k}:ids", "chat:{k}:room", f"chat:{{k}}:sent:{log.origin}", "chat:{k}:talks",
                    "chat:{k}:users"]
    assert redis.client().hgetall("chat:{k}:users") == {
        b"n:1": b"Ada L.", b"n:2": b"Bo", b"t:h1": b"1", b"t:h2": b"2", b"t:h5": b"3",
    }  # (only hashes of tokens; a resumed user's new token is not kept)


def test_a_talk_id_is_remembered_for_the_last_retention_offsets(
    open_log: Callable[..., RedisLog], redis: RedisServer
) -> None:
    log = open_log("a1b2c3", retention=3)
    model = RedisModel(retention=3)
    requests: list[LogRequest] = [
        AddUser(1, "k", 1.0),
        Append(2, "k", 1, 2.0, "first", None, "m-1"),
        Append(3, "k", 1, 3.0, "again", None, "m-1"),  # remembered
        Append(4, "k", 1, 4.0, "2", None, "m-2"), Append(5, "k", 1, 5.0, "3"),
        Append(6, "k", 1, 6.0, "again", None, "m-1"),  # offsets 1 to 3: still remembered
        Append(7, "k", 1, 7.0, "4"),
        Append(8, "k", 1, 8.0, "after it left the window", None, "m-1"),  # stored anew, at offset 5
        Append(9, "k", 1, 9.0, "again", None, "m-2"),  # offset 2: forgotten too
    ]
    real = log.run(requests)
    assert real == [model_answer(model, request, log.origin) for request in requests]
    assert [answer.talk.offset for answer in real[1:]] == [1, 1, 2, 3, 1, 4, 5, 6]  # type: ignore[union-attr]
    assert redis.client().zrange("chat:{k}:ids", 0, -1, withscores=True) == [(b"1:m-1", 5.0), (b"1:m-2", 6.0)]


def test_presence_news_and_snapshots_answer_as_the_model_does(
    open_log: Callable[..., RedisLog], listen: Callable[..., Listener]
) -> None:
    a, b = open_log("aaaa"), open_log("bbbb")
    model = RedisModel()
    ttl = 15_000
    setup: list[LogRequest] = [AddUser(1, "k", 10.0, name="Ada"), AddUser(2, "k", None), AddUser(3, "k", None)]
    assert a.run(setup) == [model_answer(model, request, "aaaa") for request in setup]
    listener = listen("k")
    steps: list[tuple[RedisLog, LogRequest | Presence | Refresh]] = [
        (a, Presence("k", 1, True, "Ada")), (a, Presence("k", 2, True, None)), (b, Presence("k", 3, True, None)),
        (b, Presence("k", 1, True, "Ada")),  # user 1 on both processes
        (a, Load(4, "k", 0)),  # who is there, but for a's own
        (b, Rename(5, "k", 3, "Cy")),
        (a, Presence("k", 2, False, None)),
        (a, Presence("k", 2, False, None)),  # not listed (any more): nothing published
        (b, Refresh("k", (1, 3, 5))),  # user 5 was not listed: news, as a newcomer
        (a, Refresh("k", (1,))),
        (b, Presence("k", 1, False, "Ada")),
        (a, Refresh("k", ())),
        (a, Presence("nope", 1, True, None)), (a, Refresh("nope", (1,))), (b, Load(6, "nope", 0)),
    ]
    for log, work in steps:
        assert log.run([work]) == model_work(model, work, log.origin, ttl), work
    assert a.run([Refresh("k", (1,))]) == [PresenceSnapshot("k", 8, (("bbbb", 3, "Cy"), ("bbbb", 5, None)))]
    assert listener.heard() == model.published
    assert [news.seq for news in model.published if isinstance(news, PresenceHeard)] == list(range(1, 9))


def test_signed_in_users_are_verified_in_talks_presence_news_and_snapshots_as_the_model_has_them(
    open_log: Callable[..., RedisLog], listen: Callable[..., Listener]
) -> None:
    a, b = open_log("aaaa"), open_log("bbbb")
    model = RedisModel()
    ttl = 15_000
    setup: list[LogRequest] = [
        AddUser(1, "k", 10.0, name="Ada", subject="s-ada"), AddUser(2, "k", None, name="Bo"),
    ]
    assert a.run(setup) == [model_answer(model, request, "aaaa") for request in setup]
    assert [added.verified for added in a.run([AddUser(3, "k", None, subject="s-ada")])] == [True]  # type: ignore
    model.add_user(AddUser(3, "k", None, subject="s-ada"))
    listener = listen("k")
    steps: list[tuple[RedisLog, LogRequest | Presence | Refresh]] = [
        (a, Presence("k", 1, True, "Ada")), (a, Presence("k", 2, True, "Bo")),
        (a, Append(4, "k", 1, 11.0, "signed", "Ada", "m-1", verified=True)),
        (a, Append(5, "k", 2, 12.0, "anonymous", "Bo")),
        (a, Rename(6, "k", 1, "Ada L.")),
        (b, Refresh("k", ())),
        (b, Load(7, "k", 10)),
        (b, History(8, "k", 10, 10)),
        (a, Presence("k", 1, False, "Ada L.")),
    ]
    for log, work in steps:
        assert log.run([work]) == model_work(model, work, log.origin, ttl), work
    heard = listener.heard()
    assert heard == model.published
    assert [(type(news).__name__, news.verified) for news in heard] == [
        ("PresenceHeard", True), ("PresenceHeard", False), ("LoggedTalk", True), ("LoggedTalk", False),
        ("PresenceHeard", True), ("PresenceHeard", False),
    ]
    (snapshot,) = b.run([Refresh("k", ())])
    assert snapshot == PresenceSnapshot("k", 4, (("aaaa", 2, "Bo"),))
    (loaded,) = b.run([Load(9, "k", 10)])
    assert [talk.verified for talk in loaded.room.talks] == [True, False]  # type: ignore[union-attr]


def test_what_a_dead_process_left_expires_and_is_removed_by_the_others_renewal(
    open_log: Callable[..., RedisLog], listen: Callable[..., Listener]
) -> None:
    dead, live = open_log("dead", presence_ttl=1.0), open_log("live")
    model = RedisModel()
    setup: list[LogRequest] = [AddUser(1, "k", 10.0, name="Ada"), AddUser(2, "k", None, name="Bo")]
    assert live.run(setup) == [model_answer(model, request, "live") for request in setup]
    listener = listen("k")
    assert dead.run([Presence("k", 1, True, "Ada")]) == model_work(model, Presence("k", 1, True, "Ada"), "dead", 1000)
    assert live.run([Presence("k", 2, True, "Bo")]) == model_work(model, Presence("k", 2, True, "Bo"), "live", 15000)
    renewal = Refresh("k", (2,))
    assert live.run([renewal]) == model_work(model, renewal, "live", 15000) == [
        PresenceSnapshot("k", 2, (("dead", 1, "Ada"),))
    ]
    time.sleep(1.2)  # the dead process renews nothing
    model.now += 1200
    assert live.run([renewal]) == model_work(model, renewal, "live", 15000) == [PresenceSnapshot("k", 3, ())]
    assert listener.heard() == model.published
    assert model.published[-1] == PresenceHeard("k", 3, "dead", 1, False, "Ada")


def test_a_room_is_read_once_its_subscription_is_in_place_and_a_process_is_not_told_its_own_news(
    open_log: Callable[..., RedisLog],
) -> None:
    mine, theirs = open_log("mine", timeout=0.3), open_log("theirs")
    assert theirs.run([AddUser(1, "k", 1.0)]) == [UserAdded(1, 1)]
    # The subscriber is not started (as if its connection were down): reading the room now could miss talks.
    assert mine.run([Subscribe("k"), Load(2, "k", 5)]) == [LogFailed(2, UNREACHABLE)]
    heard: list[Any] = []
    lock = threading.Lock()

    def hand_over(burst: list[Any]) -> None:
        with lock:
            heard.extend(item for item in burst if isinstance(item, LoggedTalk | PresenceHeard))

    mine.subscriber.start(lambda function, *args: function(*args), hand_over)
    [loaded] = mine.run([Subscribe("k"), Load(3, "k", 5)])
    assert isinstance(loaded, Loaded)
    assert loaded.room is not None
    mine.run([Presence("k", 1, True, None)])
    theirs.run([Presence("k", 2, True, None), Append(4, "k", 2, 2.0, "hi")])
    deadline = time.monotonic() + 5
    while len(heard) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert heard == [PresenceHeard("k", 2, "theirs", 2, True, None), LoggedTalk("k", 1, 2, 2.0, "hi")]


def test_a_fill_reads_names_and_ids_back(open_log: Callable[..., RedisLog]) -> None:
    log = open_log("a1b2c3")
    model = RedisModel()
    requests: list[LogRequest] = [
        AddUser(1, "k", 1.0), Append(2, "k", 1, 2.0, "a", "Ada", "m-1"), Append(3, "k", 1, 3.0, "b"),
    ]
    assert log.run(requests) == [model_answer(model, request, log.origin) for request in requests]
    assert log.run([Fill("k", 0)]) == [Filled("k", 0, tuple(model.range("k", 0)))]


# A talk whose answer was not read: stored once, or never, and the sender told which


def test_a_talk_asked_again_is_answered_as_the_first_time_and_a_late_copy_stores_nothing(
    redis: RedisServer, open_log: Callable[..., RedisLog], listen: Callable[..., Listener]
) -> None:
    open_log("o1").run([AddUser(1, "k", 1.0)])  # (and the scripts loaded)
    listener = listen("k")
    client = redis.client()

    def append(origin: str, number: int, floor: int, payload: str, talk_id: str = "") -> Any:
        return client.evalsha(
            SCRIPTS["append"][1], 5, room_key("k"), talks_key("k"), ids_key("k"), sent_key("k", origin),
            moved_key("k"), channel("k"), 100, 1, "2.0", payload, "", talk_id, number, floor, SENT_TTL_MS,
        )

    assert append("o1", 1, 1, "first") == 1
    assert append("o1", 1, 1, "first") == 1  # its answer was lost: asked again, the same answer, nothing stored
    assert append("o1", 2, 1, "second", "m-2") == 2
    assert append("o1", 2, 1, "second", "m-2") == 2  # its own answer, not the one for a resent talk id
    assert append("o2", 1, 1, "another process's first") == 3  # (numbers are each process's own)
    assert append("o1", 3, 3, "third") == 4  # 1 and 2 were answered: their records go
    assert append("o1", 1, 1, "first") == -1  # a late copy of an answered request: refused, nothing written
    assert append("o1", 2, 2, "second", "m-2") == -1
    assert client.zrange(sent_key("k", "o1"), 0, -1, withscores=True) == [(b"4", 3.0)]
    assert client.zrange(sent_key("k", "o2"), 0, -1, withscores=True) == [(b"3", 1.0)]
    for origin in ("o1", "o2"):  # a process gone leaves nothing behind for long
        assert 0 < client.pttl(sent_key("k", origin)) <= SENT_TTL_MS
    assert stored_payloads(redis) == [b"first", b"second", b"another process's first", b"third"]
    heard = [talk.payload for talk in listener.heard() if isinstance(talk, LoggedTalk)]
    assert heard == ["first", "second", "another process's first", "third"]  # each published once


def test_a_batch_after_redis_lost_its_scripts_loads_them_again_and_runs_once(
    redis: RedisServer, open_log: Callable[..., RedisLog]
) -> None:
    log = open_log("o1")
    assert log.run([AddUser(1, "k", 1.0)]) == [UserAdded(1, 1)]
    redis.client().script_flush()  # (as a restarted Redis: its script cache empty)
    assert log.run([Append(2, "k", 1, 2.0, "first"), Append(3, "k", 1, 3.0, "second")]) == [
        Appended(2, LoggedTalk("k", 1, 1, 2.0, "first")), Appended(3, LoggedTalk("k", 2, 1, 3.0, "second")),
    ]
    assert stored_payloads(redis) == [b"first", b"second"]


def test_an_error_reply_fails_its_own_request_and_no_other_in_the_batch(
    redis: RedisServer, open_log: Callable[..., RedisLog]
) -> None:
    log = open_log("o1")
    assert log.run([AddUser(1, "k", 1.0), AddUser(2, "broken", 1.0)]) == [UserAdded(1, 1), UserAdded(2, 1)]
    redis.client().set(talks_key("broken"), "not a stream")  # its XADD answers with an error (WRONGTYPE)
    assert log.run([Append(3, "broken", 1, 2.0, "lost"), Append(4, "k", 1, 2.0, "kept")]) == [
        LogFailed(3, INCONSISTENT), Appended(4, LoggedTalk("k", 1, 1, 2.0, "kept")),
    ]
    assert log.run([Append(5, "k", 1, 3.0, "next")]) == [Appended(5, LoggedTalk("k", 2, 1, 3.0, "next"))]


def stored_payloads(redis: RedisServer) -> list[bytes]:
    """The payloads in room k's stream, in offset order."""
    entries: Any = redis.client().xrange(talks_key("k"))
    return [fields[b"p"] for _, fields in entries]


@pytest.fixture
def proxy(redis: RedisServer) -> Iterator[TcpProxy]:
    with redis_proxy(redis) as forwarder:
        yield forwarder


@pytest.mark.parametrize("kind", STALLS)
def test_a_talk_redis_did_not_answer_is_asked_again_until_it_does_and_stored_once(
    redis: RedisServer, proxy: TcpProxy, listen: Callable[..., Listener], kind: str
) -> None:
    log = RedisLog(RedisSettings(f"redis://127.0.0.1:{proxy.port}/0", timeout=1.0), "o1")
    try:
        log.open()
        assert log.run([AddUser(1, "k", 1.0)]) == [UserAdded(1, 1)]
        listener = listen("k")
        with stalled(redis, kind, proxy):
            assert log.run([Append(2, "k", 1, 2.0, "in doubt")]) == []  # no answer yet: Redis may have it
            assert log.unanswered == 1
            # Within a second of the failure a talk is not sent at all: that one is reported not stored.
            assert log.run([Append(3, "k", 1, 3.0, "not sent")]) == [LogFailed(3, UNREACHABLE)]
            time.sleep(RETRY_AFTER_FAILURE)
            assert log.run([AskAgain()]) == []  # asked again (paused: one more copy on its way), no answer
            assert log.unanswered == 1
        time.sleep(RETRY_AFTER_FAILURE)
        assert log.run([Append(4, "k", 1, 4.0, "after")]) == [
            Appended(2, LoggedTalk("k", 1, 1, 2.0, "in doubt")), Appended(4, LoggedTalk("k", 2, 1, 4.0, "after")),
        ]  # the talk in doubt first, at the offset its first copy to run got
        assert log.unanswered == 0
        time.sleep(0.3)
        assert [talk.payload for talk in listener.heard() if isinstance(talk, LoggedTalk)] == ["in doubt", "after"]
        assert stored_payloads(redis) == [b"in doubt", b"after"]
    finally:
        log.close()


def test_a_subscriber_hands_a_flood_over_in_parts(open_log: Callable[..., RedisLog]) -> None:
    """A steady stream of news is handed to the event loop in bounded parts, not in one that never ends."""
    mine, theirs = open_log("mine"), open_log("theirs")
    assert theirs.run([AddUser(1, "k", 1.0)]) == [UserAdded(1, 1)]
    sizes: list[int] = []
    confirmed = threading.Event()

    def hand_over(burst: list[Any]) -> None:
        talks = [item for item in burst if isinstance(item, LoggedTalk)]
        if talks:
            sizes.append(len(talks))
        if not confirmed.is_set() and any(type(item).__name__ == "_Subscribed" for item in burst):
            confirmed.set()
            time.sleep(1.0)  # a busy event loop: meanwhile the flood queues up on the connection

    mine.subscriber.start(lambda function, *args: function(*args), hand_over)
    mine.subscriber.subscribe(["k"])
    assert confirmed.wait(5)
    count = 3 * MAX_BURST
    theirs.run([Append(2 + number, "k", 1, 2.0, f"talk {number}") for number in range(count)])
    deadline = time.monotonic() + 10
    while sum(sizes) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sum(sizes) == count
    assert max(sizes) <= MAX_BURST
    assert len(sizes) >= 3


def test_a_subscriber_hears_talks_longer_than_a_read_whole_and_in_order(open_log: Callable[..., RedisLog]) -> None:
    """Messages split across the subscriber's reads (each of 64 KiB at most) come out whole, in order."""
    mine, theirs = open_log("mine"), open_log("theirs")
    assert theirs.run([AddUser(1, "k", 1.0)]) == [UserAdded(1, 1)]
    heard: list[LoggedTalk] = []

    def hand_over(burst: list[Any]) -> None:
        heard.extend(item for item in burst if isinstance(item, LoggedTalk))

    mine.subscriber.start(lambda function, *args: function(*args), hand_over)
    assert mine.subscriber.subscribe(["k"]) == set()
    payloads = ["é" * 100_000, "short", "x" * 70_000 + "\n" + "y" * 70_000, "also short"]
    theirs.run([Append(2 + number, "k", 1, 2.0, payload) for number, payload in enumerate(payloads)])
    deadline = time.monotonic() + 5
    while len(heard) < len(payloads) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [(talk.offset, talk.payload) for talk in heard] == list(enumerate(payloads, start=1))


def test_a_subscriber_cut_soon_after_each_connect_waits_longer_each_time(
    open_log: Callable[..., RedisLog], redis: RedisServer
) -> None:
    """A Redis that drops the subscriber as soon as it is back (a full output buffer, CLIENT KILL) is not hammered."""
    log = open_log("mine")
    ups: list[float] = []

    def hand_over(burst: list[Any]) -> None:
        ups.extend(time.monotonic() for item in burst if getattr(item, "up", False))

    log.subscriber.start(lambda function, *args: function(*args), hand_over)
    log.subscriber.subscribe(["k"])  # (a connection subscribed to a channel is of type pubsub)
    killer = redis.client()
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            killer.client_kill_filter(_type="pubsub")
            time.sleep(0.02)
    finally:
        killer.close()
    assert 2 <= len(ups) <= 8, len(ups)  # 0.05 s, doubling: 7 tries in 3 s; at 0.05 s each it was about 30


def test_names_signed_in_users_hold_answer_as_the_model_and_the_memory_log_do(
    open_log: Callable[..., RedisLog], listen: Callable[..., Listener]
) -> None:
    """Joins and renames, signed in or not, on two processes, with names of a few keys (case variants): the model's
    answers and news, and the memory log's answers."""
    rng = random.Random(8)
    logs = [open_log("aaaa"), open_log("bbbb")]
    model, reference = RedisModel(), MemoryLog(history_limit=10)
    listener = listen("k")
    names = ["Ada", "ADA", "ada", "Bo", "BO", "Cy", "Dee", "dee"]
    requests: list[LogRequest] = [AddUser(0, "k", 1.0, token_hash="t0", name="Owner", name_key="owner")]
    for ticket in range(1, 400):
        name = rng.choice(names)
        if rng.random() < 0.7:
            named = rng.random() < 0.8
            requests.append(AddUser(
                ticket, "k", None, token_hash=f"t{ticket}", resume_hash=rng.choice([None, f"t{rng.randrange(ticket)}"]),
                name=name if named else None, subject=rng.choice([None, None, f"s{rng.randint(1, 8)}"]),
                name_key=folded(name) if named else None,
            ))
        else:
            requests.append(Rename(ticket, "k", rng.randint(1, 40), name, rng.choice([folded(name), None])))
    answers: list[LogResult] = []
    for request in requests:
        log = rng.choice(logs)
        (real,) = log.run([request])
        assert real == model_answer(model, request, log.origin), request
        expected = reference.answer(request)
        assert (replace(real, seq=None) if isinstance(real, NameSaved) else real) == expected, request
        answers.append(real)
    assert listener.heard() == model.published
    assert sum(isinstance(answer, Refused) and answer.reason == TAKEN for answer in answers) > 20
    assert sum(isinstance(answer, NameSaved) for answer in answers) > 20
