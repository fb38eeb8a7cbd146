"""What the storage thread sends Redis for each piece of work, and what each reply means (`redislog` runs them).

Besides the core's requests, the storage thread has work of its own (`Refresh`, `AskAgain`) and answers of its own
(`FillFailed`, `FilledFrom`, `EpochChanged`, `SweepDue`); a talk goes with its request number (`Numbered`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, TypeAlias

from chatcore import (
    AddUser,
    Append,
    Appended,
    Fill,
    Filled,
    Forget,
    History,
    HistoryRead,
    KeyTaken,
    Load,
    Loaded,
    LogFailed,
    LoggedTalk,
    LogRequest,
    LogResult,
    NameSaved,
    Presence,
    PresenceSnapshot,
    Rename,
    SavedRoom,
    Subscribe,
    Typing,
    UserAdded,
)
from chatcore.actions import Expire, Moderate
from chatcore.problems import BANNED, LOCKED, TAKEN
from chatcore.results import INCONSISTENT, LoggedChange, Refused

from ..config import RedisSettings
from .redischanges import control_of, moved_talk, published_change, stored_change, stream_talk, talks_now
from .redisscheme import (
    SCRIPTS,
    SENT_TTL_MS,
    bans_key,
    changes_key,
    channel,
    ended_key,
    ids_key,
    mods_key,
    moved_key,
    room_key,
    sent_key,
    talks_key,
    typing_news,
    users_key,
    who_key,
)

logger = logging.getLogger(__name__)

_REFUSALS = {-2: BANNED, -3: LOCKED, -4: TAKEN}
"""`redisscheme.ADD_USER`'s refusals."""


# What goes to the storage thread besides the core's requests, and what comes back besides their results.

@dataclass(frozen=True, slots=True)
class Refresh:
    """Renew the presence of this process's users in the room, drop what expired, and read who is in it."""

    join_key: str
    user_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class AskAgain:
    """Ask Redis again about the talks it was sent and has not answered (a batch of its own while rooms are quiet)."""


@dataclass(frozen=True, slots=True)
class FillFailed:
    """Redis could not be reached for a `Fill`: the broker asks again a little later."""

    fill: Fill


@dataclass(frozen=True, slots=True)
class FilledFrom:
    """A fill's answer in a room retention erased talks of: the first one it kept (it may have while the process was
    not listening: the broker tells the core so, with an `Expired`, before the `Filled`)."""

    filled: Filled
    first: int


@dataclass(frozen=True, slots=True)
class SweepDue:
    """The storage thread reached an `Expire`: everything asked before it is done, retention may sweep now."""

    before: float


@dataclass(frozen=True, slots=True)
class EpochChanged:
    """Redis came back without the data it had: every room held in memory is gone from it."""


Work: TypeAlias = LogRequest | Fill | Expire | Subscribe | Forget | Presence | Typing | Refresh | AskAgain
Answer: TypeAlias = LogResult | FillFailed | FilledFrom | EpochChanged | SweepDue
"""(A `Fill` has its `Filled`; a `Presence` or a `Typing` no answer; a `Refresh` its `PresenceSnapshot`, or none if it
failed.)"""
Command: TypeAlias = LogRequest | Fill | Presence | Typing | Refresh
"""Work done by a command in the batch's pipeline."""


@dataclass(frozen=True, slots=True)
class Numbered:
    """A talk with the number its request has, and keeps when asked again, in the room's ``sent`` records."""

    append: Append
    number: int


Sent: TypeAlias = Command | Numbered
"""A command in a batch's pipeline (talks numbered)."""


def command(item: Sent, floor: int, settings: RedisSettings, origin: str, ttl: str) -> tuple[Any, ...]:
    """The command that does ``item``; ``floor``: the lowest number of a talk not answered yet; ``origin``: this
    process; ``ttl``: its presence's, in ms."""
    key = item.append.join_key if isinstance(item, Numbered) else item.join_key
    retention = str(settings.retention)
    if isinstance(item, Numbered):
        append = item.append
        return ("EVALSHA", SCRIPTS["append"][1], 5, room_key(key), talks_key(key), ids_key(key),
                sent_key(key, origin), moved_key(key), channel(key), retention, append.user_id,
                repr(append.time), append.payload, append.name or "", append.talk_id or "", item.number, floor,
                SENT_TTL_MS, *(("1",) if append.verified else ()))
    if isinstance(item, AddUser):
        created = "" if item.created is None else repr(item.created)
        return ("EVALSHA", SCRIPTS["add_user"][1], 3, room_key(key), users_key(key), bans_key(key), created,
                item.token_hash or "", item.resume_hash or "", item.name or "", item.name_key or "",
                *(() if item.subject is None else (item.subject,)))
    if isinstance(item, Load):
        return ("EVALSHA", SCRIPTS["load"][1], 7, room_key(key), who_key(key), users_key(key), talks_key(key),
                mods_key(key), bans_key(key), moved_key(key), item.recent, retention)
    if isinstance(item, Presence):
        return ("EVALSHA", SCRIPTS["presence"][1], 3, room_key(key), who_key(key), users_key(key), channel(key),
                origin, item.user_id, "1" if item.here else "0", ttl)
    if isinstance(item, Typing):
        return ("PUBLISH", channel(key), typing_news(origin, item.user_id))
    if isinstance(item, Refresh):
        return ("EVALSHA", SCRIPTS["refresh"][1], 3, room_key(key), who_key(key), users_key(key), channel(key),
                origin, ttl, *item.user_ids)
    if isinstance(item, Rename):
        return ("EVALSHA", SCRIPTS["rename"][1], 3, room_key(key), who_key(key), users_key(key), channel(key),
                origin, item.user_id, item.name, item.name_key or "")
    if isinstance(item, History):
        highest = max(0, min(item.before, 2**63) - 1)  # (a stream id is at most 2**64 - 1)
        return ("EVALSHA", SCRIPTS["history"][1], 3, room_key(key), talks_key(key), moved_key(key), str(highest),
                item.limit, retention)
    assert isinstance(item, Fill), item  # (an Append is always numbered; a Moderate is not a command)
    return ("EVALSHA", SCRIPTS["fill"][1], 5, room_key(key), talks_key(key), moved_key(key), changes_key(key),
            ended_key(key), item.after, item.changes_after, retention)


