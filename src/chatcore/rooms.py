"""One chat room as the core holds it while in use: members, recent talks, and the offset delivered up to."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from .actions import ConnectionId
from .control import End, RoomControl
from .results import LoggedChange, LoggedTalk, SavedRoom
from .wire.dialect import Dialect
from .wire.dialects import DIALECTS


class Room:
    """Members, latest talks, where the room's log has been delivered up to, and who is in it.

    Talks are delivered in offset order, each once: `accept` holds back a
    talk that arrives before one with a lower offset (`next_due` hands it out
    when its turn comes), and ignores one already delivered. ``in_flight`` counts log requests in flight for the
    room: the core forgets an idle room only once it is zero.

    Presence: a user is in the room while it has a connection to it here
    (``local``; or, its last one closed, for its grace: ``leaving``) or, with a shared log, on another process
    (``remote``, as the other processes say, in the order of their news, ``presence_seq``).
    """

    __slots__ = (
        "_audiences",
        "_early",
        "_early_changes",
        "_history",
        "_history_limit",
        "_kept_from",
        "_members",
        "_recipients",
        "control",
        "ended",
        "in_flight",
        "join_key",
        "last_offset",
        "leaving",
        "local",
        "name_seq",
        "names",
        "presence_seq",
        "remote",
        "remote_users",
        "typed",
        "verified",
    )

    def __init__(self, join_key: str, history_limit: int, *, last_offset: int = 0) -> None:
        self.join_key = join_key
        self.last_offset = last_offset
        """The offset of the newest talk delivered (0: none yet)."""
        self.in_flight = 0
        self._history_limit = history_limit
        self._history: deque[LoggedTalk] | None = None  # made on the first talk: many rooms never have one
        self._kept_from = 0  # the log erased the talks before this offset (retention): none joins the history
        self._early: dict[int, LoggedTalk] | None = None
        self._members: tuple[dict[ConnectionId, int], ...] = tuple({} for _ in DIALECTS)
        self._audiences: tuple[tuple[Dialect, tuple[ConnectionId, ...]], ...] | None = None
        self.local: dict[int, int] = {}
        """Users with connections to the room on this process, and how many."""
        self.leaving: dict[int, float] = {}
        """Users whose last connection here closed, in their grace (`chatcore.graces`), and when it ends: still in
        the room."""
        self.names: dict[int, str | None] = {}
        """The names of the users in the room (`ChatCore` drops those of users who left: `forget_if_absent`)."""
        self.remote: set[tuple[str, int]] = set()
        """(process, user id) for each user with a connection to the room on another process."""
        self.remote_users: dict[int, int] = {}
        """Users in ``remote``, and on how many processes."""
        self.presence_seq = 0
        """The number of the latest presence news from other processes applied."""
        self.verified: set[int] = set()
        """The users in the room who are signed in (as the log said: `UserAdded`, presence news)."""
        self.name_seq: dict[int, int] = {}
        """For names set by numbered news (or this process's renames, numbered by the log): that number."""
        self.control = RoomControl()
        """Title, lock, roles and bans, as of the latest change applied (``control.seq``)."""
        self._early_changes: dict[int, LoggedChange] | None = None
        self.typed: dict[int, float] = {}
        """When each user in the room was last told typing (`chatcore.typers`): users in the room only."""
        self.ended = False
        """The room was ended (its members closed): whatever is still in flight for it finds it so."""

    def rename(self, user_id: int, name: str | None, seq: int | None) -> None:
        """Set a user's name, unless news numbered after ``seq`` (None: unnumbered, always applies) set it."""
        if seq is not None:
            if seq < self.name_seq.get(user_id, 0):
                return
            self.name_seq[user_id] = seq
        self.names[user_id] = name

    def forget_if_absent(self, user_id: int) -> None:
        """Drop the name of a user with no connection to the room, here or elsewhere."""
        if not self.present(user_id):
            self.names.pop(user_id, None)
            self.name_seq.pop(user_id, None)
            self.verified.discard(user_id)
            self.typed.pop(user_id, None)

    @classmethod
    def restore(cls, saved: SavedRoom, history_limit: int) -> Room:
        """The room as its log returned it."""
        room = cls(saved.join_key, history_limit, last_offset=saved.last_offset)
        for logged in saved.talks:
            room._record(logged)
        room.control = saved.control
        return room

    @property
    def changes_held(self) -> bool:
        """Whether changes wait for the ones numbered before them, or for the talk they follow (`next_change`)."""
        return self._early_changes is not None

    def hold_change(self, entry: LoggedChange) -> None:
        """Keep a change until it is due (`next_change`)."""
        if self._early_changes is None:
            self._early_changes = {}
        self._early_changes[entry.seq] = entry

    def next_change(self) -> LoggedChange | None:
        """A held change that is now due: the next in number, and the talk it follows delivered; or None.

        An end is due as soon as it is held: the log erased the room, and with it whatever changes and talks
        before the end this process has not had (a shared log cannot read them back any more).
        """
        early = self._early_changes
        if early is None:
            return None
        entry = early.get(self.control.seq + 1)
        end = next((held for held in early.values() if isinstance(held.change, End)), None)
        if end is not None:
            entry = end
        elif entry is None or entry.after > self.last_offset:
            return None
        del early[entry.seq]
        if not early:
            self._early_changes = None
        return entry

    def replace_talk(self, talk: LoggedTalk) -> None:
        """Hold a new version of a talk (edited, deleted) instead of the one held, if it is held."""
        history = self._history
        if history:
            index = talk.offset - history[0].offset
            if 0 <= index < len(history):
                history[index] = talk
        if self._early is not None and talk.offset in self._early:
            self._early[talk.offset] = talk

    def expire(self, first: int) -> None:
        """The log erased the talks before offset ``first``: so does the room (one delivered later, too)."""
        self._kept_from = max(self._kept_from, first)
        history = self._history
        while history and history[0].offset < first:
            history.popleft()

    @property
    def history(self) -> Sequence[LoggedTalk]:
        """The most recent talks delivered, oldest first: what a joiner is shown."""
        return self._history if self._history is not None else ()

    @property
    def idle(self) -> bool:
        """Nobody in it (in a grace neither) and nothing in flight for it."""
        return not self.local and not self.in_flight and not self.leaving

    def accept(self, talk: LoggedTalk) -> LoggedTalk | None:
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

    def next_due(self) -> LoggedTalk | None:
        """After `accept`: a held-back talk that is now the next one, delivered; None when there is none."""
        early = self._early
        if early is None:
            return None
        following = early.pop(self.last_offset + 1, None)
        if not early:
            self._early = None
        return None if following is None else self._record(following)

    def _record(self, talk: LoggedTalk) -> LoggedTalk:
        history = self._history
        if history is None:
            history = self._history = deque(maxlen=self._history_limit)
        if talk.offset >= self._kept_from:
            history.append(talk)
        self.last_offset = talk.offset
        return talk

    def add_member(self, connection: ConnectionId, user_id: int, dialect: Dialect) -> None:
        """Admit a connection speaking ``dialect`` under a user id the log handed out."""
        self._members[dialect.slot][connection] = user_id
        self.local[user_id] = self.local.get(user_id, 0) + 1
        if self.leaving:
            self.leaving.pop(user_id, None)  # (back within its grace)
        self._audiences = None

    def remove_member(self, connection: ConnectionId) -> int:
        """Let a connection go; its user id."""
        for members in self._members:
            user_id = members.pop(connection, None)
            if user_id is not None:
                break
        else:
            raise KeyError(connection)
        count = self.local[user_id] - 1
        if count:
            self.local[user_id] = count
        else:
            del self.local[user_id]
        self._audiences = None
        return user_id

    def connections(self) -> list[ConnectionId]:
        """Every member connection."""
        return [connection for members in self._members for connection in members]

    def members_but(self, dialect: Dialect, user_id: int) -> tuple[ConnectionId, ...]:
        """The member connections speaking ``dialect``, but for the user's own."""
        return tuple(connection for connection, user in self._members[dialect.slot].items() if user != user_id)

    def connections_of(self, user_id: int) -> list[ConnectionId]:
        """The user's member connections."""
        return [connection for members in self._members for connection, user in members.items() if user == user_id]

    def audiences(self) -> tuple[tuple[Dialect, tuple[ConnectionId, ...]], ...]:
        """The dialects that have members, each with its members: who gets which encoding of an event."""
        if self._audiences is None:
            self._audiences = tuple(
                (dialect, tuple(members)) for dialect, members in zip(DIALECTS, self._members, strict=True) if members
            )
        return self._audiences

    def present(self, user_id: int) -> bool:
        """Whether the user has a connection to the room, here or on another process, or is in its grace here."""
        return user_id in self.local or user_id in self.remote_users or user_id in self.leaving

    def members(self) -> list[tuple[int, str | None]]:
        """Everyone in the room, by user id, with their names."""
        users = sorted(self.local.keys() | self.remote_users.keys() | self.leaving.keys())
        return [(user_id, self.names.get(user_id)) for user_id in users]

    def set_remote(self, entry: tuple[str, int], here: bool) -> None:
        """A user has (``here``) or no longer has a connection to the room on another process."""
        user_id = entry[1]
        if here:
            if entry not in self.remote:
                self.remote.add(entry)
                self.remote_users[user_id] = self.remote_users.get(user_id, 0) + 1
        elif entry in self.remote:
            self.remote.discard(entry)
            count = self.remote_users[user_id] - 1
            if count:
                self.remote_users[user_id] = count
            else:
                del self.remote_users[user_id]
