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
  requests (a shared log may answer an `Append` late: `chatcore.shared`).
  A core made without ``external_log`` answers them itself from a
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

Protocol version 2 (`chatcore.wire.v2`, opt-in per connection) adds names,
presence, ids on talks, resume and history on the same way: a name is kept
by the log (`AddUser`, `Rename`), a talk id is checked by the log (one talk
per user and id), a resume token is checked by the log (only its hash goes
there), and older talks come from it (`History`). Presence is the core's: a
user is in a room while it has a connection to it; with a shared log the
core says when a user comes and goes here (`Presence`) and is told what
other processes say (`presence_heard`, `presence_snapshot`). Version-2
members are told who joins, leaves and renames; seed members never are.

What the driver may assume: the core keeps in memory only rooms with members
or requests in flight (the log has the rest); a client's mistake never raises
(it is answered with an ``error`` event or a `Close`); `DriverError` means the
driver broke this contract, and leaves the core unchanged.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from . import closecodes
from .actions import (
    Action,
    AddUser,
    Append,
    Broadcast,
    Close,
    ConnectionId,
    Forget,
    History,
    Load,
    LogRequest,
    Presence,
    Rename,
    Send,
    Ticket,
)
from .errors import DriverError, ProtocolError
from .limits import CoreLimits
from .memorylog import MemoryLog
from .ratelimit import TokenBucket
from .results import (
    Appended,
    HistoryRead,
    KeyTaken,
    Loaded,
    LogFailed,
    LoggedTalk,
    LogResult,
    NameSaved,
    PresenceHeard,
    PresenceSnapshot,
    UserAdded,
)
from .rooms import V2_MARKUP, V2_TEXT, Flavor, Room, Talk, flavor
from .session import ConnectionState, Session
from .wire import seed, v2
from .wire.jsontext import decode_text
from .wire.seed import InitRequest, TalkRequest
from .wire.v2 import HistoryRequest, InitV2, NameRequest, Request, TalkV2

MAX_JOIN_KEY_ATTEMPTS = 16
MAX_JOIN_KEY_CHARS = 64
"""Longer join keys are never handed out, so they are not looked up."""
MIN_TOKEN_CHARS = 16
ROOM_LOST_REASON = "this chat changed on the server; reconnect to see it as it is now"
RATE_LIMIT_ERROR = "too many messages: slow down"
NOT_FOUND_ERROR = "chat not found."
BACKLOG_CLOSE_REASON = "too many messages waiting for the previous one"


@dataclass(frozen=True, slots=True)
class _Intro:
    """What an ``init`` asked for, carried through the log's answers."""

    flavor: Flavor
    name: str | None = None
    token: str | None = None
    """Version 2: the new token for a new user."""
    resume: str | None = None
    """Version 2: the token presented, to come back as its user."""
    after: int | None = None


@dataclass(frozen=True, slots=True)
class _Joining:
    connection: ConnectionId
    session: Session
    room: Room
    intro: _Intro
    created: float | None
    attempt: int
    """Rooms this join has tried to create (a new key each time the log says `KeyTaken`)."""


@dataclass(frozen=True, slots=True)
class _Talking:
    connection: ConnectionId
    session: Session
    room: Room
    talk_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Naming:
    connection: ConnectionId
    session: Session
    room: Room
    name: str


@dataclass(frozen=True, slots=True)
class _Reading:
    connection: ConnectionId
    session: Session
    before: int


@dataclass(frozen=True, slots=True)
class _Loading:
    join_key: str


@dataclass(frozen=True, slots=True)
class _Waiter:
    connection: ConnectionId
    session: Session
    intro: _Intro


@dataclass(slots=True)
class _RoomLoad:
    """A room being loaded: who waits to join it, and talks and presence news from elsewhere that arrived meanwhile."""

    waiters: list[_Waiter]
    arrived: list[LoggedTalk] | None = None
    presence: list[PresenceHeard] = field(default_factory=list)


