"""One chat room as the core holds it while in use: members, recent talks, and the offset delivered up to."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from .actions import ConnectionId
from .results import LoggedTalk, SavedRoom
from .wire.seed import talk_event


class Talk:
    """One talk from the log, encoded at most once for each kind of client.

    A core with a memory log keeps these very objects in the log and in the
    room's history: a talk held in memory is one object, wherever it is held.
    """

    __slots__ = ("_escaped", "_text", "join_key", "offset", "payload", "time", "user_id")

    def __init__(self, join_key: str, offset: int, user_id: int, time: float, payload: str) -> None:
        self.join_key = join_key
        self.offset = offset
        self.user_id = user_id
        self.time = time
        self.payload = payload
        self._text: str | None = None
        self._escaped: str | None = None

    def logged(self) -> LoggedTalk:
        """The talk as a log result carries it."""
        return LoggedTalk(self.join_key, self.offset, self.user_id, self.time, self.payload)

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
    """Members, latest talks, and where the room's log has been delivered up to.

    Talks are delivered in offset order, each once: `accept` holds back a
    talk that arrives before one with a lower offset (`next_due` hands it out
    when its turn comes), and ignores one already delivered. ``pending`` counts log requests in flight for the room: the
    core forgets an idle room only once it is zero.
    """

    __slots__ = (
        "_early", "_history", "_history_limit", "_markup_members", "_recipients", "_text_members", "join_key",
        "last_offset", "pending",
    )

    def __init__(self, join_key: str, history_limit: int, *, last_offset: int = 0) -> None:
        self.join_key = join_key
        self.last_offset = last_offset
        """The offset of the newest talk delivered (0: none yet)."""
        self.pending = 0
        self._history_limit = history_limit
        self._history: deque[Talk] | None = None  # made on the first talk: many rooms never have one
        self._early: dict[int, Talk] | None = None
        self._text_members: dict[ConnectionId, int] = {}
        self._markup_members: dict[ConnectionId, int] = {}
        self._recipients: tuple[tuple[ConnectionId, ...], tuple[ConnectionId, ...]] | None = None

    @classmethod
    def restore(cls, saved: SavedRoom, history_limit: int) -> Room:
        """The room as its log returned it."""
        room = cls(saved.join_key, history_limit, last_offset=saved.last_offset)
        for logged in saved.talks:
            room._record(Talk(*logged))
        return room

    @property
    def history(self) -> Sequence[Talk]:
        """The most recent talks delivered, oldest first: what a joiner is shown."""
        return self._history if self._history is not None else ()

    @property
    def idle(self) -> bool:
        """Nobody in it and nothing in flight for it."""
        return not self._text_members and not self._markup_members and not self.pending

    def accept(self, talk: Talk) -> Talk | None:
        """Take a talk from the log: the talk to deliver now if it is the next one, else None.

        A talk with a lower offset than one already delivered is dropped (seen
        already); one with a higher offset than the next is held back until the
        talks before it arrive (`next_due` hands it out then).
        """
        offset = talk.offset
        if offset == self.last_offset + 1:
            return self._record(talk)
        if offset > self.last_offset:
            # A talk before this one has not arrived yet. One log writer (memory, SQLite) never does this.
            if self._early is None:
                self._early = {}
            self._early[offset] = talk
        return None

    @property
    def holding(self) -> bool:
        """Whether `accept` holds back talks until the ones before them arrive."""
        return self._early is not None

    def next_due(self) -> Talk | None:
        """After `accept`: a held-back talk that is now the next one, delivered; None when there is none."""
        early = self._early
        if early is None:
            return None
        following = early.pop(self.last_offset + 1, None)
        if not early:
            self._early = None
        return None if following is None else self._record(following)

    def _record(self, talk: Talk) -> Talk:
        history = self._history
        if history is None:
            history = self._history = deque(maxlen=self._history_limit)
        history.append(talk)
        self.last_offset = talk.offset
        return talk

    def add_member(self, connection: ConnectionId, user_id: int, *, renders_text: bool) -> None:
        """Admit a connection under a user id the log handed out."""
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
