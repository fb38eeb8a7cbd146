"""Changes of a room held in memory (`chatcore.control`), applied in the log's order and told to its members.

A change comes back from the log numbered (``seq``) and placed after a talk
(``after``): the core applies a room's changes in number order, each once the
talk it follows has been delivered (`Room.next_change` holds back the others),
so every process shows the same talks and changes in the same order. An edit
or a delete replaces the talk the room holds; a removal closes the user's
connections (4403), and ends its grace if it is in one (`chatcore.graces`); an end
closes every connection (4410), and the caller lets the room go.
"""

from __future__ import annotations

from collections.abc import Callable

from . import closecodes
from .actions import Action, Broadcast, Close, ConnectionId
from .control import End, Remove
from .graces import gone
from .results import LoggedChange
from .rooms import Room

REMOVED_REASON = "removed from this chat"
ENDED_REASON = "this chat was ended"

Closer = Callable[[ConnectionId, int, str], "Close | None"]
"""Asks the core to close a connection (None: it is closing already)."""


def take(room: Room, entry: LoggedChange, close: Closer) -> tuple[list[Action], bool]:
    """A change of the room from the log: what to do now, and whether the room ended (the caller lets it go).

    One already applied is ignored; one that is not due yet is held until it is.
    """
    if entry.seq <= room.control.seq:
        return [], False
    room.hold_change(entry)
    return due(room, close)


def due(room: Room, close: Closer) -> tuple[list[Action], bool]:
    """Apply the held changes that are now due, in order (after talks were delivered, or a change applied)."""
    actions: list[Action] = []
    while (entry := room.next_change()) is not None:
        actions.extend(apply(room, entry, close))
        if isinstance(entry.change, End):
            return actions, True
    return actions, False


def apply(room: Room, entry: LoggedChange, close: Closer) -> list[Action]:
    """Apply one change to the room, and tell its members (those whose dialect shows changes)."""
    change = entry.change
    room.control = room.control.after(change, entry.seq)
    if entry.talk is not None:
        room.replace_talk(entry.talk)
    actions: list[Action] = []
    if isinstance(change, End):
        room.ended = True
        for connection in room.connections():
            closed = close(connection, closecodes.ENDED, ENDED_REASON)
            if closed is not None:
                actions.append(closed)
        return actions
    removed: list[ConnectionId] = []
    if isinstance(change, Remove):
        removed = room.connections_of(change.user_id)
    for dialect, members in room.audiences():
        if not dialect.shows_changes:
            continue
        text = dialect.change_event(entry, room.control)
        recipients = tuple(member for member in members if member not in removed) if removed else members
        if text is not None and recipients:
            actions.append(Broadcast(room.join_key, recipients, text))
    for connection in removed:
        closed = close(connection, closecodes.REMOVED, REMOVED_REASON)
        if closed is not None:
            actions.append(closed)
    if isinstance(change, Remove) and room.leaving.pop(change.user_id, None) is not None:
        actions.extend(gone(room, change.user_id, held=True))  # (no connection here to close: gone now)
    return actions
