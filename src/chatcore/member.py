"""What a member asks of its room besides talking: a name, older talks, changes of the room; and the log's answers.

`ChatCore` takes these requests (a version-2 member's) through `MemberRequests`: each goes to the log
as one action, and its answer comes back, as every request's, through `ChatCore.log_result`.
"""

from __future__ import annotations

from collections.abc import Callable

from . import closecodes, problems
from .actions import Action, Close, ConnectionId, History, Moderate, Rename, Send
from .errors import ProtocolError
from .holdings import Holdings
from .identity import NameKey
from .pending import Changing, Naming, Reading, Tickets
from .presence import announce, before
from .results import Changed, HistoryRead, LogFailed, NameSaved, Refused
from .session import Session, SessionState
from .wire.dialect import ChangeRequest, HistoryRequest, NameRequest


class MemberRequests:
    """Renames, history reads and changes of the room, for `ChatCore` (which provides what is declared here)."""

    _clock: Callable[[], float]
    _name_key: NameKey | None
    _sessions: dict[ConnectionId, Session]
    _tickets: Tickets
    _held: Holdings

    def _resume(self, connection: ConnectionId, session: Session) -> list[Action]:
        raise NotImplementedError

    def _rename(self, connection: ConnectionId, session: Session, request: NameRequest) -> list[Action]:
        room = session.room
        if room is None:
            raise ProtocolError(problems.NOT_IN_CHAT, request="name")
        if session.verified:
            raise ProtocolError(problems.NAME_FROM_SIGN_IN, request="name")
        session.in_flight += 1
        session.renaming += 1
        room.in_flight += 1
        ticket = self._tickets.issue(Naming(connection, session, room, request.name))
        name_key = None if self._name_key is None else self._name_key(request.name)
        return [Rename(ticket, room.join_key, session.user_id, request.name, name_key)]

    def _history(self, connection: ConnectionId, session: Session, request: HistoryRequest) -> list[Action]:
        room = session.room
        if room is None:
            raise ProtocolError(problems.NOT_IN_CHAT, request="history")
        before_offset = room.last_offset + 1 if request.before is None else request.before
        session.in_flight += 1
        room.in_flight += 1
        ticket = self._tickets.issue(Reading(connection, session, before_offset))
        return [History(ticket, room.join_key, before_offset, request.limit)]

    def _moderate(self, connection: ConnectionId, session: Session, request: ChangeRequest) -> list[Action]:
        room, change = session.room, request.change
        if room is None:
            raise ProtocolError(problems.NOT_IN_CHAT, request=change.kind)
        session.in_flight += 1
        room.in_flight += 1
        ticket = self._tickets.issue(Changing(connection, session, room, change))
        return [Moderate(ticket, room.join_key, session.user_id, self._clock(), change)]

    def _close(self, connection: ConnectionId, code: int, reason: str) -> Close | None:
        """Close a connection for a change of its room (None: it is closing already)."""
        session = self._sessions.get(connection)
        if session is None:
            return None
        if code == closecodes.REMOVED:
            session.removed = True
        if session.state is SessionState.CLOSING:
            return None
        session.close_asked()
        return Close(connection, code, reason)

    def _name_saved(self, pending: Naming, result: NameSaved | Refused | LogFailed) -> list[Action]:
        connection, session, room = pending.connection, pending.session, pending.room
        room.in_flight -= 1
        actions: list[Action] = []
        if isinstance(result, NameSaved) and self._held.rooms.get(room.join_key) is room:
            user_id = session.user_id
            was = before(room, user_id)
            room.rename(user_id, pending.name, result.seq)
            actions = announce(room, was, renamed=True)
        if self._sessions.get(connection) is session:
            session.in_flight -= 1
            session.renaming -= 1
            if isinstance(result, Refused):
                actions.append(Send(connection, session.dialect.error_event(result.reason, request="name")))
            elif isinstance(result, LogFailed):
                actions.append(Send(connection, session.dialect.error_event(problems.NAME_NOT_SAVED, request="name")))
            actions.extend(self._resume(connection, session))
        actions.extend(self._held.forget_if_idle(room))
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
                talks = [logged.message(dialect) for logged in result.talks]
                actions.append(Send(connection, dialect.history_event(pending.before, talks, result.older)))
            else:
                actions.append(Send(connection, dialect.error_event(problems.HISTORY_NOT_READ, request="history")))
            actions.extend(self._resume(connection, session))
        actions.extend(self._held.forget_if_idle(room))
        return actions

    def _changed(self, pending: Changing, result: Changed | Refused | LogFailed) -> list[Action]:
        connection, session, room = pending.connection, pending.session, pending.room
        room.in_flight -= 1
        actions = self._held.changed(result.entry) if isinstance(result, Changed) else []
        if self._sessions.get(connection) is session:
            session.in_flight -= 1
            if not isinstance(result, Changed):
                problem = result.reason if isinstance(result, Refused) else problems.CHANGE_NOT_SAVED
                actions.append(Send(connection, session.dialect.error_event(problem, request=pending.change.kind)))
            actions.extend(self._resume(connection, session))
        actions.extend(self._held.forget_if_idle(room))
        return actions
