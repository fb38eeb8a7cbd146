"""Room control in the SQLite room log (`chatcore.control`): a room's control state, a change judged and made
(`Moderate`), retention (`Expire`), and text erased for real. Who a join names, and whether the room lets it in, is
in `sqlusers`.

`sqlite.Database` calls these inside its transactions, on the storage thread. Erased text is overwritten in
the file as it is deleted (``PRAGMA secure_delete``, set when the database opens) and, once the transaction
has committed, no older copy of its pages is left in the write-ahead log either (`truncate_wal`).
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from chatcore import LoggedTalk, LogResult
from chatcore.actions import Moderate
from chatcore.control import (
    NEVER_CHANGED,
    Delete,
    Edit,
    End,
    Remove,
    RoomControl,
    SetRole,
    TalkFacts,
    judge,
)
from chatcore.results import ChangeArrived, Changed, Expired, LoggedChange, Refused

from .sqlschema import (
    EDIT_TALK,
    ENDING_ROOMS,
    ERASE_CHAIN,
    ERASE_OLD_TALKS,
    ERASE_ROOM,
    ERASE_TALK,
    ERASE_TALK_ID,
    EXPIRING_ROOMS,
    HISTORY_START,
    NEWEST_TALK_ID,
    OLD_TALK_IDS,
    OLDEST_TALK,
    SAVE_CONTROL,
    SAVE_ROLE,
    SKIP_DOWN,
    STAFF_AND_BANNED,
    TALK,
    TALK_FROM,
)

logger = logging.getLogger(__name__)

ControlRow = tuple[int, int, str | None, int, int]
"""A room's id, last user id, title, locked and change number (`sqlschema.ROOM_CONTROL`)."""


def room_control(connection: sqlite3.Connection, room: int, title: str | None, locked: int, seq: int) -> RoomControl:
    """A room's control state: its row's title, lock and change number, with its users' roles and bans."""
    if not seq:
        return NEVER_CHANGED  # (only a change sets any of it: a room never changed has no user row to read)
    moderators: list[int] = []
    banned: list[int] = []
    for user_id, moderator, ban in connection.execute(STAFF_AND_BANNED, (room,)):
        if moderator:
            moderators.append(user_id)
        if ban:
            banned.append(user_id)
    return RoomControl(title, bool(locked), frozenset(moderators), frozenset(banned), seq)


def moderate(
    connection: sqlite3.Connection, write: Moderate, row: ControlRow, last_talk: int | None, last_offset: int
) -> tuple[Changed | Refused, bool]:
    """Inside a transaction, with every talk placed so far inserted: judge a change on the room's state and make it.

    ``row`` is the room's (`ControlRow`), ``last_talk`` and ``last_offset`` its newest talk's id and offset.
    Returns the answer, and whether text was erased (an edit's old text too): the caller then truncates the
    write-ahead log once the transaction has committed.
    """
    room, last_user_id, title, locked, seq = row
    control = room_control(connection, room, title, locked, seq)
    change = write.change
    talk_row: int | None = None
    talk: LoggedTalk | None = None
    if isinstance(change, Edit | Delete):
        found = talk_at(connection, write.join_key, room, last_talk, last_offset, change.offset)
        if found is not None:
            talk_row, talk = found
    facts = None if talk is None else TalkFacts(talk.user_id, talk.deleted)
    refusal = judge(control, write.user_id, change, talk=facts, last_user_id=last_user_id)
    if refusal is not None:
        return Refused(write.ticket, refusal), False
    seq += 1
    execute = connection.execute
    erased = False
    if isinstance(change, End):
        execute(ERASE_CHAIN, (last_talk,))
        erase_room(connection, room)
        erased = True
    else:
        after = control.after(change, seq)
        execute(SAVE_CONTROL, (after.title, after.locked, seq, room))
        if isinstance(change, Remove | SetRole):
            user = change.user_id
            execute(SAVE_ROLE, (room, user, user in after.moderators, user in after.banned))
        elif talk is not None:
            if isinstance(change, Edit):
                execute(EDIT_TALK, (change.payload, write.time, talk_row))
                talk = talk.edit(change.payload, write.time)
            else:
                execute(ERASE_TALK, (talk_row,))
                talk = talk.erased()
            erased = True
    entry = LoggedChange(write.join_key, seq, last_offset, write.user_id, write.time, change, talk)
    return Changed(write.ticket, entry), erased


