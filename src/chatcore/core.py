"""The chat as a pure state machine: connection events and room-log results in, actions out.

`ChatCore` holds every room in use and every open connection of one server
process. The package's docstring (`chatcore`) is its theory of operation: what
a driver feeds, what it must perform, and the one way every message takes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, get_args

from . import closecodes, problems
from .actions import (
    Action,
    AddUser,
    Append,
    Close,
    ConnectionId,
    Expire,
    Load,
    Send,
    Subscribe,
)
from .changes import ENDED_REASON
from .entering import enter
from .errors import DriverError, ProtocolError
from .holdings import MAX_JOIN_KEY_ATTEMPTS, Holdings, deliver
from .identity import NameKey, SignIn, admit, folded
from .limits import CoreLimits
from .member import MemberRequests
from .pending import (
    Changing,
    Intro,
    Joining,
    Loading,
    Naming,
    Pending,
    Reading,
    RoomLoad,
    Talking,
    Tickets,
    Waiter,
    token_hash,
)
from .presence import announce, apply_heard, apply_snapshot, before
from .ratelimit import TokenBucket
from .results import (
    Appended,
    ChangeArrived,
    Expired,
    Filled,
    KeyTaken,
    Loaded,
    LogFailed,
    LogNews,
    LogResult,
    PresenceHeard,
    PresenceSnapshot,
    Refused,
    Subscribed,
    TalkArrived,
    TypingHeard,
    UserAdded,
)
from .rooms import Room
from .session import Session, SessionState
from .typers import member_typing, passed_on
from .wire import dialects
from .wire.dialect import ChangeRequest, InitRequest, NameRequest, Request, TalkRequest, TypingRequest
from .wire.jsontext import decode_or_none, decode_text

MAX_JOIN_KEY_CHARS = 64
"""Longer join keys are never handed out, so they are not looked up."""
MIN_TOKEN_CHARS = 16
ROOM_LOST_REASON = "this chat changed on the server; reconnect to see it as it is now"
LOST_REASON = "this chat lost messages on the server; reconnect to see it as it is now"
BACKLOG_CLOSE_REASON = "too many messages waiting for the previous one"
SETTLE_LIMIT = 1000
"""Most graces one `ChatCore.settle` ends (the driver checkpoints between calls)."""

_CLOSING = SessionState.CLOSING
_NEWS = frozenset({*get_args(LogNews), Filled})


class ChatCore(MemberRequests):
    """All rooms in use and all connections of one chat server; see the theory of operation (`chatcore`)."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        new_join_key: Callable[[], str],
        limits: CoreLimits | None = None,
        new_token: Callable[[], str] | None = None,
        sign_in: SignIn | None = None,
        name_key: NameKey = folded,
    ) -> None:
        """``new_token`` draws a resume token (unguessable, 16 characters or more; by default, join keys end to end);
        ``sign_in``: how sign-in tokens are checked, if required (None: not taken); ``name_key``: see `NameKey`."""
        self._sign_in = sign_in
        self._name_key = None if sign_in is None else name_key  # (without sign-ins nobody holds a name)
        self._clock = clock
        self._new_join_key = new_join_key
        self._new_token = new_token or self._token_of_join_keys
        self.limits = limits or CoreLimits()
        self._sessions: dict[ConnectionId, Session] = {}
        self._tickets = Tickets()
        self._held = Holdings(self.limits.history_limit, self._close, self.limits.presence_grace)
        self._rooms = self._held.rooms
        self._loading = self._held.loading
        self._answered: dict[type[Pending], Callable[[Any, Any], list[Action]]] = {
            Talking: self._appended, Joining: self._user_added, Naming: self._name_saved,
            Reading: self._history_read, Loading: self._loaded, Changing: self._changed,
        }
        """How each kind of request's answer is taken (the results it accepts: `chatcore.pending`)."""

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
        """A connection ended; its room stays for later joiners, and its requests with the log still count.

        If it was its user's last connection to the room, the user stays in the room for its grace
        (`CoreLimits.presence_grace`, `chatcore.graces`): the actions then hold a `Wake`, saying when to `settle`.
        """
        session = self._session(connection)
        del self._sessions[connection]
        room = session.room
        if room is None:
            return []
        user_id = room.remove_member(connection)
        actions: list[Action] = []
        if user_id not in room.local:
            actions = self._held.last_left(room, user_id, self._clock(), removed=session.removed)
        actions.extend(self._held.forget_if_idle(room))
        return actions

    def settle(self, limit: int = SETTLE_LIMIT) -> list[Action]:
        """End the graces that are over: their users are announced ``left`` and the log told (`chatcore.graces`).

        Call it when a `Wake` says. It ends at most ``limit`` graces; while others are under way, what it returns
        ends with a `Wake` for the next (``Wake(0)``: some are over already, call again after a checkpoint).
        """
        return self._held.settle(self._clock(), limit)

    def receive_text(self, connection: ConnectionId, text: str) -> list[Action]:
        """A text message arrived: JSON, one event."""
        return self._receive(connection, text=text)

    def receive(self, connection: ConnectionId, event: object) -> list[Action]:
        """A decoded client event arrived."""
        return self._receive(connection, event=event)

    def receive_binary(self, connection: ConnectionId, data: bytes) -> list[Action]:
        """A binary message arrived; the protocol is JSON text only."""
        return self._receive(connection, binary=True)

    def expire(self, before: float) -> list[Action]:
        """Retention: the log is to erase every talk sent before ``before`` and end the rooms quiet since then.

        Called by the driver from time to time (the core reads no clock of its own for it); the log tells what
        it erased in rooms held here (`Expired`, and an end: `ChangeArrived`).
        """
        return [Expire(before)]

    def log_result(self, result: LogResult) -> list[Action]:
        """The log answered a request, or told news from other processes sharing it (`chatcore.results`)."""
        kind = type(result)
        if kind is not Appended and kind in _NEWS:  # (the common result, a talk appended, is not news)
            return self._news(result)
        answer: Any = result
        pending = self._tickets.settle(answer)
        if not self._held.watching:
            answered: list[Action] = self._answered[type(pending)](pending, answer)
            return answered
        watched = self._held.watched(answer)  # (first: the answer may make the core let the room go)
        return watched + self._answered[type(pending)](pending, answer)

    def _news(self, result: LogResult) -> list[Action]:
        if isinstance(result, TalkArrived):
            return self._held.heard(result.talk)
        if isinstance(result, Filled):
            filled, lost = self._held.filled(result)
            return filled + self.room_lost(result.join_key, LOST_REASON) if lost else filled
        if isinstance(result, Subscribed):
            return self._held.subscribed(result.join_key)
        if isinstance(result, PresenceHeard):
            return self._held.presence_heard(result)
        if isinstance(result, PresenceSnapshot):
            return self._held.presence_snapshot(result)
        if isinstance(result, TypingHeard):
            return self._held.typing_heard(result, self._clock())
        if isinstance(result, ChangeArrived):
            return self._held.changed(result.entry)
        if isinstance(result, Expired):
            self._held.expired(result)
            return []
        return [action for join_key in self.rooms_held for action in self.room_lost(join_key, LOST_REASON)]

    def room_lost(self, join_key: str, reason: str) -> list[Action]:
        """The log lost talks of a room this process cannot get back (trimmed, or the log's data is gone).

        Its members here are closed with 1012 so that they rejoin and are shown the
        room as the log has it now, rather than a history with a hole the page cannot
        see; the room is dropped from memory (and the log told: `Forget`).
        ``reason`` is the close reason (at most 123 bytes of UTF-8).
        """
        return self._held.lost(join_key, reason)

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
        if session.dialect.tells_typing and (told := passed_on(session, text, event, self._clock, self.limits)):
            return told  # (outside the rate and the backlog; one dropped by the interval is counted, as any request)
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
            talk_id = request = None
            if dialect.has_talk_ids:
                decoded = event if text is None else decode_or_none(text, self.limits.max_json_depth)
                talk_id = dialect.refused_talk_id(decoded)
                request = dialect.refused_request(decoded)
            return [Send(connection, dialect.error_event(problems.RATE_LIMITED, talk_id, request))]
        try:
            if binary:
                raise ProtocolError(problems.BINARY)
            if text is not None:
                event = decode_text(text, self.limits.max_json_depth)
            return dialects.parse(dialect, event, self.limits.max_payload_chars)
        except ProtocolError as error:
            answer_in = dialect if error.dialect is None else error.dialect
            return [Send(connection, answer_in.error_event(error.problem, error.talk_id, error.request))]

    def _dispatch(self, connection: ConnectionId, session: Session, request: Request) -> list[Action]:
        try:
            if isinstance(request, TalkRequest):
                return self._talk(connection, session, request)
            if isinstance(request, InitRequest):
                return self._init(connection, session, request)
            if isinstance(request, NameRequest):
                return self._rename(connection, session, request)
            if isinstance(request, ChangeRequest):
                return self._moderate(connection, session, request)
            if isinstance(request, TypingRequest):  # (sent before the join was answered, or from no room)
                return member_typing(session.room, session.user_id, self._clock())
            return self._history(connection, session, request)
        except ProtocolError as error:
            return [Send(connection, session.dialect.error_event(error.problem, error.talk_id, error.request))]

    def _init(self, connection: ConnectionId, session: Session, request: InitRequest) -> list[Action]:
        if session.room is not None:
            raise ProtocolError(problems.ALREADY_IN_CHAT)
        if session.state is SessionState.CLOSING:
            raise ProtocolError(problems.CLOSING)
        dialect = session.dialect = request.dialect
        identity = admit(self._sign_in, request.auth, request.join_key)
        intro = Intro.of(request, identity, self._new_token() if dialect.resumes else None)
        join_key = request.join_key
        if join_key is None:
            new_room = self._held.create(self._new_join_key)
            return self._add_user(connection, session, new_room, intro, created=self._clock())
        room = self._rooms.get(join_key)
        if room is not None:
            return self._add_user(connection, session, room, intro)
        if len(join_key) > MAX_JOIN_KEY_CHARS:
            raise ProtocolError(problems.NOT_FOUND)
        session.join_asked()
        session.in_flight += 1
        waiter = Waiter(connection, session, intro)
        loading = self._loading.get(join_key)
        if loading is not None:
            loading.waiters.append(waiter)
            return []
        self._loading[join_key] = RoomLoad([waiter])
        ticket = self._tickets.issue(Loading(join_key))
        self._held.watch(ticket, join_key, load=True)
        return [Subscribe(join_key), Load(ticket, join_key, self.limits.history_limit)]

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
        name_key = None if intro.name is None or self._name_key is None else self._name_key(intro.name)
        add = AddUser(ticket, room.join_key, created, new_hash, resume_hash, intro.name, intro.subject, name_key)
        if created is None:
            return [add]
        self._held.watch(ticket, room.join_key, load=False)
        return [Subscribe(room.join_key), add]

    def _talk(self, connection: ConnectionId, session: Session, request: TalkRequest) -> list[Action]:
        room = session.room
        if room is None:
            raise ProtocolError(problems.NOT_IN_CHAT, request.talk_id)
        user_id = session.user_id
        session.in_flight += 1
        room.in_flight += 1
        ticket = self._tickets.issue(Talking(connection, session, room, request.talk_id))
        return [Append(
            ticket, room.join_key, user_id, self._clock(), request.payload, room.names.get(user_id), request.talk_id,
            session.verified,
        )]

    # Results from the log

    def _appended(self, pending: Talking, result: Appended | LogFailed) -> list[Action]:
        connection, session, room = pending.connection, pending.session, pending.room
        room.in_flight -= 1
        actions: list[Action] = []
        if isinstance(result, Appended):
            delivered = room.last_offset
            talk = result.talk
            actions = deliver(room, talk)
            if room.changes_held:
                actions.extend(self._held.due(room))
            if result.duplicate and talk.offset <= delivered and self._sessions.get(connection) is session and (
                talk.payload is not None or session.dialect.shows_changes
            ):
                # Stored before (a resend): this sender is shown it again, nobody else is.
                actions.append(Send(connection, talk.message(session.dialect)))
        if self._sessions.get(connection) is session:
            session.in_flight -= 1
            if isinstance(result, LogFailed):
                actions.append(Send(connection, session.dialect.error_event(problems.TALK_NOT_SAVED, pending.talk_id)))
            if session.backlog is not None:
                actions.extend(self._resume(connection, session))
        if room.idle:
            actions.extend(self._held.forget_if_idle(room))
        return actions

    def _user_added(self, pending: Joining, result: UserAdded | KeyTaken | Refused | LogFailed) -> list[Action]:
        connection, session, room = pending.connection, pending.session, pending.room
        room.in_flight -= 1
        actions: list[Action] = []
        if self._sessions.get(connection) is session:
            session.in_flight -= 1
            if isinstance(result, KeyTaken):
                forgotten = self._held.forget_if_idle(room)
                if pending.attempt < MAX_JOIN_KEY_ATTEMPTS:
                    return forgotten + self._add_user(
                        connection, session, self._held.create(self._new_join_key), pending.intro, pending.created,
                        pending.attempt + 1,
                    )
                actions = forgotten
                session.join_failed()
                actions.append(Send(connection, session.dialect.error_event(problems.NO_FREE_KEY)))
            elif room.ended and not isinstance(result, UserAdded):  # (ended meanwhile)
                session.join_failed()
                actions = [Send(connection, session.dialect.error_event(problems.NOT_FOUND))]
            elif isinstance(result, UserAdded) and (room.ended or self._rooms.get(room.join_key) is not room):
                # Meanwhile the room ended, or was lost (`room_lost`): like its members, the joiner is closed.
                code, reason = (
                    (closecodes.ENDED, ENDED_REASON) if room.ended else (closecodes.SERVICE_RESTART, ROOM_LOST_REASON)
                )
                closed = self._close(connection, code, reason)
                actions = [] if closed is None else [closed]
            elif isinstance(result, UserAdded) and result.user_id in room.control.banned:
                session.join_failed()  # (banned while the log answered: the ban reached this process first)
                actions = [Send(connection, session.dialect.error_event(problems.BANNED))]
            elif isinstance(result, UserAdded):
                actions = enter(connection, session, room, result, pending.intro, self.limits.max_payload_chars)
            else:
                session.join_failed()
                problem = result.reason if isinstance(result, Refused) else problems.JOIN_NOT_SAVED
                actions = [Send(connection, session.dialect.error_event(problem))]
            actions.extend(self._resume(connection, session))
        elif isinstance(result, UserAdded) and self._rooms.get(room.join_key) is room:
            # The joiner left before the answer, but the log took the name it asked for.
            user_id = result.user_id
            was = before(room, user_id)
            room.rename(user_id, result.name, None)
            if result.verified:
                room.verified.add(user_id)
            actions.extend(announce(room, was))
        actions.extend(self._held.forget_if_idle(room))
        return actions

    def _loaded(self, pending: Loading, result: Loaded | LogFailed) -> list[Action]:
        join_key = pending.join_key
        loading = self._loading.pop(join_key)
        waiters = [w for w in loading.waiters if self._sessions.get(w.connection) is w.session]
        for waiter in waiters:
            waiter.session.in_flight -= 1
        actions: list[Action] = []
        room = None
        if isinstance(result, Loaded) and result.room is not None:
            room = self._rooms[join_key] = Room.restore(result.room, self.limits.history_limit)
            for logged in loading.arrived or ():
                deliver(room, logged)  # nobody to show them to yet: they join the history
            if result.room.presence is not None:
                apply_snapshot(room, result.room.presence)
            for heard in loading.presence:
                apply_heard(room, heard)
            if loading.expired:
                room.expire(loading.expired)
            for entry in loading.changes:
                actions.extend(self._held.changed(entry))  # (nobody to tell yet; an end lets the room go)
        if room is not None and not room.ended:
            for waiter in waiters:
                actions.extend(self._add_user(waiter.connection, waiter.session, room, waiter.intro))
            actions.extend(self._held.forget_if_idle(room))
            return actions
        # (no such room, or one ended while it was read; else the log failed)
        problem = problems.NOT_FOUND if isinstance(result, Loaded) else problems.OPEN_NOT_READ
        for waiter in waiters:
            waiter.session.join_failed()
            actions.append(Send(waiter.connection, waiter.session.dialect.error_event(problem)))
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
