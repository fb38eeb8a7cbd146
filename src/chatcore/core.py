"""The chat as a pure state machine: events in, actions out."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from . import closecodes
from .actions import Action, Broadcast, Close, ConnectionId, Send
from .limits import CoreLimits
from .protocol import (
    InitRequest,
    ProtocolError,
    Request,
    TalkRequest,
    decode_text,
    error_event,
    init_event,
    parse_request,
)
from .ratelimit import TokenBucket
from .room import Room, Talk
from .storage import Load, Loaded, NewRoom, NewTalk, NewUser, StorageFailed, StorageResult, Store, Stored, Ticket

MAX_JOIN_KEY_ATTEMPTS = 16
MAX_JOIN_KEY_CHARS = 64
"""Longer join keys are never handed out, so they are not looked up."""
RATE_LIMIT_ERROR = "too many messages: slow down"
NOT_FOUND_ERROR = "chat not found."
BACKLOG_CLOSE_REASON = "too many messages waiting for the previous one"


@dataclass(frozen=True, slots=True)
class _Membership:
    room: Room
    user_id: int


@dataclass(slots=True)
class _Connection:
    bucket: TokenBucket
    membership: _Membership | None = field(default=None)
    in_flight: int = field(default=0)
    """Requests of this connection with the store (a durable core only)."""
    backlog: deque[Request | list[Action]] | None = field(default=None)
    """What arrived while earlier requests were with the store and must be answered after them, in order."""
    closing: bool = field(default=False)
    """A close was asked for: nothing it sends is answered any more."""


@dataclass(frozen=True, slots=True)
class _Joining:
    connection: ConnectionId
    state: _Connection
    room: Room
    user_id: int
    renders_text: bool


@dataclass(frozen=True, slots=True)
class _Talking:
    connection: ConnectionId
    state: _Connection
    room: Room
    talk: Talk


@dataclass(frozen=True, slots=True)
class _Loading:
    join_key: str


@dataclass(frozen=True, slots=True)
class _Waiter:
    connection: ConnectionId
    state: _Connection
    renders_text: bool


class ChatCore:
    """All rooms and connections of one chat server.

    Feed it connection lifecycle and client messages; each call returns the
    actions the driver must perform, in order. It performs no I/O and keeps
    no clock: ``clock`` returns Unix seconds, ``new_join_key`` returns a fresh
    random room key.

    A ``durable`` core keeps rooms in a store the driver runs: it shows a
    join or a talk only once its `Store` action has come back as `Stored`,
    keeps in memory only rooms with members or requests in flight, and
    `Load`s the others when someone joins. Feed store results to
    `storage_result`, in the order of the actions.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        new_join_key: Callable[[], str],
        limits: CoreLimits | None = None,
        durable: bool = False,
    ) -> None:
        self._clock = clock
        self._new_join_key = new_join_key
        self.limits = limits or CoreLimits()
        self.durable = durable
        self._rooms: dict[str, Room] = {}
        self._connections: dict[ConnectionId, _Connection] = {}
        self._loading: dict[str, list[_Waiter]] = {}
        self._pending: dict[Ticket, _Joining | _Talking | _Loading] = {}
        self._tickets = itertools.count(1)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    @property
    def room_count(self) -> int:
        """Rooms held in memory."""
        return len(self._rooms)

    @property
    def pending_count(self) -> int:
        """Store and load requests waiting for their result."""
        return len(self._pending)

    def connect(self, connection: ConnectionId) -> list[Action]:
        """A connection was opened."""
        if connection in self._connections:
            raise ValueError(f"connection {connection} is already open")
        limits = self.limits
        bucket = TokenBucket(limits.messages_per_second, limits.message_burst, self._clock())
        self._connections[connection] = _Connection(bucket)
        return []

    def disconnect(self, connection: ConnectionId) -> list[Action]:
        """A connection was closed; its room stays for later joiners."""
        membership = self._connections.pop(connection).membership
        if membership is not None:
            membership.room.remove_member(connection)
            self._forget_if_idle(membership.room)
        return []

    def receive_text(self, connection: ConnectionId, text: str) -> list[Action]:
        """A text message arrived: JSON, one event."""
        return self._receive(connection, text=text)

    def receive(self, connection: ConnectionId, event: object) -> list[Action]:
        """A decoded client event arrived."""
        return self._receive(connection, event=event)

    def receive_binary(self, connection: ConnectionId, data: bytes) -> list[Action]:
        """A binary message arrived; the protocol is JSON text only."""
        return self._receive(connection, binary=True)

    def storage_result(self, result: StorageResult) -> list[Action]:
        """A `Store` or `Load` action finished."""
        pending = self._pending.pop(result.ticket)
        if isinstance(pending, _Loading):
            if isinstance(result, Stored):
                raise ValueError(f"ticket {result.ticket} was a load, not a store")
            return self._loaded(pending.join_key, result)
        if isinstance(result, Loaded):
            raise ValueError(f"ticket {result.ticket} was a store, not a load")
        room = pending.room
        room.pending -= 1
        if isinstance(pending, _Talking):
            actions = self._talk_stored(pending, result)
        else:
            actions = self._join_stored(pending, result)
        self._forget_if_idle(room)
        return actions

    def _receive(
        self, connection: ConnectionId, *, text: str | None = None, event: object = None, binary: bool = False
    ) -> list[Action]:
        try:
            state = self._connections[connection]
        except KeyError:
            raise ValueError(f"connection {connection} is not open") from None
        if state.closing:
            return []
        outcome = self._admit(connection, state, text, event, binary)
        backlog = state.backlog
        if backlog is None:
            if _may_go_now(state, outcome):
                return outcome if isinstance(outcome, list) else self._dispatch(connection, state, outcome)
            backlog = state.backlog = deque()
        # Answers go out in the order requests came: this one waits for those with the store.
        limits = self.limits
        if len(backlog) >= limits.message_burst + limits.max_rate_strikes + 1:
            state.closing = True
            return [Close(connection, closecodes.POLICY_VIOLATION, BACKLOG_CLOSE_REASON)]
        backlog.append(outcome)
        return []

    def _admit(
        self, connection: ConnectionId, state: _Connection, text: str | None, event: object, binary: bool
    ) -> Request | list[Action]:
        """The request a message makes if it is within the rate and valid, else the answer to it."""
        if not state.bucket.allow(self._clock()):
            if state.bucket.strikes > self.limits.max_rate_strikes:
                state.closing = True
                return [Close(connection, closecodes.POLICY_VIOLATION, "message rate limit exceeded")]
            return [Send(connection, error_event(RATE_LIMIT_ERROR))]
        try:
            if binary:
                raise ProtocolError("binary messages are not supported; send JSON text")
            if text is not None:
                event = decode_text(text, self.limits.max_json_depth)
            return parse_request(event, self.limits.max_payload_chars)
        except ProtocolError as error:
            return [Send(connection, error_event(str(error)))]

    def _dispatch(self, connection: ConnectionId, state: _Connection, request: Request) -> list[Action]:
        try:
            if isinstance(request, InitRequest):
                return self._init(connection, state, request)
            return self._talk(connection, state, request)
        except ProtocolError as error:
            return [Send(connection, error_event(str(error)))]

    def _init(self, connection: ConnectionId, state: _Connection, request: InitRequest) -> list[Action]:
        if state.membership is not None:
            raise ProtocolError("already in a chat; open a new connection for another")
        join_key = request.join_key
        if join_key is None:
            return self._join(connection, state, self._create_room(), request.renders_text, new_room=True)
        room = self._rooms.get(join_key)
        if room is not None:
            return self._join(connection, state, room, request.renders_text)
        if not self.durable or len(join_key) > MAX_JOIN_KEY_CHARS:
            raise ProtocolError(NOT_FOUND_ERROR)
        state.in_flight += 1
        waiter = _Waiter(connection, state, request.renders_text)
        waiters = self._loading.get(join_key)
        if waiters is not None:
            waiters.append(waiter)
            return []
        self._loading[join_key] = [waiter]
        return [Load(self._ticket(_Loading(join_key)), join_key, self.limits.history_limit)]

    def _create_room(self) -> Room:
        for _ in range(MAX_JOIN_KEY_ATTEMPTS):
            join_key = self._new_join_key()
            if join_key not in self._rooms and join_key not in self._loading:
                room = Room(join_key, self.limits.history_limit)
                self._rooms[join_key] = room
                return room
        raise RuntimeError("the join key generator keeps returning keys in use")

    def _join(
        self, connection: ConnectionId, state: _Connection, room: Room, renders_text: bool, *, new_room: bool = False
    ) -> list[Action]:
        user_id = room.next_user_id()
        if not self.durable:
            return self._enter(connection, state, room, user_id, renders_text)
        records: tuple[NewRoom | NewUser, ...] = (NewUser(room.join_key, user_id),)
        if new_room:
            records = (NewRoom(room.join_key, self._clock()), *records)
        state.in_flight += 1
        room.pending += 1
        return [Store(self._ticket(_Joining(connection, state, room, user_id, renders_text)), records)]

    def _enter(
        self, connection: ConnectionId, state: _Connection, room: Room, user_id: int, renders_text: bool
    ) -> list[Action]:
        room.add_member(connection, user_id, renders_text=renders_text)
        state.membership = _Membership(room, user_id)
        escape_html = not renders_text
        actions: list[Action] = [Send(connection, init_event(room.join_key, user_id))]
        actions.extend(Send(connection, talk.message(escape_html=escape_html)) for talk in room.history)
        return actions

    def _talk(self, connection: ConnectionId, state: _Connection, request: TalkRequest) -> list[Action]:
        membership = state.membership
        if membership is None:
            raise ProtocolError('send "init" before "talk"')
        room = membership.room
        talk = Talk(request.payload, membership.user_id, self._clock())
        if not self.durable:
            return self._publish(room, talk)
        state.in_flight += 1
        room.pending += 1
        ticket = self._ticket(_Talking(connection, state, room, talk))
        return [Store(ticket, (NewTalk(room.join_key, talk.user_id, talk.time, talk.payload),))]

    def _publish(self, room: Room, talk: Talk) -> list[Action]:
        room.record(talk)
        text_members, markup_members = room.recipients()
        actions: list[Action] = []
        if text_members:
            actions.append(Broadcast(room.join_key, text_members, talk.message(escape_html=False)))
        if markup_members:
            actions.append(Broadcast(room.join_key, markup_members, talk.message(escape_html=True)))
        return actions

    def _talk_stored(self, pending: _Talking, result: Stored | StorageFailed) -> list[Action]:
        connection, state = pending.connection, pending.state
        actions = self._publish(pending.room, pending.talk) if isinstance(result, Stored) else []
        if not self._is_open(connection, state):
            return actions
        state.in_flight -= 1
        if isinstance(result, StorageFailed):
            message = f"message not sent: the server could not save it ({result.reason}); try again"
            actions.append(Send(connection, error_event(message)))
        actions.extend(self._resume(connection, state))
        return actions

    def _join_stored(self, pending: _Joining, result: Stored | StorageFailed) -> list[Action]:
        connection, state = pending.connection, pending.state
        if not self._is_open(connection, state):
            return []
        state.in_flight -= 1
        if isinstance(result, Stored):
            actions = self._enter(connection, state, pending.room, pending.user_id, pending.renders_text)
        else:
            message = f"could not join the chat: the server could not save it ({result.reason}); try again"
            actions = [Send(connection, error_event(message))]
        actions.extend(self._resume(connection, state))
        return actions

    def _loaded(self, join_key: str, result: Loaded | StorageFailed) -> list[Action]:
        waiters = [w for w in self._loading.pop(join_key) if self._is_open(w.connection, w.state)]
        for waiter in waiters:
            waiter.state.in_flight -= 1
        actions: list[Action] = []
        if isinstance(result, Loaded) and result.room is not None:
            room = Room.restore(result.room, self.limits.history_limit)
            self._rooms[join_key] = room
            for waiter in waiters:
                actions.extend(self._join(waiter.connection, waiter.state, room, waiter.renders_text))
            self._forget_if_idle(room)
            return actions
        if isinstance(result, Loaded):
            message = NOT_FOUND_ERROR
        else:
            message = f"could not open the chat: the server could not read it ({result.reason}); try again"
        for waiter in waiters:
            actions.append(Send(waiter.connection, error_event(message)))
            actions.extend(self._resume(waiter.connection, waiter.state))
        return actions

    def _resume(self, connection: ConnectionId, state: _Connection) -> list[Action]:
        """The store answered this connection: handle what it sent meanwhile, as far as order allows."""
        backlog = state.backlog
        actions: list[Action] = []
        while backlog and _may_go_now(state, backlog[0]):
            outcome = backlog.popleft()
            actions.extend(outcome if isinstance(outcome, list) else self._dispatch(connection, state, outcome))
        if not backlog:
            state.backlog = None
        return actions

    def _is_open(self, connection: ConnectionId, state: _Connection) -> bool:
        return self._connections.get(connection) is state

    def _forget_if_idle(self, room: Room) -> None:
        """A durable core keeps a room in memory only while it is in use; the store has the rest."""
        if self.durable and room.idle and self._rooms.get(room.join_key) is room:
            del self._rooms[room.join_key]

    def _ticket(self, pending: _Joining | _Talking | _Loading) -> Ticket:
        ticket = next(self._tickets)
        self._pending[ticket] = pending
        return ticket


def _may_go_now(state: _Connection, outcome: Request | list[Action]) -> bool:
    """Whether an answer or request can be handled before the store has answered this connection.

    A member's talks may be with the store together (their results come back
    in order); anything else waits until nothing of this connection is.
    """
    return not state.in_flight or (isinstance(outcome, TalkRequest) and state.membership is not None)
