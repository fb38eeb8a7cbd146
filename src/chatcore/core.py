"""The chat as a pure state machine: connection events and room-log results in, actions out.

Theory of operation
===================

`ChatCore` holds every room in use and every open connection of one server
process. It never performs I/O, never reads a clock of its own (``clock`` is
given) and never draws randomness (``new_join_key`` is given). A driver (in
``transports``) owns the sockets and the room log's backend, and calls it.

What the driver feeds, for each connection: `ChatCore.connect` once, then any
number of `ChatCore.receive_text` / `ChatCore.receive_binary` as messages
arrive, then `ChatCore.disconnect` once, however the connection ended. Each
call returns a list of actions. The driver must perform them in order, before
it feeds the core anything else that could depend on them:

- `Send`, `Broadcast`, `Close`: write to clients. A write that fails is the
  driver's business; it reports the connection's end with `disconnect`.
- Every other action is for the room log (`chatcore.actions.LogAction`): the
  driver hands it to its backend and feeds each result back through
  `ChatCore.log_result`; requests are answered one result each, in the order
  of the requests (a shared log may answer an `Append` late). The backend may
  answer at once (`MemoryLog.perform`) or later (SQLite, Redis): the core
  cannot tell, and there is no other way to the log.

One way for every message. A talk is not shown when it arrives: the core
asks the log to `Append` it, and shows it when the log hands it back as
`Appended`, with its offset in the room (1, 2, 3 …, gap-free, assigned by the
log, never reused). Each room delivers its talks to its members in offset
order, each once, whatever order they come back in; a joiner's replay is the
room's latest talks up to the offset delivered so far, and it receives every
later talk. A talk another process appended to a shared log (`TalkArrived`)
takes the same way, and `chatcore.feed` fills any gap in them (`Fill`).
User ids are handed out by the log (`AddUser`) too, so a log shared by
several processes can allocate them.

Answers to one connection keep the order of its requests: while its
``init`` is with the log, everything it sends waits; while its talks are
with the log, further talks go too (the log keeps their order) but anything
else waits behind them. The per-connection states are in `chatcore.session`.

Each connection speaks a dialect of the wire protocol (`chatcore.wire.dialect`),
the seed's until its ``init`` chooses another: the core reads requests and
writes events through it and never asks which version it is. Version 2 adds
names, presence, ids on talks, resume and history on the same way: a name is
kept by the log (`AddUser`, `Rename`), a talk id is checked by the log (one
talk per user and id), a resume token is checked by the log (only its hash
goes there), and older talks come from it (`History`). Presence is the
core's: a user is in a room while it has a connection to it
(`chatcore.presence`); the core tells the log when a user comes and goes here
(`Presence`) and is told what other processes say (`PresenceHeard`,
`PresenceSnapshot`).

What the driver may assume: the core keeps in memory only rooms with members
or requests in flight (the log has the rest; `Forget` says when it lets one
go); a client's mistake never raises (it is answered with an ``error`` event
or a `Close`); `DriverError` means the driver broke this contract, and leaves
the core unchanged.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

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
    Presence,
    Rename,
    Send,
    Subscribe,
    Ticket,
)
from .errors import DriverError, ProtocolError
from .feed import Lost, RoomFeed
from .limits import CoreLimits
from .pending import Intro, Joining, Loading, Naming, Reading, RoomLoad, Talking, Tickets, Waiter
from .presence import announce, apply_heard, apply_snapshot, before
from .ratelimit import TokenBucket
from .results import (
    Appended,
    Filled,
    HistoryRead,
    KeyTaken,
    Loaded,
    LogAnswer,
    LogFailed,
    LoggedTalk,
    LogLost,
    LogResult,
    NameSaved,
    PresenceHeard,
    PresenceSnapshot,
    Subscribed,
    TalkArrived,
    UserAdded,
)
from .rooms import Room, Talk
from .session import Session, SessionState
from .wire import dialects
from .wire.dialect import HistoryRequest, InitRequest, NameRequest, Request, TalkRequest, Welcome
from .wire.jsontext import decode_text
from .wire.v2 import token_hash

MAX_JOIN_KEY_ATTEMPTS = 16
MAX_JOIN_KEY_CHARS = 64
"""Longer join keys are never handed out, so they are not looked up."""
MIN_TOKEN_CHARS = 16
ROOM_LOST_REASON = "this chat changed on the server; reconnect to see it as it is now"
LOST_REASON = "this chat lost messages on the server; reconnect to see it as it is now"
RATE_LIMIT_ERROR = "too many messages: slow down"
NOT_FOUND_ERROR = "chat not found."
BACKLOG_CLOSE_REASON = "too many messages waiting for the previous one"

_CLOSING = SessionState.CLOSING


class ChatCore:
    """All rooms in use and all connections of one chat server; see the module docstring."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        new_join_key: Callable[[], str],
        limits: CoreLimits | None = None,
        new_token: Callable[[], str] | None = None,
    ) -> None:
        """``new_token`` draws a resume token (unguessable, 16 characters or more); by default, join keys end to end."""
        self._clock = clock
        self._new_join_key = new_join_key
        self._new_token = new_token or self._token_of_join_keys
        self.limits = limits or CoreLimits()
        self._rooms: dict[str, Room] = {}
        self._sessions: dict[ConnectionId, Session] = {}
        self._loading: dict[str, RoomLoad] = {}
        self._tickets = Tickets()
        self._feed = RoomFeed()
        self._watching: dict[Ticket, tuple[str, bool]] = {}
        """Loads and creations in flight: the room, and whether a load (the feed starts from their answer)."""

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
        return len(self._tickets)

    def state_of(self, connection: ConnectionId) -> SessionState:
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
            actions.append(Presence(room.join_key, user_id, False, None))
            if self._rooms.get(room.join_key) is room:
                actions.extend(announce(room, {user_id: (True, room.names.get(user_id))}))
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
        """The log answered a request, or told news from other processes sharing it (`chatcore.results`)."""
        if isinstance(result, TalkArrived):
            talk = result.talk
            return [*self._feed.heard(talk), *self._arrived(talk)]
        if isinstance(result, Filled):
            return self._filled(result)
        if isinstance(result, Subscribed):
            return list(self._feed.subscribed(result.join_key))
        if isinstance(result, PresenceHeard):
            return self._presence_heard(result)
        if isinstance(result, PresenceSnapshot):
            room = self._rooms.get(result.join_key)
            if room is None or result.seq < room.presence_seq:
                return []
            return apply_snapshot(room, result)
        if isinstance(result, LogLost):
            actions: list[Action] = []
            for join_key in self.rooms_held:
                actions.extend(self.room_lost(join_key, LOST_REASON))
            return actions
        pending = self._tickets.settle(result)
        actions = self._watched(result) if self._watching else []
        if isinstance(pending, Talking):
            assert isinstance(result, Appended | LogFailed)
            actions.extend(self._appended(pending, result))
        elif isinstance(pending, Joining):
            assert isinstance(result, UserAdded | KeyTaken | LogFailed)
            actions.extend(self._user_added(pending, result))
        elif isinstance(pending, Naming):
            assert isinstance(result, NameSaved | LogFailed)
            actions.extend(self._name_saved(pending, result))
        elif isinstance(pending, Reading):
            assert isinstance(result, HistoryRead | LogFailed)
            actions.extend(self._history_read(pending, result))
        else:
            assert isinstance(result, Loaded | LogFailed)
            actions.extend(self._loaded(pending.join_key, result))
        return actions

    def room_lost(self, join_key: str, reason: str) -> list[Action]:
        """The log lost talks of a room this process cannot get back (trimmed, or the log's data is gone).

        Its members here are closed with 1012 so that they rejoin and are shown the
        room as the log has it now, rather than a history with a hole the page cannot
        see; the room is dropped from memory (and the log told: `Forget`).
        ``reason`` is the close reason (at most 123 bytes of UTF-8).
        """
        room = self._rooms.get(join_key)
        if room is None:
            return []
        del self._rooms[join_key]
        actions: list[Action] = []
        for connection in room.connections():
            session = self._sessions[connection]
            if session.state is not _CLOSING:
                session.close_asked()
                actions.append(Close(connection, closecodes.SERVICE_RESTART, reason))
        actions.append(self._forget(join_key))
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
        dialect = session.dialect
        if not session.bucket.allow(self._clock()):
            if session.bucket.strikes > self.limits.max_rate_strikes:
                session.close_asked()
                return [Close(connection, closecodes.POLICY_VIOLATION, "message rate limit exceeded")]
            talk_id = None
            if dialect.has_talk_ids:
                talk_id = dialect.refused_talk_id(self._decoded_quietly(text, event))
            return [Send(connection, dialect.error_event(RATE_LIMIT_ERROR, talk_id))]
        try:
            if binary:
                raise ProtocolError("binary messages are not supported; send JSON text")
            if text is not None:
                event = decode_text(text, self.limits.max_json_depth)
            return dialects.parse(dialect, event, self.limits.max_payload_chars)
        except ProtocolError as error:
            return [Send(connection, dialect.error_event(str(error), error.talk_id))]

    def _decoded_quietly(self, text: str | None, event: object) -> object:
        if text is None:
            return event
        try:
            return decode_text(text, self.limits.max_json_depth)
        except ProtocolError:
            return None

    def _dispatch(self, connection: ConnectionId, session: Session, request: Request) -> list[Action]:
        try:
            if isinstance(request, TalkRequest):
                return self._talk(connection, session, request)
            if isinstance(request, InitRequest):
                return self._init(connection, session, request)
            if isinstance(request, NameRequest):
                return self._rename(connection, session, request)
            return self._history(connection, session, request)
        except ProtocolError as error:
            return [Send(connection, session.dialect.error_event(str(error), error.talk_id))]

    def _init(self, connection: ConnectionId, session: Session, request: InitRequest) -> list[Action]:
        if session.room is not None:
            raise ProtocolError("already in a chat; open a new connection for another")
        if session.state is SessionState.CLOSING:
            raise ProtocolError("this connection is closing; open a new one")
        dialect = session.dialect = request.dialect
        token = self._new_token() if dialect.resumes else None
        intro = Intro(dialect, request.name, token, request.token, request.after)
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
        waiter = Waiter(connection, session, intro)
        loading = self._loading.get(join_key)
        if loading is not None:
            loading.waiters.append(waiter)
            return []
        self._loading[join_key] = RoomLoad([waiter])
        ticket = self._tickets.issue(Loading(join_key))
        self._watching[ticket] = (join_key, True)
        return [Subscribe(join_key), Load(ticket, join_key, self.limits.history_limit)]

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
        intro: Intro,
        created: float | None = None,
        attempt: int = 1,
    ) -> list[Action]:
        if session.state is SessionState.LOBBY:
            session.join_asked()  # (after a Load, the session is JOINING already)
        session.in_flight += 1
        room.in_flight += 1
        ticket = self._tickets.issue(Joining(connection, session, room, intro, created, attempt))
        new_hash = None if intro.token is None else token_hash(intro.token)
        resume_hash = None if intro.resume is None or created is not None else token_hash(intro.resume)
        add = AddUser(ticket, room.join_key, created, new_hash, resume_hash, intro.name)
        if created is None:
            return [add]
        self._watching[ticket] = (room.join_key, False)
        return [Subscribe(room.join_key), add]

    def _talk(self, connection: ConnectionId, session: Session, request: TalkRequest) -> list[Action]:
        room = session.room
        if room is None:
            raise ProtocolError('send "init" before "talk"', request.talk_id)
        user_id = session.user_id
        session.in_flight += 1
        room.in_flight += 1
        ticket = self._tickets.issue(Talking(connection, session, room, request.talk_id))
        return [Append(
            ticket, room.join_key, user_id, self._clock(), request.payload, room.names.get(user_id), request.talk_id
        )]

    def _rename(self, connection: ConnectionId, session: Session, request: NameRequest) -> list[Action]:
        room = session.room
        if room is None:
            raise ProtocolError('send "init" before "name"')
        session.in_flight += 1
        session.renaming += 1
        room.in_flight += 1
        ticket = self._tickets.issue(Naming(connection, session, room, request.name))
        return [Rename(ticket, room.join_key, session.user_id, request.name)]

    def _history(self, connection: ConnectionId, session: Session, request: HistoryRequest) -> list[Action]:
        room = session.room
        if room is None:
            raise ProtocolError('send "init" before "history"')
        before_offset = room.last_offset + 1 if request.before is None else request.before
        session.in_flight += 1
        room.in_flight += 1
        ticket = self._tickets.issue(Reading(connection, session, before_offset))
        return [History(ticket, room.join_key, before_offset, request.limit)]

    # Results from the log

    def _watched(self, result: LogAnswer) -> list[Action]:
        """A room's load or creation answered: where the feed of its talks from other processes starts."""
        watched = self._watching.pop(result.ticket, None)
        if watched is None:
            return []
        join_key, loading = watched
        if isinstance(result, Loaded) and result.room is not None:
            return list(self._feed.loaded(join_key, result.room.last_offset))
        if isinstance(result, UserAdded):
            return list(self._feed.loaded(join_key, 0))  # a new room: its talks start at offset 1
        if loading:
            return [self._forget(join_key)]  # no such room, or the load failed: not held here
        return []  # (a creation that failed leaves its room idle: forgotten as such)

    def _appended(self, pending: Talking, result: Appended | LogFailed) -> list[Action]:
        connection, session, room = pending.connection, pending.session, pending.room
        room.in_flight -= 1
        actions: list[Action] = []
        if isinstance(result, Appended):
            delivered = room.last_offset
            talk = Talk(*result.talk)
            actions = self._deliver(room, talk)
            if result.duplicate and talk.offset <= delivered and self._sessions.get(connection) is session:
                # Stored before (a resend): this sender is shown it again, nobody else is.
                actions.append(Send(connection, talk.message(session.dialect)))
        if self._sessions.get(connection) is session:
            session.in_flight -= 1
            if isinstance(result, LogFailed):
                message = f"message not sent: the server could not save it ({result.reason}); try again"
                actions.append(Send(connection, session.dialect.error_event(message, pending.talk_id)))
            actions.extend(self._resume(connection, session))
        actions.extend(self._forget_if_idle(room))
        return actions

    def _name_saved(self, pending: Naming, result: NameSaved | LogFailed) -> list[Action]:
        connection, session, room = pending.connection, pending.session, pending.room
        room.in_flight -= 1
        actions: list[Action] = []
        if isinstance(result, NameSaved) and self._rooms.get(room.join_key) is room:
            user_id = session.user_id
            was = before(room, user_id)
            room.rename(user_id, pending.name, result.seq)
            actions = announce(room, was, renamed=True)
        if self._sessions.get(connection) is session:
            session.in_flight -= 1
            session.renaming -= 1
            if isinstance(result, LogFailed):
                message = f"name not changed: the server could not save it ({result.reason}); try again"
                actions.append(Send(connection, session.dialect.error_event(message)))
            actions.extend(self._resume(connection, session))
        actions.extend(self._forget_if_idle(room))
        return actions

    def _history_read(self, pending: Reading, result: HistoryRead | LogFailed) -> list[Action]:
        connection, session = pending.connection, pending.session
        room = session.room
        assert room is not None
        room.in_flight -= 1
        actions: list[Action] = []
        if self._sessions.get(connection) is session:
            session.in_flight -= 1
            dialect = session.dialect
            if isinstance(result, HistoryRead):
                talks = [Talk(*logged).message(dialect) for logged in result.talks]
                actions.append(Send(connection, dialect.history_event(pending.before, talks, result.older)))
            else:
                message = f"could not read older messages ({result.reason}); try again"
                actions.append(Send(connection, dialect.error_event(message)))
            actions.extend(self._resume(connection, session))
        actions.extend(self._forget_if_idle(room))
        return actions

    def _filled(self, filled: Filled) -> list[Action]:
        actions: list[Action] = []
        for talk in filled.talks:
            actions.extend(self._arrived(talk))
        for outcome in self._feed.filled(filled.join_key, filled.after, filled.talks):
            if isinstance(outcome, Lost):
                actions.extend(self.room_lost(filled.join_key, LOST_REASON))
            else:
                actions.append(outcome)
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
            for dialect, members in audiences:
                actions.append(Broadcast(room.join_key, members, talk.message(dialect)))
            talk = room.next_due() if room.holding else None
        return actions

    def _user_added(self, pending: Joining, result: UserAdded | KeyTaken | LogFailed) -> list[Action]:
        connection, session, room = pending.connection, pending.session, pending.room
        room.in_flight -= 1
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
                actions.append(Send(connection, session.dialect.error_event(message)))
            elif isinstance(result, UserAdded) and self._rooms.get(room.join_key) is not room:
                # The room was lost meanwhile (`room_lost`): like its members, the joiner reconnects.
                session.close_asked()
                actions = [Close(connection, closecodes.SERVICE_RESTART, ROOM_LOST_REASON)]
            elif isinstance(result, UserAdded):
                actions = self._enter(connection, session, room, result, pending.intro)
            else:
                session.join_failed()
                message = f"could not join the chat: the server could not save it ({result.reason}); try again"
                actions = [Send(connection, session.dialect.error_event(message))]
            actions.extend(self._resume(connection, session))
        elif isinstance(result, UserAdded) and self._rooms.get(room.join_key) is room:
            # The joiner left before the answer, but the log took the name it asked for.
            user_id = result.user_id
            was = before(room, user_id)
            room.rename(user_id, result.name, None)
            actions.extend(announce(room, was))
        actions.extend(self._forget_if_idle(room))
        return actions

    def _enter(
        self, connection: ConnectionId, session: Session, room: Room, added: UserAdded, intro: Intro
    ) -> list[Action]:
        user_id, dialect = added.user_id, intro.dialect
        was = before(room, user_id)
        room.rename(user_id, added.name, None)
        room.add_member(connection, user_id, dialect)
        session.joined(room, user_id)
        actions = announce(room, was, exclude=connection)  # (the joiner is told by its init)
        if room.local[user_id] == 1:
            actions.append(Presence(room.join_key, user_id, True, added.name))
        token = intro.resume if added.resumed and intro.resume is not None else intro.token
        welcome = Welcome(
            room.join_key, user_id, added.name, token, added.resumed, room.members(), room.last_offset,
            room.history, intro.after,
        )
        actions.append(Send(connection, dialect.init_event(welcome)))
        actions.extend(Send(connection, talk.message(dialect)) for talk in dialect.replayed(welcome))
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
                apply_snapshot(room, result.room.presence)
            for heard in loading.presence:
                apply_heard(room, heard)
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
            actions.append(Send(waiter.connection, waiter.session.dialect.error_event(message)))
            actions.extend(self._resume(waiter.connection, waiter.session))
        return actions

    def _presence_heard(self, heard: PresenceHeard) -> list[Action]:
        room = self._rooms.get(heard.join_key)
        if room is not None:
            return apply_heard(room, heard)
        loading = self._loading.get(heard.join_key)
        if loading is not None:
            loading.presence.append(heard)  # (the load may have read presence before this news)
        return []

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
        """Keep a room in memory only while it is in use (the log has the rest)."""
        if room.idle and self._rooms.get(room.join_key) is room:
            del self._rooms[room.join_key]
            return [self._forget(room.join_key)]
        return []

    def _forget(self, join_key: str) -> Forget:
        self._feed.forget(join_key)
        return Forget(join_key)
