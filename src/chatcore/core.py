"""The chat as a pure state machine: events in, actions out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import closecodes
from .actions import Action, Broadcast, Close, ConnectionId, Send
from .limits import CoreLimits
from .protocol import (
    InitRequest,
    ProtocolError,
    TalkRequest,
    decode_text,
    error_event,
    init_event,
    parse_request,
)
from .ratelimit import TokenBucket
from .room import Room, Talk

MAX_JOIN_KEY_ATTEMPTS = 16
RATE_LIMIT_ERROR = "too many messages: slow down"


@dataclass(frozen=True, slots=True)
class _Membership:
    room: Room
    user_id: int


@dataclass(slots=True)
class _Connection:
    bucket: TokenBucket
    membership: _Membership | None = field(default=None)


class ChatCore:
    """All rooms and connections of one chat server.

    Feed it connection lifecycle and client messages; each call returns the
    actions the driver must perform, in order. It performs no I/O and keeps
    no clock: ``clock`` returns Unix seconds, ``new_join_key`` returns a fresh
    random room key.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        new_join_key: Callable[[], str],
        limits: CoreLimits | None = None,
    ) -> None:
        self._clock = clock
        self._new_join_key = new_join_key
        self.limits = limits or CoreLimits()
        self._rooms: dict[str, Room] = {}
        self._connections: dict[ConnectionId, _Connection] = {}

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    @property
    def room_count(self) -> int:
        return len(self._rooms)

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

    def _receive(
        self, connection: ConnectionId, *, text: str | None = None, event: object = None, binary: bool = False
    ) -> list[Action]:
        state = self._admit(connection)
        if isinstance(state, list):
            return state
        try:
            if binary:
                raise ProtocolError("binary messages are not supported; send JSON text")
            if text is not None:
                event = decode_text(text, self.limits.max_json_depth)
            return self._handle(connection, state, event)
        except ProtocolError as error:
            return [Send(connection, error_event(str(error)))]

    def _admit(self, connection: ConnectionId) -> _Connection | list[Action]:
        """The connection's state if it may send now, else what to answer instead."""
        try:
            state = self._connections[connection]
        except KeyError:
            raise ValueError(f"connection {connection} is not open") from None
        if state.bucket.allow(self._clock()):
            return state
        if state.bucket.strikes > self.limits.max_rate_strikes:
            return [Close(connection, closecodes.POLICY_VIOLATION, "message rate limit exceeded")]
        return [Send(connection, error_event(RATE_LIMIT_ERROR))]

    def _handle(self, connection: ConnectionId, state: _Connection, event: object) -> list[Action]:
        request = parse_request(event, self.limits.max_payload_chars)
        if isinstance(request, InitRequest):
            return self._init(connection, state, request)
        return self._talk(state.membership, request)

    def _init(self, connection: ConnectionId, state: _Connection, request: InitRequest) -> list[Action]:
        if state.membership is not None:
            raise ProtocolError("already in a chat; open a new connection for another")
        if request.join_key is None:
            room = self._create_room()
        else:
            found = self._rooms.get(request.join_key)
            if found is None:
                raise ProtocolError("chat not found.")
            room = found
        user_id = room.add_member(connection, renders_text=request.renders_text)
        state.membership = _Membership(room, user_id)
        escape_html = not request.renders_text
        actions: list[Action] = [Send(connection, init_event(room.join_key, user_id))]
        actions.extend(Send(connection, talk.message(escape_html=escape_html)) for talk in room.history)
        return actions

    def _create_room(self) -> Room:
        for _ in range(MAX_JOIN_KEY_ATTEMPTS):
            join_key = self._new_join_key()
            if join_key not in self._rooms:
                room = Room(join_key, self.limits.history_limit)
                self._rooms[join_key] = room
                return room
        raise RuntimeError("the join key generator keeps returning keys in use")

    def _talk(self, membership: _Membership | None, request: TalkRequest) -> list[Action]:
        if membership is None:
            raise ProtocolError('send "init" before "talk"')
        room = membership.room
        talk = Talk(request.payload, membership.user_id, self._clock())
        room.record(talk)
        text_members, markup_members = room.recipients()
        actions: list[Action] = []
        if text_members:
            actions.append(Broadcast(room.join_key, text_members, talk.message(escape_html=False)))
        if markup_members:
            actions.append(Broadcast(room.join_key, markup_members, talk.message(escape_html=True)))
        return actions
