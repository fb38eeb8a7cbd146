"""What the room log answers, and what it tells: fed back to the core with `ChatCore.log_result`.

A request (`AddUser`, `Append`, `Load`, `Rename`, `History`, `Moderate` in `chatcore.actions`) is answered by
exactly one result with the same ``ticket`` (`LogAnswer`), in the order the requests were
made (a shared log may answer an `Append` late: it is never reported failed
if it may have been stored); a `Fill` by `Filled`. A log shared with other
processes also tells, unasked (`LogNews`): talks they appended (`TalkArrived`), changes they made
(`ChangeArrived`; retention's too, on every backend, with `Expired`),
who is in a room there (`PresenceHeard`, `PresenceSnapshot`), who types there (`TypingHeard`), that a
subscription is in place (`Subscribed`), or that the log lost its data
(`LogLost`). The core accepts every result whatever the backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from .actions import Ticket
from .control import NEVER_CHANGED, Change, RoomControl
from .problems import Problem
from .wire.dialect import Dialect
from .wire.dialects import DIALECTS


class LoggedTalk:
    """One talk as the room's log holds it: ``offset`` is its position in the room, 1, 2, 3 … with no gaps.

    One object per talk wherever it is held (the memory log, a room's history,
    the results that carry it), written at most once per dialect (`message`).
    It compares by its fields; treat it as read-only.
    """

    __slots__ = (
        "_encoded", "edited", "join_key", "name", "offset", "payload", "talk_id", "time", "user_id", "verified"
    )

    def __init__(
        self, join_key: str, offset: int, user_id: int, time: float, payload: str | None, name: str | None = None,
        talk_id: str | None = None, edited: float | None = None, verified: bool = False,
    ) -> None:
        self.join_key = join_key
        self.offset = offset
        self.user_id = user_id
        self.time = time
        self.payload = payload
        """The text; None once deleted (the name is None then too: both are erased)."""
        self.name = name
        """The sender's name when it was sent."""
        self.talk_id = talk_id
        """The sender's own id for the talk, if it gave one."""
        self.edited = edited
        """When its text was last changed (None: never)."""
        self.verified = verified
        """Its sender was a signed-in user (`UserAdded.verified`); erased with the text."""
        self._encoded: list[str | None] | None = None

    def message(self, dialect: Dialect) -> str:
        """The ``talk`` event as JSON text in one dialect."""
        encoded = self._encoded
        if encoded is None:
            encoded = self._encoded = [None] * len(DIALECTS)
        text = encoded[dialect.slot]
        if text is None:
            text = encoded[dialect.slot] = dialect.talk_event(self)
        return text

    @property
    def deleted(self) -> bool:
        return self.payload is None

    def edit(self, payload: str, time: float) -> LoggedTalk:
        """The talk with its text changed at ``time``: a new object (this one's encodings stay as they were)."""
        return LoggedTalk(
            self.join_key, self.offset, self.user_id, self.time, payload, self.name, self.talk_id, time, self.verified
        )

    def erased(self) -> LoggedTalk:
        """The talk deleted: its text and name gone, its offset, sender, time and id kept."""
        return LoggedTalk(self.join_key, self.offset, self.user_id, self.time, None, None, self.talk_id)

    def _fields(self) -> tuple[str, int, int, float, str | None, str | None, str | None, float | None, bool]:
        return (
            self.join_key, self.offset, self.user_id, self.time, self.payload, self.name, self.talk_id, self.edited,
            self.verified,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LoggedTalk):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"LoggedTalk(join_key={self.join_key!r}, offset={self.offset!r}, user_id={self.user_id!r}, "
            f"time={self.time!r}, payload={self.payload!r}, name={self.name!r}, talk_id={self.talk_id!r}"
            + ("" if self.edited is None else f", edited={self.edited!r}")
            + (", verified=True)" if self.verified else ")")
        )


@dataclass(frozen=True, slots=True)
class LoggedChange:
    """A change of a room (`chatcore.control`) as the log accepted it: number ``seq`` of the room's changes.

    It follows the room's talk at offset ``after`` in the log (the newest when it was made) and comes
    before the next one; ``by`` is who made it (0: the log itself, retention). For an edit or a delete,
    ``talk`` is the talk as it is after it.
    """

    join_key: str
    seq: int
    after: int
    by: int
    time: float
    change: Change
    talk: LoggedTalk | None = None


@dataclass(frozen=True, slots=True)
class PresenceSnapshot:
    """Who is in a room on the other processes sharing the log, as of presence news number ``seq``.

    ``entries``: (process, user id, name) for each user with a connection to the room on that process.
    """

    join_key: str
    seq: int
    entries: tuple[tuple[str, int, str | None], ...]
    verified: frozenset[int] = frozenset()
    """The users of ``entries`` who are signed in (`UserAdded.verified`)."""


