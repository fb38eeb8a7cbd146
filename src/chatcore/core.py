"""The chat as a pure state machine: connection events and log results in, actions out.

Theory of operation
===================

`ChatCore` holds every room in use and every open connection of one server
process. It never performs I/O, never reads a clock of its own (``clock`` is
given) and never draws randomness (``new_join_key`` is given). A driver (in
``transports``) owns the sockets and calls it.

What the driver feeds, for each connection: `ChatCore.connect` once, then any
number of `ChatCore.receive_text` / `ChatCore.receive_binary` as messages
arrive, then `ChatCore.disconnect` once, however the connection ended. Each
call returns a list of actions. The driver must perform them in order, before
it feeds the core anything else that could depend on them:

- `Send`, `Broadcast`, `Close`: write to clients. A write that fails is the
  driver's business; it reports the connection's end with `disconnect`.
- `AddUser`, `Append`, `Load`: requests to the room log (the store). The
  driver hands each to the log and feeds the log's answer back through
  `ChatCore.log_result`, one result per request, in the order of the
  requests. A core made without ``external_log`` answers them itself from a
  `MemoryLog` and never returns them.

One way for every message. A talk is not shown when it arrives: the core
asks the log to `Append` it, and shows it when the log hands it back as
`Appended`, with its offset in the room (1, 2, 3 …, gap-free, assigned by the
log, never reused). Each room delivers its talks to its members in offset
order, each once, whatever order they come back in; a joiner's replay is the
room's latest talks up to the offset delivered so far, and it receives every
later talk. An `Appended` with no ticket (a talk someone else appended to a
shared log) takes the same way. User ids are handed out by the log
(`AddUser`) too, so a log shared by several processes can allocate them.

Answers to one connection keep the order of its requests: while its
``init`` is with the log, everything it sends waits; while its talks are
with the log, further talks go too (the log keeps their order) but anything
else waits behind them. The per-connection states are in `chatcore.session`.

What the driver may assume: the core keeps in memory only rooms with members
or requests in flight (the log has the rest); a client's mistake never raises
(it is answered with an ``error`` event or a `Close`); `DriverError` means the
driver broke this contract, and leaves the core unchanged.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from . import closecodes
from .actions import Action, AddUser, Append, Broadcast, Close, ConnectionId, Forget, Load, LogRequest, Send, Ticket
from .errors import DriverError, ProtocolError
from .limits import CoreLimits
from .memorylog import MemoryLog
from .ratelimit import TokenBucket
from .results import Appended, KeyTaken, Loaded, LogFailed, LoggedTalk, LogResult, UserAdded
from .rooms import Room, Talk
from .session import ConnectionState, Session
from .wire.jsontext import decode_text
from .wire.seed import InitRequest, Request, TalkRequest, error_event, init_event, parse_request

MAX_JOIN_KEY_ATTEMPTS = 16
MAX_JOIN_KEY_CHARS = 64
"""Longer join keys are never handed out, so they are not looked up."""
RATE_LIMIT_ERROR = "too many messages: slow down"
NOT_FOUND_ERROR = "chat not found."
BACKLOG_CLOSE_REASON = "too many messages waiting for the previous one"


@dataclass(frozen=True, slots=True)
class _Joining:
    connection: ConnectionId
    session: Session
    room: Room
    renders_text: bool
    created: float | None
    attempt: int
    """Rooms this join has tried to create (a new key each time the log says `KeyTaken`)."""


@dataclass(frozen=True, slots=True)
class _Talking:
    connection: ConnectionId
    session: Session
    room: Room


@dataclass(frozen=True, slots=True)
class _Loading:
    join_key: str


@dataclass(frozen=True, slots=True)
class _Waiter:
    connection: ConnectionId
    session: Session
    renders_text: bool


@dataclass(slots=True)
class _RoomLoad:
    """A room being loaded: who waits to join it, and talks from elsewhere that arrived meanwhile."""

    waiters: list[_Waiter]
    arrived: list[LoggedTalk] | None = None


_Pending = _Joining | _Talking | _Loading
_CLOSING = ConnectionState.CLOSING
_ANSWERS: dict[type[_Pending], tuple[type[LogResult], ...]] = {
    _Joining: (UserAdded, KeyTaken, LogFailed),
    _Talking: (Appended, LogFailed),
    _Loading: (Loaded, LogFailed),
}


def _mismatch(pending: _Pending, result: LogResult) -> str | None:
    """Why ``result`` cannot answer the request it names, or None if it can."""
    if not isinstance(result, _ANSWERS[type(pending)]):
        return f"{type(result).__name__} does not answer {type(pending).__name__.lstrip('_').lower()}"
    if isinstance(pending, _Talking) and isinstance(result, Appended) and result.talk.join_key != pending.room.join_key:
        return "appended to another room"
    if isinstance(pending, _Joining) and isinstance(result, KeyTaken) and pending.created is None:
        return "no room was to be created, so no key can be taken"
    return None


class ChatCore:
    """All rooms in use and all connections of one chat server; see the module docstring."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        new_join_key: Callable[[], str],
        limits: CoreLimits | None = None,
        external_log: bool = False,
        shared_log: bool = False,
    ) -> None:
        """``external_log``: the driver runs the room log (a store); otherwise the core keeps one in memory.

        ``shared_log`` (with ``external_log``): other processes use the same log; the core then says
        when it stops holding a room (`Forget`), so that the driver can stop listening to it.
        """
        if shared_log and not external_log:
            raise ValueError("a shared log is an external log")
        self._shared_log = shared_log
        self._clock = clock
        self._new_join_key = new_join_key
        self.limits = limits or CoreLimits()
        self.memory_log = None if external_log else MemoryLog(self.limits.history_limit)
        self._rooms: dict[str, Room] = {}
        self._sessions: dict[ConnectionId, Session] = {}
        self._loading: dict[str, _RoomLoad] = {}
        self._pending: dict[Ticket, _Pending] = {}
        self._tickets = itertools.count(1)

    @property
    def connection_count(self) -> int:
        return len(self._sessions)

    @property
    def room_count(self) -> int:
        """Rooms held in memory: those with members or log requests in flight."""
        return len(self._rooms)

    @property
    def rooms_held(self) -> tuple[str, ...]:
        """The join keys of the rooms held in memory."""
        return tuple(self._rooms)

    @property
    def pending_count(self) -> int:
        """Log requests waiting for their result."""
        return len(self._pending)

    def state_of(self, connection: ConnectionId) -> ConnectionState:
        """Where an open connection stands in the protocol."""
        return self._session(connection).state

    def connect(self, connection: ConnectionId) -> list[Action]:
        """A connection was opened."""
        if connection in self._sessions:
            raise DriverError(f"connection {connection} is already open")
        limits = self.limits
        bucket = TokenBucket(limits.messages_per_second, limits.message_burst, self._clock())
        self._sessions[connection] = Session(bucket)
        return []

    def disconnect(self, connection: ConnectionId) -> list[Action]:
        """A connection ended; its room stays for later joiners, and its talks with the log still count."""
        session = self._session(connection)
        del self._sessions[connection]
        room = session.room
        if room is not None:
            room.remove_member(connection)
            return self._forget_if_idle(room)
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

    def log_result(self, result: LogResult) -> list[Action]:
        """The log answered a request (or, ``Appended`` without a ticket, took a talk from elsewhere)."""
        if result.ticket is None:
            assert isinstance(result, Appended)
            return self._arrived(result.talk)
        pending = self._pending.get(result.ticket)
        if pending is None:
            raise DriverError(f"no log request has ticket {result.ticket}")
        mismatch = _mismatch(pending, result)
        if mismatch:
            raise DriverError(f"ticket {result.ticket}: {mismatch}")
        del self._pending[result.ticket]
        if isinstance(pending, _Talking):
            assert isinstance(result, Appended | LogFailed)
            return self._appended(pending, result)
        if isinstance(pending, _Joining):
            assert isinstance(result, UserAdded | KeyTaken | LogFailed)
            return self._user_added(pending, result)
        assert isinstance(result, Loaded | LogFailed)
        return self._loaded(pending.join_key, result)

    def room_lost(self, join_key: str, reason: str) -> list[Action]:
        """The shared log lost talks of a room this process cannot get back (trimmed, or the log's data is gone).

        Its members here are closed with 1012 so that they rejoin and are shown the
        room as the log has it now, rather than a history with a hole the page cannot
        see; the room is dropped from memory (and a shared log told: `Forget`).
        ``reason`` is the close reason (at most 123 bytes of UTF-8).
        """
        room = self._rooms.get(join_key)
        if room is None:
            return []
        del self._rooms[join_key]
        actions: list[Action] = []
        text_members, markup_members = room.recipients()
        for connection in (*text_members, *markup_members):
            session = self._sessions[connection]
            if session.state is not _CLOSING:
                session.close_asked()
                actions.append(Close(connection, closecodes.SERVICE_RESTART, reason))
        if self._shared_log:
            actions.append(Forget(join_key))
        return actions

    # Requests from clients

    def _session(self, connection: ConnectionId) -> Session:
        try:
            return self._sessions[connection]
        except KeyError:
            raise DriverError(f"connection {connection} is not open") from None

    def _receive(
        self, connection: ConnectionId, *, text: str | None = None, event: object = None, binary: bool = False
    ) -> list[Action]:
        session = self._sessions.get(connection)
        if session is None:
            raise DriverError(f"connection {connection} is not open")
        if session.state is _CLOSING:
            return []
        outcome = self._admit(connection, session, text, event, binary)
        backlog = session.backlog
        if backlog is None:
            if session.in_flight == 0 or session.may_go_now(outcome):
                return outcome if isinstance(outcome, list) else self._dispatch(connection, session, outcome)
            backlog = session.backlog = deque()
        limits = self.limits
        if len(backlog) >= limits.message_burst + limits.max_rate_strikes + 1:
            session.close_asked()
            return [Close(connection, closecodes.POLICY_VIOLATION, BACKLOG_CLOSE_REASON)]
        backlog.append(outcome)
        return []

    def _admit(
        self, connection: ConnectionId, session: Session, text: str | None, event: object, binary: bool
    ) -> Request | list[Action]:
        """The request a message makes if it is within the rate and valid, else the answer to it."""
        if not session.bucket.allow(self._clock()):
            if session.bucket.strikes > self.limits.max_rate_strikes:
                session.close_asked()
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

    def _dispatch(self, connection: ConnectionId, session: Session, request: Request) -> list[Action]:
        try:
            if isinstance(request, InitRequest):
                return self._init(connection, session, request)
            return self._talk(connection, session, request)
        except ProtocolError as error:
            return [Send(connection, error_event(str(error)))]

    def _init(self, connection: ConnectionId, session: Session, request: InitRequest) -> list[Action]:
        if session.room is not None:
            raise ProtocolError("already in a chat; open a new connection for another")
        if session.state is ConnectionState.CLOSING:
            raise ProtocolError("this connection is closing; open a new one")
        join_key = request.join_key
        if join_key is None:
            return self._add_user(connection, session, self._create_room(), request.renders_text, created=self._clock())
        room = self._rooms.get(join_key)
        if room is not None:
            return self._add_user(connection, session, room, request.renders_text)
        if len(join_key) > MAX_JOIN_KEY_CHARS:
            raise ProtocolError(NOT_FOUND_ERROR)
        session.join_asked()
        session.in_flight += 1
        waiter = _Waiter(connection, session, request.renders_text)
        loading = self._loading.get(join_key)
        if loading is not None:
            loading.waiters.append(waiter)
            return []
        self._loading[join_key] = _RoomLoad([waiter])
        return self._ask(Load(self._ticket(_Loading(join_key)), join_key, self.limits.history_limit))

    def _create_room(self) -> Room:
        for _ in range(MAX_JOIN_KEY_ATTEMPTS):
            join_key = self._new_join_key()
            if join_key not in self._rooms and join_key not in self._loading:
                room = Room(join_key, self.limits.history_limit)
                self._rooms[join_key] = room
                return room
        raise RuntimeError("the join key generator keeps returning keys in use")

    def _add_user(
        self,
        connection: ConnectionId,
        session: Session,
        room: Room,
        renders_text: bool,
        created: float | None = None,
        attempt: int = 1,
    ) -> list[Action]:
        if session.state is ConnectionState.LOBBY:
            session.join_asked()  # (after a Load, the session is JOINING already)
        session.in_flight += 1
        room.pending += 1
        ticket = self._ticket(_Joining(connection, session, room, renders_text, created, attempt))
        return self._ask(AddUser(ticket, room.join_key, created))

    def _talk(self, connection: ConnectionId, session: Session, request: TalkRequest) -> list[Action]:
        room = session.room
        if room is None:
            raise ProtocolError('send "init" before "talk"')
        memory_log = self.memory_log
        if memory_log is not None:
            # The memory log answers at once: the talk comes back with its offset, as from any log. (Without
            # the request and result objects around it: they were a third of the cost of a talk.)
            talk = memory_log.append(room.join_key, session.user_id, self._clock(), request.payload)
            return self._deliver(room, talk)
        user_id, now, join_key = session.user_id, self._clock(), room.join_key
        session.in_flight += 1
        room.pending += 1
        ticket = self._ticket(_Talking(connection, session, room))
        return self._ask(Append(ticket, join_key, user_id, now, request.payload))

    def _ticket(self, pending: _Pending) -> Ticket:
        """A ticket for a request about to go to the log; its result is matched to ``pending`` by it."""
        ticket = next(self._tickets)
        self._pending[ticket] = pending
        return ticket

    def _ask(self, request: LogRequest) -> list[Action]:
        """Send a request to the log: to the driver, or straight to the memory log and back."""
        if self.memory_log is None:
            return [request]
        return self.log_result(self.memory_log.answer(request))

    # Results from the log

    def _appended(self, pending: _Talking, result: Appended | LogFailed) -> list[Action]:
        connection, session, room = pending.connection, pending.session, pending.room
        room.pending -= 1
        actions = self._deliver(room, Talk(*result.talk)) if isinstance(result, Appended) else []
        if self._sessions.get(connection) is session:
            session.in_flight -= 1
            if isinstance(result, LogFailed):
                message = f"message not sent: the server could not save it ({result.reason}); try again"
                actions.append(Send(connection, error_event(message)))
            actions.extend(self._resume(connection, session))
        actions.extend(self._forget_if_idle(room))
        return actions

    def _arrived(self, logged: LoggedTalk) -> list[Action]:
        """A talk appended elsewhere: shown if its room is here, kept if the room is loading, else the log's."""
        room = self._rooms.get(logged.join_key)
        if room is not None:
            return self._deliver(room, Talk(*logged))
        loading = self._loading.get(logged.join_key)
        if loading is not None:
            # The load may have read the room before this talk was appended: it is applied after the load.
            if loading.arrived is None:
                loading.arrived = []
            loading.arrived.append(logged)
        return []

    def _deliver(self, room: Room, arrived: Talk) -> list[Action]:
        """Show the room's members every talk that is now due, in offset order."""
        talk = room.accept(arrived)
        if talk is None:
            return []
        actions: list[Action] = []
        text_members, markup_members = room.recipients()
        while talk is not None:
            if text_members:
                actions.append(Broadcast(room.join_key, text_members, talk.message(escape_html=False)))
            if markup_members:
                actions.append(Broadcast(room.join_key, markup_members, talk.message(escape_html=True)))
            talk = room.next_due() if room.holding else None
        return actions

    def _user_added(self, pending: _Joining, result: UserAdded | KeyTaken | LogFailed) -> list[Action]:
        connection, session, room = pending.connection, pending.session, pending.room
        room.pending -= 1
        actions: list[Action] = []
        if self._sessions.get(connection) is session:
            session.in_flight -= 1
            if isinstance(result, KeyTaken):
                forgotten = self._forget_if_idle(room)
                if pending.attempt < MAX_JOIN_KEY_ATTEMPTS:
                    return forgotten + self._add_user(
                        connection, session, self._create_room(), pending.renders_text, pending.created,
                        pending.attempt + 1,
                    )
                actions = forgotten
                session.join_failed()
                actions.append(Send(connection, error_event("could not make a new chat: no free key found; try again")))
            elif isinstance(result, UserAdded):
                actions = self._enter(connection, session, room, result.user_id, pending.renders_text)
            else:
                session.join_failed()
                message = f"could not join the chat: the server could not save it ({result.reason}); try again"
                actions = [Send(connection, error_event(message))]
            actions.extend(self._resume(connection, session))
        actions.extend(self._forget_if_idle(room))
        return actions

    def _enter(
        self, connection: ConnectionId, session: Session, room: Room, user_id: int, renders_text: bool
    ) -> list[Action]:
        room.add_member(connection, user_id, renders_text=renders_text)
        session.joined(room, user_id)
        escape_html = not renders_text
        actions: list[Action] = [Send(connection, init_event(room.join_key, user_id))]
        actions.extend(Send(connection, talk.message(escape_html=escape_html)) for talk in room.history)
        return actions

    def _loaded(self, join_key: str, result: Loaded | LogFailed) -> list[Action]:
        loading = self._loading.pop(join_key)
        waiters = [w for w in loading.waiters if self._sessions.get(w.connection) is w.session]
        for waiter in waiters:
            waiter.session.in_flight -= 1
        actions: list[Action] = []
        if isinstance(result, Loaded) and result.room is not None:
            room = self._rooms[join_key] = Room.restore(result.room, self.limits.history_limit)
            for logged in loading.arrived or ():
                self._deliver(room, Talk(*logged))  # nobody to show them to yet: they join the history
            for waiter in waiters:
                actions.extend(self._add_user(waiter.connection, waiter.session, room, waiter.renders_text))
            actions.extend(self._forget_if_idle(room))
            return actions
        if isinstance(result, Loaded):
            message = NOT_FOUND_ERROR
        else:
            message = f"could not open the chat: the server could not read it ({result.reason}); try again"
        for waiter in waiters:
            waiter.session.join_failed()
            actions.append(Send(waiter.connection, error_event(message)))
            actions.extend(self._resume(waiter.connection, waiter.session))
        return actions

    def _resume(self, connection: ConnectionId, session: Session) -> list[Action]:
        """The log answered this connection: handle what it sent meanwhile, as far as order allows."""
        backlog = session.backlog
        actions: list[Action] = []
        while backlog and session.may_go_now(backlog[0]):
            outcome = backlog.popleft()
            actions.extend(outcome if isinstance(outcome, list) else self._dispatch(connection, session, outcome))
        if not backlog:
            session.backlog = None
        return actions

    def _forget_if_idle(self, room: Room) -> list[Action]:
        """Keep a room in memory only while it is in use (the log has the rest); a shared log is told."""
        if room.idle and self._rooms.get(room.join_key) is room:
            del self._rooms[room.join_key]
            if self._shared_log:
                return [Forget(room.join_key)]
        return []