_Pending = _Joining | _Talking | _Loading | _Naming | _Reading
_CLOSING = ConnectionState.CLOSING
_ANSWERS: dict[type[_Pending], tuple[type[LogResult], ...]] = {
    _Joining: (UserAdded, KeyTaken, LogFailed),
    _Talking: (Appended, LogFailed),
    _Loading: (Loaded, LogFailed),
    _Naming: (NameSaved, LogFailed),
    _Reading: (HistoryRead, LogFailed),
}
_ANNOUNCED = (V2_TEXT, V2_MARKUP)


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
        new_token: Callable[[], str] | None = None,
    ) -> None:
        """``external_log``: the driver runs the room log (a store); otherwise the core keeps one in memory.

        ``shared_log`` (with ``external_log``): other processes use the same log; the core then says
        when it stops holding a room (`Forget`) and who comes and goes here (`Presence`).
        ``new_token`` draws a version-2 resume token (unguessable, 16 characters or more); by
        default, join keys end to end.
        """
        if shared_log and not external_log:
            raise ValueError("a shared log is an external log")
        self._shared_log = shared_log
        self._clock = clock
        self._new_join_key = new_join_key
        self._new_token = new_token or self._token_of_join_keys
        self.limits = limits or CoreLimits()
        self.memory_log = (
            None if external_log else MemoryLog(self.limits.history_limit, self.limits.remembered_users)
        )
        self._rooms: dict[str, Room] = {}
        self._sessions: dict[ConnectionId, Session] = {}
        self._loading: dict[str, _RoomLoad] = {}
        self._pending: dict[Ticket, _Pending] = {}
        self._tickets = itertools.count(1)

    def _token_of_join_keys(self) -> str:
        token = self._new_join_key()
        while len(token) < MIN_TOKEN_CHARS:
            token += self._new_join_key()
        return token

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
        """A connection ended; its room stays for later joiners, and its requests with the log still count."""
        session = self._session(connection)
        del self._sessions[connection]
        room = session.room
        if room is None:
            return []
        user_id = room.remove_member(connection)
        actions: list[Action] = []
        if user_id not in room.local:
            if self._shared_log:
                actions.append(Presence(room.join_key, user_id, False, None))
            if self.memory_log is not None:
                self.memory_log.left(room.join_key, user_id)
            if self._rooms.get(room.join_key) is room:
                actions.extend(self._presence_changed(room, {user_id: (True, room.names.get(user_id))}))
        actions.extend(self._forget_if_idle(room))
        return actions

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
        if isinstance(pending, _Naming):
            assert isinstance(result, NameSaved | LogFailed)
            return self._name_saved(pending, result)
        if isinstance(pending, _Reading):
            assert isinstance(result, HistoryRead | LogFailed)
            return self._history_read(pending, result)
        assert isinstance(result, Loaded | LogFailed)
        return self._loaded(pending.join_key, result)

    def presence_heard(self, heard: PresenceHeard) -> list[Action]:
        """A shared log's news of who comes, goes or renames in a room on another process."""
        room = self._rooms.get(heard.join_key)
        if room is not None:
            return self._apply_heard(room, heard)
        loading = self._loading.get(heard.join_key)
        if loading is not None:
            loading.presence.append(heard)  # (the load may have read presence before this news)
        return []

    def presence_snapshot(self, snapshot: PresenceSnapshot) -> list[Action]:
        """Who is in a room on the other processes, read from a shared log (to catch up on news lost on the way)."""
        room = self._rooms.get(snapshot.join_key)
        if room is None or snapshot.seq < room.presence_seq:
            return []
        return self._apply_snapshot(room, snapshot)

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
        for connection in itertools.chain.from_iterable(room.recipients()):
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
            talk_id = _talk_id_of(text, event, self.limits.max_json_depth) if session.v2 else None
            return [Send(connection, self._error(session, RATE_LIMIT_ERROR, talk_id))]
        try:
            if binary:
                raise ProtocolError("binary messages are not supported; send JSON text")
            if text is not None:
                event = decode_text(text, self.limits.max_json_depth)
            return v2.parse_request(event, self.limits.max_payload_chars, v2=session.v2)
        except ProtocolError as error:
            return [Send(connection, self._error(session, str(error), error.talk_id))]

    @staticmethod
    def _error(session: Session, message: str, talk_id: str | None = None) -> str:
        return v2.error_event(message, talk_id) if session.v2 else seed.error_event(message)

    def _dispatch(self, connection: ConnectionId, session: Session, request: Request) -> list[Action]:
        try:
            if isinstance(request, TalkRequest | TalkV2):
                return self._talk(connection, session, request)
            if isinstance(request, InitRequest | InitV2):
                return self._init(connection, session, request)
            if isinstance(request, NameRequest):
                return self._rename(connection, session, request)
            return self._history(connection, session, request)
        except ProtocolError as error:
            return [Send(connection, self._error(session, str(error), error.talk_id))]

    def _init(self, connection: ConnectionId, session: Session, request: InitRequest | InitV2) -> list[Action]:
        if session.room is not None:
            raise ProtocolError("already in a chat; open a new connection for another")
        if session.state is ConnectionState.CLOSING:
            raise ProtocolError("this connection is closing; open a new one")
        session.v2 = isinstance(request, InitV2)
        if isinstance(request, InitV2):
            intro = _Intro(
                flavor(v2=True, renders_text=request.renders_text), request.name, self._new_token(), request.token,
                request.after,
            )
        else:
            intro = _Intro(flavor(v2=False, renders_text=request.renders_text))
        join_key = request.join_key
        if join_key is None:
            return self._add_user(connection, session, self._create_room(), intro, created=self._clock())
        room = self._rooms.get(join_key)
        if room is not None:
            return self._add_user(connection, session, room, intro)
        if len(join_key) > MAX_JOIN_KEY_CHARS:
            raise ProtocolError(NOT_FOUND_ERROR)
        session.join_asked()
        session.in_flight += 1
        waiter = _Waiter(connection, session, intro)
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
        intro: _Intro,
        created: float | None = None,
        attempt: int = 1,
    ) -> list[Action]:
        if session.state is ConnectionState.LOBBY:
            session.join_asked()  # (after a Load, the session is JOINING already)
        session.in_flight += 1
        room.pending += 1
        ticket = self._ticket(_Joining(connection, session, room, intro, created, attempt))
        token_hash = None if intro.token is None else v2.token_hash(intro.token)
        resume_hash = None if intro.resume is None or created is not None else v2.token_hash(intro.resume)
        return self._ask(AddUser(ticket, room.join_key, created, token_hash, resume_hash, intro.name))

    def _talk(self, connection: ConnectionId, session: Session, request: TalkRequest | TalkV2) -> list[Action]:
        room = session.room
        if room is None:
            raise ProtocolError('send "init" before "talk"', getattr(request, "talk_id", None))
        user_id, name = session.user_id, room.names.get(session.user_id)
        talk_id = request.talk_id if isinstance(request, TalkV2) else None
        memory_log = self.memory_log
        if memory_log is not None:
            # The memory log answers at once: the talk comes back with its offset, as from any log. (Without
            # the request and result objects around it: they were a third of the cost of a talk.)
            talk, duplicate = memory_log.append(room.join_key, user_id, self._clock(), request.payload, name, talk_id)
            if duplicate:
                return [Send(connection, talk.message(session.flavor))]
            return self._deliver(room, talk)
        now, join_key = self._clock(), room.join_key
        session.in_flight += 1
        room.pending += 1
        ticket = self._ticket(_Talking(connection, session, room, talk_id))
        return self._ask(Append(ticket, join_key, user_id, now, request.payload, name, talk_id))

    def _rename(self, connection: ConnectionId, session: Session, request: NameRequest) -> list[Action]:
        room = session.room
        if room is None:
            raise ProtocolError('send "init" before "name"')
        session.in_flight += 1
        session.renaming += 1
        room.pending += 1
        ticket = self._ticket(_Naming(connection, session, room, request.name))
        return self._ask(Rename(ticket, room.join_key, session.user_id, request.name))

    def _history(self, connection: ConnectionId, session: Session, request: HistoryRequest) -> list[Action]:
        room = session.room
        if room is None:
            raise ProtocolError('send "init" before "history"')
        before = room.last_offset + 1 if request.before is None else request.before
        session.in_flight += 1
        room.pending += 1
        ticket = self._ticket(_Reading(connection, session, before))
        return self._ask(History(ticket, room.join_key, before, request.limit))

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
        actions: list[Action] = []
        if isinstance(result, Appended):
            delivered = room.last_offset
            actions = self._deliver(room, Talk(*result.talk))
            if result.duplicate and result.talk.offset <= delivered and self._sessions.get(connection) is session:
                # Stored before (a resend): this sender is shown it again, nobody else is.
                actions.append(Send(connection, Talk(*result.talk).message(session.flavor)))
        if self._sessions.get(connection) is session:
            session.in_flight -= 1
            if isinstance(result, LogFailed):
                message = f"message not sent: the server could not save it ({result.reason}); try again"
                actions.append(Send(connection, self._error(session, message, pending.talk_id)))
            actions.extend(self._resume(connection, session))
        actions.extend(self._forget_if_idle(room))
        return actions

    def _name_saved(self, pending: _Naming, result: NameSaved | LogFailed) -> list[Action]:
        connection, session, room = pending.connection, pending.session, pending.room
        room.pending -= 1
        actions: list[Action] = []
        if isinstance(result, NameSaved) and self._rooms.get(room.join_key) is room:
            user_id = session.user_id
            before = {user_id: (room.present(user_id), room.names.get(user_id))}
            room.rename(user_id, pending.name, result.seq)
            actions = self._presence_changed(room, before, renamed=True)
        if self._sessions.get(connection) is session:
            session.in_flight -= 1
            session.renaming -= 1
            if isinstance(result, LogFailed):
                message = f"name not changed: the server could not save it ({result.reason}); try again"
                actions.append(Send(connection, self._error(session, message)))
            actions.extend(self._resume(connection, session))
        actions.extend(self._forget_if_idle(room))
        return actions

    def _history_read(self, pending: _Reading, result: HistoryRead | LogFailed) -> list[Action]:
        connection, session = pending.connection, pending.session
        room = session.room
        assert room is not None
        room.pending -= 1
        actions: list[Action] = []
        if self._sessions.get(connection) is session:
            session.in_flight -= 1
            if isinstance(result, HistoryRead):
                flavor = session.flavor
                talks = [Talk(*logged).message(flavor) for logged in result.talks]
                actions.append(Send(connection, v2.history_event(pending.before, talks, result.older)))
            else:
                message = f"could not read older messages ({result.reason}); try again"
                actions.append(Send(connection, self._error(session, message)))
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
        audiences = room.audiences()
        while talk is not None:
            for kind, members in audiences:
                actions.append(Broadcast(room.join_key, members, talk.message(kind)))
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
                        connection, session, self._create_room(), pending.intro, pending.created,
                        pending.attempt + 1,
                    )
                actions = forgotten
                session.join_failed()
                message = "could not make a new chat: no free key found; try again"
                actions.append(Send(connection, self._error(session, message)))
            elif isinstance(result, UserAdded) and self._rooms.get(room.join_key) is not room:
                # The room was lost meanwhile (`room_lost`): like its members, the joiner reconnects.
                session.close_asked()
                actions = [Close(connection, closecodes.SERVICE_RESTART, ROOM_LOST_REASON)]
            elif isinstance(result, UserAdded):
                actions = self._enter(connection, session, room, result, pending.intro)
            else:
                session.join_failed()
                message = f"could not join the chat: the server could not save it ({result.reason}); try again"
                actions = [Send(connection, self._error(session, message))]
            actions.extend(self._resume(connection, session))
        elif isinstance(result, UserAdded) and self._rooms.get(room.join_key) is room:
            # The joiner left before the answer, but the log took the name it asked for.
            user_id = result.user_id
            before = {user_id: (room.present(user_id), room.names.get(user_id))}
            room.rename(user_id, result.name, None)
            actions.extend(self._presence_changed(room, before))
        actions.extend(self._forget_if_idle(room))
        return actions

    def _enter(
        self, connection: ConnectionId, session: Session, room: Room, added: UserAdded, intro: _Intro
    ) -> list[Action]:
        user_id = added.user_id
        before = {user_id: (room.present(user_id), room.names.get(user_id))}
        room.rename(user_id, added.name, None)
        room.add_member(connection, user_id, intro.flavor)
        session.joined(room, user_id)
        session.flavor = intro.flavor
        actions = self._presence_changed(room, before, exclude=connection)  # (the joiner is told by its init)
        if self._shared_log and room.local[user_id] == 1:
            actions.append(Presence(room.join_key, user_id, True, added.name))
        if not session.v2:
            actions.append(Send(connection, seed.init_event(room.join_key, user_id)))
            actions.extend(Send(connection, talk.message(intro.flavor)) for talk in room.history)
            return actions
        after = intro.after
        replay = [talk for talk in room.history if talk.offset > after] if after is not None else list(room.history)
        first = replay[0].offset if replay else room.last_offset + 1
        token = intro.resume if added.resumed and intro.resume is not None else intro.token
        assert token is not None
        actions.append(Send(connection, v2.init_event(
            room.join_key, user_id, token=token, name=added.name, members=room.members(), resumed=added.resumed,
            offset=room.last_offset, older=first > (after or 0) + 1, escape_html=intro.flavor == V2_MARKUP,
        )))
        actions.extend(Send(connection, talk.message(intro.flavor)) for talk in replay)
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
            if result.room.presence is not None:
                self._apply_snapshot(room, result.room.presence)
            for heard in loading.presence:
                self._apply_heard(room, heard)
            for waiter in waiters:
                actions.extend(self._add_user(waiter.connection, waiter.session, room, waiter.intro))
            actions.extend(self._forget_if_idle(room))
            return actions
        if isinstance(result, Loaded):
            message = NOT_FOUND_ERROR
        else:
            message = f"could not open the chat: the server could not read it ({result.reason}); try again"
        for waiter in waiters:
            waiter.session.join_failed()
            actions.append(Send(waiter.connection, self._error(waiter.session, message)))
            actions.extend(self._resume(waiter.connection, waiter.session))
        return actions

    # Presence

    def _apply_heard(self, room: Room, heard: PresenceHeard) -> list[Action]:
        if heard.seq <= room.presence_seq:
            return []  # (a snapshot read after this news has it already)
        room.presence_seq = heard.seq
        user_id = heard.user_id
        before = {user_id: (room.present(user_id), room.names.get(user_id))}
        if heard.here is not False:
            room.rename(user_id, heard.name, heard.seq)
        if heard.here is not None:
            room.set_remote((heard.origin, user_id), heard.here)
        return self._presence_changed(room, before)

    def _apply_snapshot(self, room: Room, snapshot: PresenceSnapshot) -> list[Action]:
        users = set(room.remote_users) | {user_id for _, user_id, _ in snapshot.entries}
        before = {user_id: (room.present(user_id), room.names.get(user_id)) for user_id in users}
        room.presence_seq = snapshot.seq
        room.remote.clear()
        room.remote_users.clear()
        for origin, user_id, name in snapshot.entries:
            room.rename(user_id, name, snapshot.seq)
            room.set_remote((origin, user_id), True)
        return self._presence_changed(room, before)

    def _presence_changed(
        self,
        room: Room,
        before: Mapping[int, tuple[bool, str | None]],
        *,
        renamed: bool = False,
        exclude: ConnectionId | None = None,
    ) -> list[Action]:
        """Tell the room's version-2 members who joined, left or was renamed since ``before`` (present, name).

        ``renamed``: a rename was asked for; it is announced even to the same name (the renamer waits for it).
        Every change of presence comes through here: the names of users in ``before`` no longer present are
        dropped (the log has them), so that a room in use keeps only its members' names however many came and went.
        """
        for user_id in before:
            room.forget_if_absent(user_id)
        recipients = room.recipients()
        if not recipients[V2_TEXT] and not recipients[V2_MARKUP]:
            return []
        actions: list[Action] = []
        for user_id, (was_present, old_name) in before.items():
            present, name = room.present(user_id), room.names.get(user_id)
            if present and not was_present:
                kind = "joined"
            elif was_present and not present:
                kind = "left"
            elif present and (renamed or name != old_name):
                kind = "renamed"
            else:
                continue
            for announced in _ANNOUNCED:
                members = recipients[announced]
                if exclude is not None and exclude in members:
                    members = tuple(member for member in members if member != exclude)
                if members:
                    event = _presence_event(kind, user_id, name, escape_html=announced == V2_MARKUP)
                    actions.append(Broadcast(room.join_key, members, event))
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


def _presence_event(kind: str, user_id: int, name: str | None, *, escape_html: bool) -> str:
    if kind == "joined":
        return v2.joined_event(user_id, name, escape_html=escape_html)
    if kind == "left":
        return v2.left_event(user_id)
    return v2.renamed_event(user_id, name, escape_html=escape_html)


def _talk_id_of(text: str | None, event: object, max_depth: int) -> str | None:
    """The ``id`` of a talk refused before it was read (for its rate), so a version-2 client knows which."""
    if text is not None:
        try:
            event = decode_text(text, max_depth)
        except ProtocolError:
            return None
    if isinstance(event, dict) and event.get("type") == "talk":
        talk_id = event.get("id")
        if isinstance(talk_id, str) and len(talk_id) <= v2.MAX_TALK_ID_CHARS:
            return talk_id
    return None