def answer(item: Command, reply: Any, origin: str) -> Answer | None:
    """One pipeline reply as the answer the loop expects (None: the command has none); ``origin``: this process."""
    key = item.join_key
    if isinstance(item, Fill):
        if isinstance(reply, Exception):
            return FillFailed(item)
        return _filled(item, reply)
    if isinstance(item, Typing):
        return None  # (told or not: nobody waits for it)
    if isinstance(item, Presence | Refresh):
        if isinstance(reply, Exception):
            logger.error("Redis: %s", reply)
            return None
        if isinstance(item, Presence) or reply is None:
            return None  # (a Refresh of a room Redis does not have)
        seq, who = reply
        return snapshot(key, seq, who, origin)
    if isinstance(reply, Exception):
        logger.error("Redis: %s", reply)
        return LogFailed(item.ticket, INCONSISTENT)
    if isinstance(item, Append):
        if isinstance(reply, list):
            return Appended(item.ticket, stream_talk(key, reply[0]), duplicate=True)
        if isinstance(reply, bytes):  # (edited or deleted since)
            return Appended(item.ticket, moved_talk(key, reply), duplicate=True)
        if reply <= 0:  # no room; or (never for a request still waiting for its answer) refused as late
            return LogFailed(item.ticket, INCONSISTENT)
        return Appended(item.ticket, LoggedTalk(
            key, int(reply), item.user_id, item.time, item.payload, item.name, item.talk_id, verified=item.verified
        ))
    if isinstance(item, AddUser):
        if reply == -1:
            return KeyTaken(item.ticket)
        if reply == 0:
            return LogFailed(item.ticket, INCONSISTENT)
        if isinstance(reply, int):  # (the script's rules are chatcore.control.refuse_join's, and names held)
            return Refused(item.ticket, _REFUSALS[reply])
        user_id, resumed, name, signed = reply
        return UserAdded(item.ticket, int(user_id), bool(resumed), _text(name), bool(signed))
    if isinstance(item, Rename):
        if reply == -1:
            return Refused(item.ticket, TAKEN)
        return LogFailed(item.ticket, INCONSISTENT) if reply == 0 else NameSaved(item.ticket, int(reply))
    if isinstance(item, History):
        if reply is None:
            return LogFailed(item.ticket, INCONSISTENT)
        entries, moved, older = reply
        return HistoryRead(item.ticket, talks_now(key, entries, moved), bool(older))
    assert isinstance(item, Load), item
    if reply is None:
        return Loaded(item.ticket, None)
    last_offset, entries, seq, who, room, moderators, banned, moved = reply
    return Loaded(item.ticket, SavedRoom(
        key, int(last_offset), talks_now(key, entries, moved), snapshot(key, seq, who, origin),
        control_of(room, moderators, banned),
    ))

def snapshot(join_key: str, seq: Any, who: Any, origin: str) -> PresenceSnapshot:
    """A script's {pseq, {{members}, {names}, {signed in}}} as the core takes it: without this process's own
    entries."""
    members, names, signed = who
    entries: list[tuple[str, int, str | None]] = []
    verified: set[int] = set()
    for member, name, flag in zip(members, names, signed, strict=True):
        entry_origin, _, user_id = member.decode().rpartition(":")
        if entry_origin != origin:
            entries.append((entry_origin, int(user_id), _text(name)))
            if flag:
                verified.add(int(user_id))
    return PresenceSnapshot(join_key, int(seq), tuple(sorted(entries)), frozenset(verified))


def failure(work: Work, reason: str) -> Answer | None:
    """The answer to work that could not be done (None: it has none; a missed `Presence` is renewed by `Refresh`)."""
    if isinstance(work, AddUser | Append | Load | Rename | History | Moderate):
        return LogFailed(work.ticket, reason)
    if isinstance(work, Fill):
        return FillFailed(work)
    return None


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _filled(fill: Fill, reply: Any) -> Filled | FilledFrom:
    """`FILL`'s reply: the room's talks after ``fill.after`` as they are now, and its changes after
    ``fill.changes_after`` (an ended room's end, if it ended lately); with the room's first talk kept."""
    key = fill.join_key
    if not isinstance(reply, list):
        end = None if reply is None else published_change(key, reply)
        ended = (end,) if isinstance(end, LoggedChange) and end.seq > fill.changes_after else ()
        return Filled(key, fill.after, (), ended)
    entries, moved, changes, versions, first = reply
    filled = Filled(key, fill.after, talks_now(key, entries, moved), tuple(
        stored_change(key, entry, current) for entry, current in zip(changes, versions, strict=True)
    ))
    return FilledFrom(filled, int(first)) if int(first) else filled
