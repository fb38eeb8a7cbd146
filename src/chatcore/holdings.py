"""The rooms one process holds in memory, the rooms being loaded, and what other processes append to them.

A room is held while it has members or log requests in flight (`forget_if_idle`
lets it go, and tells the log: `Forget`); the log has the rest. Before a room is
read from the log (a `Load`, or an `AddUser` that creates it) the core asks a
shared log to `Subscribe` it; the answer to that read is where the room's
`RoomFeed` starts (`watched`), and talks other processes append (`arrived`)
are delivered like the core's own, in offset order, gaps filled (`Fill`).
Changes of a room (`chatcore.changes`) take the same way: the log's answer to
this process's own, and those made elsewhere (`changed`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from . import changes, closecodes
from .actions import Action, Broadcast, Fill, Forget, Ticket
from .changes import Closer
from .feed import Lost, RoomFeed
from .graces import Graces, ended, gone
from .pending import RoomLoad
from .presence import apply_heard, apply_snapshot
from .results import (
    Expired,
    Filled,
    Loaded,
    LogAnswer,
    LoggedChange,
    LoggedTalk,
    PresenceHeard,
    PresenceSnapshot,
    TypingHeard,
    UserAdded,
)
from .rooms import Room
from .typers import heard

MAX_JOIN_KEY_ATTEMPTS = 16


class Holdings:
    """Rooms held (``rooms``), rooms being loaded (``loading``), and the feed of talks from other processes."""

    def __init__(self, history_limit: int, close: Closer, grace: float = 0.0) -> None:
        self.history_limit = history_limit
        self._close = close
        self.graces = Graces(grace)
        self.rooms: dict[str, Room] = {}
        self.loading: dict[str, RoomLoad] = {}
        self._feed = RoomFeed()
        self.watching: dict[Ticket, tuple[str, bool]] = {}
        """Loads and creations in flight: the room, and whether a load (the feed starts from their answer)."""

    def create(self, new_join_key: Callable[[], str]) -> Room:
        """A new room under a key neither held nor loading (the log may still have it: `KeyTaken`)."""
        for _ in range(MAX_JOIN_KEY_ATTEMPTS):
            join_key = new_join_key()
            if join_key not in self.rooms and join_key not in self.loading:
                room = self.rooms[join_key] = Room(join_key, self.history_limit)
                return room
        raise RuntimeError("the join key generator keeps returning keys in use")

    def watch(self, ticket: Ticket, join_key: str, *, load: bool) -> None:
        """The request with ``ticket`` reads the room (a load, or a creation): its answer starts the room's feed."""
        self.watching[ticket] = (join_key, load)

    def watched(self, answer: LogAnswer) -> list[Action]:
        """A load's or creation's answer: where the feed of the room's talks from other processes starts."""
        watched = self.watching.pop(answer.ticket, None)
        if watched is None:
            return []
        join_key, load = watched
        if isinstance(answer, Loaded) and answer.room is not None:
            return self._stamped(self._feed.loaded(join_key, answer.room.last_offset), answer.room.control.seq)
        if isinstance(answer, UserAdded):
            return list(self._feed.loaded(join_key, 0))  # a new room: its talks start at offset 1
        if load:
            return [self.forget(join_key)]  # no such room, or the load failed: not held here
        return []  # (a creation that failed leaves its room idle: forgotten as such)

    def heard(self, talk: LoggedTalk) -> list[Action]:
        """A talk another process appended."""
        fills = self._feed.heard(talk)
        return [*self._stamped(fills), *self.arrived(talk)] if fills else self.arrived(talk)

    def subscribed(self, join_key: str) -> list[Action]:
        return self._stamped(self._feed.subscribed(join_key))

    def filled(self, filled: Filled) -> tuple[list[Action], bool]:
        """A fill's answer: what to do, and whether the log lost talks of the room (its members must rejoin)."""
        actions: list[Action] = []
        for talk in filled.talks:
            actions.extend(self.arrived(talk))
        for entry in filled.changes:
            actions.extend(self.changed(entry))
        lost = False
        for outcome in self._feed.filled(filled.join_key, filled.after, filled.talks):
            if isinstance(outcome, Lost):
                lost = True
            else:
                actions.extend(self._stamped([outcome]))
        return actions, lost

    def arrived(self, logged: LoggedTalk) -> list[Action]:
        """A talk appended elsewhere: shown if its room is held, kept if the room is loading, else the log's."""
        room = self.rooms.get(logged.join_key)
        if room is not None:
            delivered = deliver(room, logged)
            return delivered + self.due(room) if room.changes_held else delivered
        loading = self.loading.get(logged.join_key)
        if loading is not None:
            # The load may have read the room before this talk was appended: it is applied after the load.
            if loading.arrived is None:
                loading.arrived = []
            loading.arrived.append(logged)
        return []

    def changed(self, entry: LoggedChange) -> list[Action]:
        """A change from the log (this process's, or made elsewhere): applied in order if the room is held."""
        room = self.rooms.get(entry.join_key)
        if room is not None:
            graces = len(room.leaving)
            actions, over = changes.take(room, entry, self._close)
            return self._applied(room, actions, over, graces)
        loading = self.loading.get(entry.join_key)
        if loading is not None:
            loading.changes.append(entry)  # (the load may have read the room before it)
        return []

    def due(self, room: Room) -> list[Action]:
        """After talks were delivered to a room: the changes held back for them."""
        graces = len(room.leaving)
        actions, over = changes.due(room, self._close)
        return self._applied(room, actions, over, graces)

    def _applied(self, room: Room, actions: list[Action], over: bool, graces: int) -> list[Action]:
        """After changes were applied to a room that had ``graces`` users in their grace: an end lets it go; a
        removal that ended a grace may leave it idle (a removal made elsewhere: nothing else here lets it go)."""
        if over:
            return [*actions, *self.let_go(room)]
        if len(room.leaving) < graces:
            return [*actions, *self.forget_if_idle(room)]
        return actions

    def expired(self, expired: Expired) -> None:
        room = self.rooms.get(expired.join_key)
        if room is not None:
            room.expire(expired.first)
            return
        loading = self.loading.get(expired.join_key)
        if loading is not None:  # (the load may have read the room before retention erased talks of it)
            loading.expired = max(loading.expired, expired.first)

    def let_go(self, room: Room) -> list[Action]:
        """The room ended (its members are closed): no longer held, whatever is still in flight for it."""
        if self.rooms.get(room.join_key) is room:
            del self.rooms[room.join_key]
        return [*ended(room), self.forget(room.join_key)]

    def lost(self, join_key: str, reason: str) -> list[Action]:
        """The room is dropped from memory, its members here closed with 1012 (``reason``): `ChatCore.room_lost`."""
        room = self.rooms.pop(join_key, None)
        if room is None:
            return []
        actions: list[Action] = []
        for connection in room.connections():
            closed = self._close(connection, closecodes.SERVICE_RESTART, reason)
            if closed is not None:
                actions.append(closed)
        return [*actions, *ended(room), self.forget(join_key)]

    def last_left(self, room: Room, user_id: int, now: float, *, removed: bool) -> list[Action]:
        """The user's last connection to the room here closed: its grace begins (a `Wake` says when it ends), or,
        with no grace, for a ``removed`` user or in a room no longer held, it is gone at once."""
        held = self.rooms.get(room.join_key) is room
        if held and self.graces.grace and not removed and not room.ended:
            return [self.graces.start(room, user_id, now)]
        return gone(room, user_id, held=held)

    def settle(self, now: float, limit: int) -> list[Action]:
        """The users whose grace is over are gone (`ChatCore.settle`), at most ``limit`` of them."""
        over, wake = self.graces.over(now, limit)
        actions: list[Action] = []
        for room, user_id in over:
            actions.extend(gone(room, user_id, held=self.rooms.get(room.join_key) is room))
            actions.extend(self.forget_if_idle(room))
        if wake is not None:
            actions.append(wake)
        return actions

    def presence_heard(self, heard: PresenceHeard) -> list[Action]:
        room = self.rooms.get(heard.join_key)
        if room is not None:
            return apply_heard(room, heard)
        loading = self.loading.get(heard.join_key)
        if loading is not None:
            loading.presence.append(heard)  # (the load may have read presence before this news)
        return []

    def typing_heard(self, typing: TypingHeard, now: float) -> list[Action]:
        room = self.rooms.get(typing.join_key)
        return [] if room is None else heard(room, typing.user_id, now)  # (a room loading: it is too late by then)

    def presence_snapshot(self, snapshot: PresenceSnapshot) -> list[Action]:
        room = self.rooms.get(snapshot.join_key)
        if room is None or snapshot.seq < room.presence_seq:
            return []
        return apply_snapshot(room, snapshot)

    def _stamped(self, fills: list[Fill], changes_after: int | None = None) -> list[Action]:
        """The fills, each asking for the room's changes after the last one applied here."""
        stamped: list[Action] = []
        for fill in fills:
            room = self.rooms.get(fill.join_key)
            seq = changes_after if changes_after is not None else 0 if room is None else room.control.seq
            stamped.append(replace(fill, changes_after=seq))
        return stamped

    def forget_if_idle(self, room: Room) -> list[Action]:
        """Keep a room in memory only while it is in use (the log has the rest)."""
        if room.idle and self.rooms.get(room.join_key) is room:
            del self.rooms[room.join_key]
            return [self.forget(room.join_key)]
        return []

    def forget(self, join_key: str) -> Forget:
        """The room is no longer held (or never was): the log's notice."""
        self._feed.forget(join_key)
        return Forget(join_key)


def deliver(room: Room, arrived: LoggedTalk) -> list[Action]:
    """Show the room's members every talk that is now due, in offset order."""
    talk = room.accept(arrived)
    if talk is None:
        return []
    actions: list[Action] = []
    audiences = room.audiences()
    while talk is not None:
        for dialect, members in audiences:
            if talk.payload is not None or dialect.shows_changes:  # (a fill brings a talk as it is now: deleted)
                actions.append(Broadcast(room.join_key, members, talk.message(dialect)))
        talk = room.next_due() if room.holding else None
    return actions


__all__ = ["MAX_JOIN_KEY_ATTEMPTS", "Holdings", "deliver"]
