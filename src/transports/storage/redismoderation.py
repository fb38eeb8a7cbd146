"""Changes of rooms and retention on Redis, from the storage thread's side: `moderate` and `sweep`.

Both block; each runs its scripts (`redischanges`) on a client of its caller's. A change is read, judged by
`chatcore.control.judge` and applied only if nothing changed the room meanwhile (else read and judged again). A
sweep (retention) goes over every room a few at a time, one process at a time (``chat:sweep``), with every
loop bounded so that no command keeps Redis busy for long: what it erases, it publishes on the room's channel,
where every process holding the room hears it.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import redis

from chatcore.actions import Moderate
from chatcore.control import Delete, Edit, End, TalkFacts, judge
from chatcore.problems import ENDED
from chatcore.results import Changed, LogFailed, LoggedChange, LoggedTalk, Refused

from .redischanges import (
    CHANGE_ATTEMPTS,
    EVICT_WINDOW,
    control_of,
    kept_talk,
    message_tail,
    moved_talk,
    stream_fields,
    stream_talk,
    talks_now,
    updates,
    version,
)
from .redisscheme import (
    SCRIPTS,
    SENT_TTL_MS,
    SWEEP_KEY,
    bans_key,
    channel,
    mods_key,
    moved_key,
    room_key,
    room_keys,
    talks_key,
)

logger = logging.getLogger(__name__)

BUSY = "storage busy"
"""Why a change fails that other changes of its room kept getting ahead of (`CHANGE_ATTEMPTS`)."""
SCAN_COUNT = 100
"""Rooms a sweep looks at per step (SCAN's COUNT)."""
WALK_COUNT = 100
"""Offsets a sweep reads per step while it looks for a room's first talk to keep."""
SWEEP_LOCK_MS = 60_000
"""How long a sweep holds ``chat:sweep`` unless it renews it (at every step): a process that dies mid-sweep
keeps the others from sweeping for no longer."""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def moderate(
    client: redis.Redis, request: Moderate, retention: int, origin: str, window: int = EVICT_WINDOW
) -> Changed | Refused | LogFailed:
    """Judge and apply a change (`RedisError` if Redis fails meanwhile: the change may have been applied).

    ``window``: how far around a talk the talks leave the stream with it (`redischanges.EVICT_WINDOW`).
    """
    key, change = request.join_key, request.change
    offset = change.offset if isinstance(change, Edit | Delete) else 0
    keys = room_keys(key, origin)
    for _ in range(CHANGE_ATTEMPTS):
        read: Any = client.evalsha(
            SCRIPTS["control"][1], 5, room_key(key), mods_key(key), bans_key(key), talks_key(key), moved_key(key),
            offset, retention,
        )
        if read is None:
            return Refused(request.ticket, ENDED)
        room, moderators, banned, found = read
        control = control_of(room[2:], moderators, banned)
        talk: LoggedTalk | None = None if found is None else kept_talk(key, found)
        facts = None if talk is None else TalkFacts(talk.user_id, talk.deleted)
        refusal = judge(control, request.user_id, change, talk=facts, last_user_id=int(room[0]))
        if refusal is not None:
            return Refused(request.ticket, refusal)
        if talk is not None:
            talk = talk.edit(change.payload, request.time) if isinstance(change, Edit) else talk.erased()
        done: Any = client.evalsha(
            SCRIPTS["change"][1], len(keys), *keys, channel(key), control.seq, retention, offset or "",
            "" if talk is None else version(talk), message_tail(request.user_id, request.time, change, talk),
            SENT_TTL_MS, "end" if isinstance(change, End) else "", window,
            *updates(control, control.after(change, control.seq + 1)), "|",
            *stream_fields(request.user_id, request.time, change),
        )
        if done == 0:
            return Refused(request.ticket, ENDED)
        if done != -1:
            seq, after = done
            return Changed(request.ticket, LoggedChange(
                key, int(seq), int(after), request.user_id, request.time, change, talk
            ))
    logger.warning("Redis: a change of a room kept losing to others %d times; not done", CHANGE_ATTEMPTS)
    return LogFailed(request.ticket, BUSY)


def sweep(client: redis.Redis, before: float, origin: str, retention: int, window: int = EVICT_WINDOW) -> int:
    """Retention over every room, unless another process is at it: the rooms looked at."""
    token = secrets.token_hex(8)
    if not client.set(SWEEP_KEY, token, nx=True, px=SWEEP_LOCK_MS):
        return 0
    swept = 0
    try:
        cursor: Any = 0
        while True:
            cursor, keys = client.scan(cursor, match="chat:{*}:room", count=SCAN_COUNT)
            join_keys = [_text(key)[6:-6] for key in keys]  # chat:{ ... }:room
            swept += len(join_keys)
            pipeline = client.pipeline(transaction=False)
            for join_key in join_keys:
                pipeline.evalsha(SCRIPTS["age"][1], 3, room_key(join_key), talks_key(join_key),
                                 moved_key(join_key))
            for join_key, age in zip(join_keys, pipeline.execute(), strict=True):
                if age is not None:
                    _expire_room(client, join_key, age, before, origin, (retention, window))
            if cursor == 0 or not client.eval(_RENEW, 1, SWEEP_KEY, token, SWEEP_LOCK_MS):
                return swept
    finally:
        client.eval(_RELEASE, 1, SWEEP_KEY, token)


def _expire_room(
    client: redis.Redis, join_key: str, age: Any, before: float, origin: str, sizes: tuple[int, int]
) -> None:
    """Retention in one room, given what `AGE` read: end it if it had no talk since ``before``, else erase the talks
    sent before it (a prefix of the room's talks, as the memory log does). ``sizes``: retention (talks kept) and
    `redischanges.EVICT_WINDOW`."""
    (last, created), newest, first_entry, first_moved = age
    keys = room_keys(join_key, origin)
    if (float(created) if newest is None else kept_talk(join_key, newest).time) < before:
        client.evalsha(SCRIPTS["end_quiet"][1], len(keys), *keys, channel(join_key), last, f"0\n{before!r}\nend",
                       "", "", "", SENT_TTL_MS)
        return
    firsts = [
        *([stream_talk(join_key, first_entry)] if first_entry is not None else []),
        *([moved_talk(join_key, first_moved)] if first_moved is not None else []),
    ]
    if not firsts:
        return
    first = min(firsts, key=lambda talk: talk.offset)
    if first.time >= before:
        return
    retention, window = sizes
    start, last_offset = first.offset, int(last)
    floor = last_offset - retention + 1  # (a talk before it may linger in the stream: never read, erased all the same)
    seen: int | None = None  # the first talk of the retention window
    while start <= last_offset:
        end = start + WALK_COUNT - 1
        pipeline = client.pipeline(transaction=False)
        pipeline.xrange(talks_key(join_key), f"{start}-0", f"{end}-0")
        pipeline.zrangebyscore(moved_key(join_key), start, end)
        entries, moved = pipeline.execute()
        for talk in talks_now(join_key, entries, moved):
            if seen is None and talk.offset >= floor:
                seen = talk.offset
            if talk.time >= before:
                news = "1" if seen is not None and talk.offset > seen else "0"
                client.evalsha(SCRIPTS["trim"][1], len(keys), *keys, channel(join_key), talk.offset, window, retention,
                               news)
                return
        start = end + 1


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key
