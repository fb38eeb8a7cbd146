"""A chat core whose room log is shared with other processes through a broker (Redis): the glue, without I/O.

`SharedChat` has the shape of `ChatCore` for a driver (`connect`,
`receive_text` … `log_result`, each returning the actions to perform on
clients) and hands everything about the log to a `Broker`, which the driver
implements on a real connection (and the tests on a model):

- the core's log requests (`AddUser`, `Append`, `Load`) go to
  `Broker.request`; before a `Load` and before an `AddUser` that creates a
  room, `Broker.subscribe` to the room's channel, so that no talk published
  after the room is read goes unheard;
- the core's `Forget`, and a `Load` that found no room or failed, become
  `Broker.unsubscribe`; the core's `Presence` (a user comes or goes here)
  goes to `Broker.presence`, for the other processes;
- talks the broker hears on a channel (`heard`), confirmed subscriptions
  (`subscribed`) and fills (`filled`) go through a `RoomFeed`, which asks for
  fills where a gap shows (`Broker.fill`); every talk goes to the core,
  which shows each once, in offset order; presence news from other
  processes (`presence_heard`, `presence_snapshot`) goes to the core too.

What the broker must guarantee: requests are answered (`log_result`) in
the order they were made, but for an `Append` whose answer the log did not
give (it may have stored it): that one is answered when the log does, maybe
after later ones, and never as failed if it was stored; a subscription is in
place before any request made after it is performed; a channel delivers a
room's talks in offset order (it may lose some: the feed fills the gaps).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeGuard

from .actions import Action, AddUser, ConnectionId, Forget, Load, LogRequest, Presence, Ticket
from .core import ChatCore
from .feed import Fill, Lost, RoomFeed
from .results import Appended, Loaded, LoggedTalk, LogResult, PresenceHeard, PresenceSnapshot, UserAdded

LOST_REASON = "this chat lost messages on the server; reconnect to see it as it is now"


class Broker(Protocol):
    """The shared log, as `SharedChat` uses it; every call returns at once and is answered later, if at all."""

    def request(self, request: LogRequest) -> None:
        """Perform a log request; answer with `SharedChat.log_result`, in request order."""

    def subscribe(self, join_key: str) -> None:
        """Listen to the room's channel before performing anything asked later; confirm with `SharedChat.subscribed`."""

    def unsubscribe(self, join_key: str) -> None:
        """Stop listening to the room's channel."""

    def fill(self, fill: Fill) -> None:
        """Read the room's talks after ``fill.after``; answer with `SharedChat.filled`."""

    def presence(self, presence: Presence) -> None:
        """Tell the other processes that a user came to the room here, or left it; no answer."""


def opens_a_room(request: object) -> TypeGuard[Load | AddUser]:
    """A request that reads a room the process begins to hold (a `Load`, or an `AddUser` that creates it):
    its channel must be subscribed before it is performed."""
    return isinstance(request, Load) or (isinstance(request, AddUser) and request.created is not None)


class SharedChat:
    """`ChatCore` with a shared log: clients' actions out, the log's work handed to the broker."""

    def __init__(self, core: ChatCore, broker: Broker) -> None:
        if core.memory_log is not None:
            raise ValueError("the core must be made with external_log=True, shared_log=True")
        self.core = core
        self.broker = broker
        self.feed = RoomFeed()
        self._watching: dict[Ticket, tuple[str, bool]] = {}  # loads and creations in flight: room, and whether a load

    # What the driver feeds, as to ChatCore

    def connect(self, connection: ConnectionId) -> list[Action]:
        return self._route(self.core.connect(connection))

    def disconnect(self, connection: ConnectionId) -> list[Action]:
        return self._route(self.core.disconnect(connection))

    def receive_text(self, connection: ConnectionId, text: str) -> list[Action]:
        return self._route(self.core.receive_text(connection, text))

    def receive_binary(self, connection: ConnectionId, data: bytes) -> list[Action]:
        return self._route(self.core.receive_binary(connection, data))

    def log_result(self, result: LogResult) -> list[Action]:
        """The broker answered a request."""
        watched = None if result.ticket is None else self._watching.pop(result.ticket, None)
        if watched is not None:
            join_key, loading = watched
            if isinstance(result, Loaded) and result.room is not None:
                self._fills(self.feed.loaded(join_key, result.room.last_offset))
            elif isinstance(result, UserAdded):
                self._fills(self.feed.loaded(join_key, 0))  # a new room: its channel starts at offset 1
            elif loading:
                self._unsubscribe(join_key)  # no such room, or the load failed: the core does not hold it
            # (A creation that failed leaves the core's room idle: the core's Forget unsubscribes.)
        return self._route(self.core.log_result(result))

    # What the broker hears

    def heard(self, talk: LoggedTalk) -> list[Action]:
        """A talk arrived on a room's channel."""
        self._fills(self.feed.heard(talk))
        return self._route(self.core.log_result(Appended(None, talk)))

    def subscribed(self, join_key: str) -> list[Action]:
        """A subscription is in place (again, after a reconnect)."""
        self._fills(self.feed.subscribed(join_key))
        return []

    def filled(self, join_key: str, after: int, talks: Sequence[LoggedTalk]) -> list[Action]:
        """The answer to `Broker.fill`."""
        actions: list[Action] = []
        for talk in talks:
            actions.extend(self.core.log_result(Appended(None, talk)))
        for outcome in self.feed.filled(join_key, after, talks):
            if isinstance(outcome, Lost):
                actions.extend(self.core.room_lost(join_key, LOST_REASON))
            else:
                self.broker.fill(outcome)
        return self._route(actions)

    def presence_heard(self, heard: PresenceHeard) -> list[Action]:
        """Another process's news of who came, left or was renamed in a room (never this process's own)."""
        return self._route(self.core.presence_heard(heard))

    def presence_snapshot(self, snapshot: PresenceSnapshot) -> list[Action]:
        """Who is in a room on the other processes, read from the log."""
        return self._route(self.core.presence_snapshot(snapshot))

    def log_lost(self) -> list[Action]:
        """The log came back without its data (a new epoch): every room held here is gone; their members rejoin."""
        actions: list[Action] = []
        for join_key in self.core.rooms_held:
            actions.extend(self.core.room_lost(join_key, LOST_REASON))
        return self._route(actions)

    # Inside

    def _route(self, actions: list[Action]) -> list[Action]:
        """Hand the log's actions to the broker; the rest (for clients) to the driver."""
        if not any(isinstance(action, LogRequest | Forget | Presence) for action in actions):
            return actions
        kept: list[Action] = []
        for action in actions:
            if isinstance(action, Presence):
                self.broker.presence(action)
            elif isinstance(action, Forget):
                self._unsubscribe(action.join_key)
            elif opens_a_room(action):
                self._watching[action.ticket] = (action.join_key, isinstance(action, Load))
                self.broker.subscribe(action.join_key)
                self.broker.request(action)
            elif isinstance(action, LogRequest):
                self.broker.request(action)
            else:
                kept.append(action)
        return kept

    def _unsubscribe(self, join_key: str) -> None:
        self.feed.forget(join_key)
        self.broker.unsubscribe(join_key)

    def _fills(self, fills: list[Fill]) -> None:
        for fill in fills:
            self.broker.fill(fill)
