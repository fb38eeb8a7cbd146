"""Who is in a room, and telling its members who joins, leaves and is renamed.

A user is in a room while it has a connection to it here (``Room.local``)
or, with a log shared by several processes, on another process (as their
news says, in order: `apply_heard`, `apply_snapshot`). Every change of
presence goes through `announce`, which tells the members whose dialect
announces presence and drops the names of users no longer there (the log
keeps them), so that a room in use keeps only its members' names.
"""

from __future__ import annotations

from collections.abc import Mapping

from .actions import Action, Broadcast, ConnectionId
from .results import PresenceHeard, PresenceSnapshot
from .rooms import Room

Before = Mapping[int, tuple[bool, str | None]]
"""For each user concerned: whether present, and its name, before the change."""


def before(room: Room, *user_ids: int) -> dict[int, tuple[bool, str | None]]:
    """The users' presence and names now, to `announce` what changes."""
    return {user_id: (room.present(user_id), room.names.get(user_id)) for user_id in user_ids}


def announce(
    room: Room, was: Before, *, renamed: bool = False, exclude: ConnectionId | None = None
) -> list[Action]:
    """Tell the room's members who joined, left or was renamed since ``was``.

    ``renamed``: a rename was asked for; it is announced even to the same name (the renamer waits for it).
    ``exclude``: a connection not to tell (a joiner, told by the reply to its ``init``).
    """
    for user_id in was:
        room.forget_if_absent(user_id)
    audiences = [(dialect, members) for dialect, members in room.audiences() if dialect.announces_presence]
    if not audiences:
        return []
    actions: list[Action] = []
    for user_id, (was_present, old_name) in was.items():
        present, name = room.present(user_id), room.names.get(user_id)
        verified = user_id in room.verified
        if present and not was_present:
            kind = "joined"
        elif was_present and not present:
            kind = "left"
        elif present and (renamed or name != old_name):
            kind = "renamed"
        else:
            continue
        for dialect, members in audiences:
            if exclude is not None and exclude in members:
                members = tuple(member for member in members if member != exclude)
            if members:
                actions.append(Broadcast(room.join_key, members, dialect.presence_event(kind, user_id, name, verified)))
    return actions


def apply_heard(room: Room, heard: PresenceHeard) -> list[Action]:
    """News from another process (unless a snapshot read after it had it already)."""
    if heard.seq <= room.presence_seq:
        return []
    room.presence_seq = heard.seq
    user_id = heard.user_id
    was = before(room, user_id)
    if heard.here is not False:
        room.rename(user_id, heard.name, heard.seq)
        if heard.verified:
            room.verified.add(user_id)
    if heard.here is not None:
        room.set_remote((heard.origin, user_id), heard.here)
    return announce(room, was)


def apply_snapshot(room: Room, snapshot: PresenceSnapshot) -> list[Action]:
    """Who is on the other processes, read from the log: replaces what their news said."""
    was = before(room, *(set(room.remote_users) | {user_id for _, user_id, _ in snapshot.entries}))
    room.presence_seq = snapshot.seq
    room.remote.clear()
    room.remote_users.clear()
    for origin, user_id, name in snapshot.entries:
        room.rename(user_id, name, snapshot.seq)
        room.set_remote((origin, user_id), True)
    room.verified |= snapshot.verified
    return announce(room, was)
