"""The chat as a pure state machine: events in, actions out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .actions import Action, Broadcast, ConnectionId, Send
from .protocol import (
    InitRequest,
    ProtocolError,
    TalkRequest,
    decode_text,
    error_event,
    init_event,
    parse_request,
    talk_event,
)
from .room import Room

DEFAULT_HISTORY_LIMIT = 1000
MAX_JOIN_KEY_ATTEMPTS = 16


@dataclass(frozen=True, slots=True)
class _Membership:
    room: Room
    user_id: int


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
        history_limit: int = DEFAULT_HISTORY_LIMIT,
    ) -> None:
        if history_limit < 0:
            raise ValueError("history_limit must be >= 0")
        self._clock = clock
        self._new_join_key = new_join_key
        self._history_limit = history_limit
        self._rooms: dict[str, Room] = {}
        # None: connected, but not yet in a room.
        self._connections: dict[ConnectionId, _Membership | None] = {}

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
        self._connections[connection] = None
        return []

    def disconnect(self, connection: ConnectionId) -> list[Action]:
        """A connection was closed; its room stays for later joiners."""
        membership = self._connections.pop(connection)
        if membership is not None:
            membership.room.remove_member(connection)
        return []

    def receive_text(self, connection: ConnectionId, text: str) -> list[Action]:
        """A text message arrived: JSON, one event."""
        membership = self._require_open(connection)
        try:
            return self._handle(connection, membership, decode_text(text))
        except ProtocolError as error:
            return [Send(connection, error_event(str(error)))]

    def receive(self, connection: ConnectionId, event: object) -> list[Action]:
        """A decoded client event arrived."""
        membership = self._require_open(connection)
        try:
            return self._handle(connection, membership, event)
        except ProtocolError as error:
            return [Send(connection, error_event(str(error)))]

    def receive_binary(self, connection: ConnectionId, data: bytes) -> list[Action]:
        """A binary message arrived; the protocol is JSON text only."""
        self._require_open(connection)
        return [Send(connection, error_event("binary messages are not supported; send JSON text"))]

    def _handle(
        self, connection: ConnectionId, membership: _Membership | None, event: object
    ) -> list[Action]:
        request = parse_request(event)
        if isinstance(request, InitRequest):
            return self._init(connection, membership, request)
        return self._talk(membership, request)

    def _require_open(self, connection: ConnectionId) -> _Membership | None:
        try:
            return self._connections[connection]
        except KeyError:
            raise ValueError(f"connection {connection} is not open") from None

    def _init(
        self, connection: ConnectionId, membership: _Membership | None, request: InitRequest
    ) -> list[Action]:
        if membership is not None:
            raise ProtocolError("already in a chat; open a new connection for another")
        if request.join_key is None:
            room = self._create_room()
        else:
            found = self._rooms.get(request.join_key)
            if found is None:
                raise ProtocolError("chat not found.")
            room = found
        user_id = room.add_member(connection)
        self._connections[connection] = _Membership(room, user_id)
        actions: list[Action] = [Send(connection, init_event(room.join_key, user_id))]
        actions.extend(Send(connection, message) for message in room.history)
        return actions

    def _create_room(self) -> Room:
        for _ in range(MAX_JOIN_KEY_ATTEMPTS):
            join_key = self._new_join_key()
            if join_key not in self._rooms:
                room = Room(join_key, self._history_limit)
                self._rooms[join_key] = room
                return room
        raise RuntimeError("the join key generator keeps returning keys in use")

    def _talk(self, membership: _Membership | None, request: TalkRequest) -> list[Action]:
        if membership is None:
            raise ProtocolError('send "init" before "talk"')
        room = membership.room
        message = talk_event(request.payload, membership.user_id, self._clock())
        room.history.append(message)
        return [Broadcast(room.join_key, room.recipients(), message)]
