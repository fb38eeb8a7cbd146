"""Users in the SQLite room log: who a join names and whether the room lets it in (`AddUser` with a token, a name or
a sign-in), and renames (`Rename`), answered as the memory log answers them (`chatcore.memorylog`).

A signed-in user (one with a subject) holds the key of its name (``users.name_key``, computed by the core): an
unsigned user may neither join with a name of that key nor rename itself to one. `sqlite.Database` calls these
inside its write transactions, on the storage thread, so that a check and what it allows are one step.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from chatcore import AddUser, KeyTaken, NameSaved, Rename, UserAdded
from chatcore.problems import BANNED, LOCKED, TAKEN
from chatcore.results import Refused

from ..logs import room_hash
from .sqlfile import Inconsistent
from .sqlschema import (
    CREATE_ROOM,
    NAME_HELD,
    NEW_USER,
    NEXT_USER_ID,
    RENAMING,
    RESUME,
    ROOM_EXISTS,
    SAVE_NAME,
    SAVE_USER,
    SIGN_IN,
)


def add_user(connection: sqlite3.Connection, write: AddUser) -> UserAdded | KeyTaken | Refused:
    """Inside a transaction: a join with a token, a name or a subject (a seed join is done inline).

    With a subject, the user registered with it; without, the one its resume token names; else a new user id in
    the room (created first if asked) with the join's token hash, name and subject; unless the room's rules keep it
    out (`chatcore.control.refuse_join`: banned, locked), or the join has no subject, is not a signed-in user's, and
    asks for a name a signed-in user holds (`TAKEN`). A signed-in user's name changes only with a join that carries
    its subject.
    """
    execute = connection.execute
    if write.created is not None and execute(CREATE_ROOM, (write.join_key, write.created)).rowcount == 0:
        return KeyTaken(write.ticket)
    signed = write.subject is not None
    if signed:
        found = execute(SIGN_IN, (write.join_key, write.subject)).fetchone()
    elif write.resume_hash is not None:
        found = execute(RESUME, (write.join_key, write.resume_hash, write.name_key)).fetchone()
    else:
        found = ()
    if found is None:
        raise Inconsistent(f"no room {room_hash(write.join_key)}")
    if found:
        answer = _returning(connection, write, found)
        if answer is not None:
            return answer
    if not signed and write.name_key is not None and execute(NAME_HELD, (write.join_key, write.name_key)).fetchone():
        return Refused(write.ticket, TAKEN)
    row = execute(NEXT_USER_ID + ", id", (write.join_key,)).fetchone()
    if row is None:
        return locked_out(connection, write)
    user_id, room = row
    name = write.name
    if write.token_hash is not None or name is not None or signed:
        (name,) = execute(
            NEW_USER, (room, user_id, name, write.token_hash, write.subject, write.name_key if signed else None)
        ).fetchone()
    return UserAdded(write.ticket, user_id, False, name, signed)


def _returning(connection: sqlite3.Connection, write: AddUser, found: Any) -> UserAdded | Refused | None:
    """A join's answer when ``found`` (its `sqlschema.SIGN_IN` or `sqlschema.RESUME` row) names a user of the room
    (None: it names none, a new user it is)."""
    room, user_id, name, banned = found[:4]
    if write.subject is None:
        if user_id is None:
            return None
        if banned:
            return Refused(write.ticket, BANNED)
        if found[4]:  # (signed in: its name is its sign-in's, whatever a join by its token alone says)
            return UserAdded(write.ticket, user_id, True, name, True)
        if found[5]:
            return Refused(write.ticket, TAKEN)
        if write.name is not None and write.name != name:
            connection.execute(SAVE_USER, (room, user_id, write.name, None, None))
        return UserAdded(write.ticket, user_id, True, name if write.name is None else write.name, False)
    held = found[4]
    if user_id is None:
        return None
    if banned:
        return Refused(write.ticket, BANNED)
    name_key = write.name_key
    if (write.name is not None and write.name != name) or (name_key is not None and name_key != held):
        connection.execute(SAVE_USER, (room, user_id, write.name, write.subject, name_key))
    return UserAdded(write.ticket, user_id, True, name if write.name is None else write.name, True)


def locked_out(connection: sqlite3.Connection, write: AddUser) -> Refused:
    """Inside a transaction: a new user's join found no room open to it (a missing room is `Inconsistent`)."""
    if connection.execute(ROOM_EXISTS, (write.join_key,)).fetchone() is None:
        raise Inconsistent(f"no room {room_hash(write.join_key)}")
    return Refused(write.ticket, LOCKED)


def rename(connection: sqlite3.Connection, room: int, write: Rename) -> NameSaved | Refused:
    """Inside a transaction: a user's new name in the room (by id), unless the user is not signed in and a signed-in
    user holds the name's key (`TAKEN`); a signed-in user holds the new name's key instead of the one it held."""
    signed, held = connection.execute(RENAMING, (room, write.user_id, write.name_key)).fetchone()
    if held and not signed:
        return Refused(write.ticket, TAKEN)
    connection.execute(SAVE_NAME, (room, write.user_id, write.name, write.name_key if signed else None))
    return NameSaved(write.ticket)
