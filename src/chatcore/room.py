"""One chat room: its members, the ids it has handed out, and its history."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from .actions import ConnectionId
from .protocol import talk_event
from .storage import SavedRoom


class Talk:
    """One accepted message, encoded at most once for each kind of client."""

    __slots__ = ("_escaped", "_text", "payload", "time", "user_id")

    def __init__(self, payload: str, user_id: int, time: float) -> None:
        self.payload = payload
        self.user_id = user_id
        self.time = time
        self._text: str | None = None
        self._escaped: str | None = None

    def message(self, *, escape_html: bool) -> str:
        """The ``talk`` event as JSON text, payload escaped for markup renderers or not."""
        if escape_html:
            if self._escaped is None:
                self._escaped = talk_event(self.payload, self.user_id, self.time, escape_html=True)
            return self._escaped
        if self._text is None:
            self._text = talk_event(self.payload, self.user_id, self.time, escape_html=False)
        return self._text


class Room:
    """A room outlives its members; user ids are never reused within it.

    ``pending`` counts store and load requests in flight for the room: a
    durable core drops an idle room from memory only once it reaches zero.
    """

    __slots__ = (
        "_history", "_history_limit", "_markup_members", "_recipients", "_text_members", "join_key", "last_user_id",
        "pending",
    )

    def __init__(self, join_key: str, history_limit: int, *, last_user_id: int = 0) -> None:
        self.join_key = join_key
        self._history_limit = history_limit
        self._history: deque[Talk] | None = None  # made on the first talk: many rooms never have one
        self._text_members: dict[ConnectionId, int] = {}
        self._markup_members: dict[ConnectionId, int] = {}
        self.last_user_id = last_user_id
        self.pending = 0
        self._recipients: tuple[tuple[ConnectionId, ...], tuple[ConnectionId, ...]] | None = None

    @classmethod
    def restore(cls, saved: SavedRoom, history_limit: int) -> Room:
        """The room as a store returned it."""
        room = cls(saved.join_key, history_limit, last_user_id=saved.last_user_id)
        for talk in saved.talks:
            room.record(Talk(talk.payload, talk.user_id, talk.time))
        return room

    @property
    def history(self) -> Sequence[Talk]:
        """The most recent talks, oldest first."""
        return self._history if self._history is not None else ()

    @property
    def idle(self) -> bool:
        """Nobody in it and nothing in flight for it."""
        return not self._text_members and not self._markup_members and not self.pending

    def record(self, talk: Talk) -> None:
        """Keep a talk in the history (the oldest goes once the limit is reached)."""
        if self._history is None:
            self._history = deque(maxlen=self._history_limit)
        self._history.append(talk)

    def next_user_id(self) -> int:
        """Hand out a new, never-used user id."""
        self.last_user_id += 1
        return self.last_user_id

    def add_member(self, connection: ConnectionId, user_id: int, *, renders_text: bool) -> None:
        """Admit a connection under a user id from `next_user_id`."""
        members = self._text_members if renders_text else self._markup_members
        members[connection] = user_id
        self._recipients = None

    def remove_member(self, connection: ConnectionId) -> None:
        if self._text_members.pop(connection, None) is None:
            del self._markup_members[connection]
        self._recipients = None

    def recipients(self) -> tuple[tuple[ConnectionId, ...], tuple[ConnectionId, ...]]:
        """Members that render text, and members that render markup (they get escaped payloads)."""
        if self._recipients is None:
            self._recipients = (tuple(self._text_members), tuple(self._markup_members))
        return self._recipients