@dataclass(frozen=True, slots=True)
class PresenceHeard:
    """News number ``seq`` of the room's presence from another process (``origin``).

    ``here`` True: the user has a connection to the room on ``origin`` now; False: no longer;
    None: the user was renamed (to ``name``).
    """

    join_key: str
    seq: int
    origin: str
    user_id: int
    here: bool | None
    name: str | None
    verified: bool = False
    """The user is signed in (`UserAdded.verified`)."""


@dataclass(frozen=True, slots=True)
class TypingHeard:
    """A user is typing in the room on another process (``origin``): its `chatcore.actions.Typing`, unnumbered."""

    join_key: str
    origin: str
    user_id: int


@dataclass(frozen=True, slots=True)
class SavedRoom:
    """A room as the log holds it: the offset of its newest talk (0: none yet) and its latest talks, oldest first.

    A shared log adds who is in the room on the other processes (``presence``).
    """

    join_key: str
    last_offset: int
    talks: tuple[LoggedTalk, ...]
    presence: PresenceSnapshot | None = None
    control: RoomControl = NEVER_CHANGED
    """Its title, lock, moderators and bans, as of its latest change (``control.seq``)."""


@dataclass(frozen=True, slots=True)
class UserAdded:
    """`AddUser` done: ``user_id`` is new in the room and will never be handed out again."""

    ticket: Ticket
    user_id: int
    resumed: bool = False
    """The join presented the token of this user (``AddUser.resume_hash``): not a new user."""
    name: str | None = None
    """The user's name: the one asked for, else the one the log kept."""
    verified: bool = False
    """The user is signed in: the log has a subject for it (`chatcore.actions.AddUser.subject`), now or before."""


@dataclass(frozen=True, slots=True)
class KeyTaken:
    """`AddUser` with ``created`` found a room with that key already (nothing done): the core draws another key."""

    ticket: Ticket


@dataclass(frozen=True, slots=True)
class Appended:
    """`Append` done: the talk is in the room's log at ``talk.offset``.

    ``duplicate``: the log had this user's talk with this id already; ``talk`` is that one, not stored again.
    """

    ticket: Ticket
    talk: LoggedTalk
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Loaded:
    """`Load` done: the room, or None when the log has no room with that key."""

    ticket: Ticket
    room: SavedRoom | None


@dataclass(frozen=True, slots=True)
class NameSaved:
    """`Rename` done; a shared log says which presence news (``seq``) announced it to the other processes."""

    ticket: Ticket
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class HistoryRead:
    """`History` done: the talks, oldest first; ``older``: the log has talks before the first of them."""

    ticket: Ticket
    talks: tuple[LoggedTalk, ...]
    older: bool


@dataclass(frozen=True, slots=True)
class Changed:
    """`Moderate` done: the change is in the room's log, number ``entry.seq``."""

    ticket: Ticket
    entry: LoggedChange


@dataclass(frozen=True, slots=True)
class Refused:
    """The log did not do an `AddUser`, a `Rename` or a `Moderate`: the room's rules do not allow it (``reason``: what
    the client is told)."""

    ticket: Ticket
    reason: Problem


INCONSISTENT = "storage inconsistent"
"""`LogFailed.reason` when what the log holds contradicts the request (a bug, or a store changed behind it)."""


@dataclass(frozen=True, slots=True)
class LogFailed:
    """The log could not do it, and did none of it; ``reason``: short, for the server's log (the client is told that
    the server could not do it now: `chatcore.problems`)."""

    ticket: Ticket
    reason: str


@dataclass(frozen=True, slots=True)
class Filled:
    """`Fill` done: the room's talks with offsets above ``after`` the log has, oldest first."""

    join_key: str
    after: int
    talks: tuple[LoggedTalk, ...]
    changes: tuple[LoggedChange, ...] = ()
    """A shared log's recent changes of the room numbered above ``Fill.changes_after``, oldest first."""


@dataclass(frozen=True, slots=True)
class TalkArrived:
    """A talk another process appended to a room this process subscribed to, heard on the room's channel."""

    talk: LoggedTalk


@dataclass(frozen=True, slots=True)
class ChangeArrived:
    """A change of a room this process holds, made elsewhere: by another process, or by the log (retention)."""

    entry: LoggedChange


@dataclass(frozen=True, slots=True)
class Expired:
    """Retention erased the room's talks before offset ``first`` from the log."""

    join_key: str
    first: int


@dataclass(frozen=True, slots=True)
class Subscribed:
    """A subscription to the room is in place (again, after the log's connection came back: anything may be missed)."""

    join_key: str


@dataclass(frozen=True, slots=True)
class LogLost:
    """The shared log came back without its data: every room held here is gone."""


LogAnswer: TypeAlias = (
    UserAdded | KeyTaken | Appended | Loaded | NameSaved | HistoryRead | Changed | Refused | LogFailed
)
"""The results that answer a `chatcore.actions.LogRequest`, by its ticket."""
LogNews: TypeAlias = (
    TalkArrived | ChangeArrived | Expired | Subscribed | PresenceHeard | PresenceSnapshot | TypingHeard | LogLost
)
LogResult: TypeAlias = LogAnswer | Filled | LogNews