def talk_at(
    connection: sqlite3.Connection, join_key: str, room: int, last_talk: int | None, last_offset: int, offset: int
) -> tuple[int, LoggedTalk] | None:
    """The row id of the room's talk at ``offset``, and the talk as it is now; None if the log does not keep it.

    A walk down the room's chain from the checkpoint above it: at most `sqlschema.CHECKPOINT_EVERY` lookups.
    """
    if last_talk is None or not 1 <= offset <= last_offset:
        return None
    execute = connection.execute
    checkpoint = execute(HISTORY_START, (room, offset)).fetchone()
    found = execute(SKIP_DOWN, (last_talk if checkpoint is None else checkpoint[0], offset + 1)).fetchone()
    if found is None:
        return None
    row = execute(TALK, found).fetchone()
    if row is None or row[0] != offset:
        return None  # (erased by retention: the walk ended on an older offset)
    return found[0], stored_talk(join_key, row)


def stored_talk(join_key: str, row: Any) -> LoggedTalk:
    """A talk from a row of (offset, user id, time, payload, name, talk id, edited, verified, ...)."""
    offset, user_id, time, payload, name, talk_id, edited, verified = row[:8]
    return LoggedTalk(join_key, offset, user_id, time, payload, name, talk_id, edited, bool(verified))


def erase_room(connection: sqlite3.Connection, room: int) -> None:
    """Delete a room's row and those of its users, talk ids and checkpoints (its talks are the caller's)."""
    for statement in ERASE_ROOM:
        connection.execute(statement, (room,))


def expire(connection: sqlite3.Connection, before: float) -> tuple[list[LogResult], list[str]]:
    """Inside a transaction: erase the talks sent before ``before``, and end the rooms with no talk since.

    Returns the news for every room concerned, in the order of their ids (the order they were created in):
    `Expired` with the first offset a room keeps, or the `End` of a room by the log (``by`` 0); and the join
    keys of the rooms ended.
    """
    execute = connection.execute
    boundary = first_kept(connection, before)
    news: list[tuple[int, LogResult]] = []
    ended = execute(ENDING_ROOMS, (boundary, before)).fetchall()
    for room, join_key, seq, last_offset in ended:
        news.append((room, ChangeArrived(LoggedChange(join_key, seq + 1, last_offset, 0, before, End()))))
    if boundary:
        news.extend((room, Expired(join_key, first)) for room, join_key, first in execute(EXPIRING_ROOMS, (boundary,)))
        connection.executemany(ERASE_TALK_ID, execute(OLD_TALK_IDS, (boundary,)).fetchall())
        for statement in ERASE_OLD_TALKS:  # (the talks of the rooms ended are all among them)
            execute(statement, (boundary,))
    for room, *_ in ended:
        erase_room(connection, room)
    news.sort(key=lambda item: item[0])
    return [item for _, item in news], [join_key for _, join_key, *_ in ended]


def first_kept(connection: sqlite3.Connection, before: float) -> int:
    """The talk id below which every talk was sent before ``before``; 0 if the oldest talk was not.

    Each talk gets the next id when it is stored, and its time from the server's clock then: ids grow with
    time, and a binary search over them (O(log n) searches of the talks table, each O(log n)) finds the
    boundary without reading every talk's time. Erasing the talks below one id erases the oldest talks of
    each room, whatever the clock did: every room's chain keeps its newest talks, with none missing between.
    """
    execute = connection.execute
    oldest = execute(OLDEST_TALK).fetchone()
    if oldest is None or oldest[1] >= before:
        return 0
    low: int = oldest[0] + 1
    high: int = execute(NEWEST_TALK_ID).fetchone()[0] + 1
    # Every talk below low was sent before `before`; the first talk from high up (if any) was not.
    while low < high:
        middle = (low + high) // 2
        talk_id, time = execute(TALK_FROM, (middle,)).fetchone()
        if time < before:
            low = talk_id + 1
        else:
            high = middle
    return low


def truncate_wal(connection: sqlite3.Connection, name: str) -> None:
    """After a commit that erased text: copy the write-ahead log into the file and empty it.

    The log still holds older copies of the pages the text was on (the file has them overwritten, with
    ``secure_delete``). Rare (deletes, edits, ends, retention), so a full checkpoint is affordable.
    """
    try:
        busy = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    except sqlite3.Error as error:
        logger.error("%s: could not empty the write-ahead log after erasing messages: %s", name, error)
        return
    if busy:
        logger.warning("%s: the write-ahead log could not be emptied after erasing messages (busy)", name)
