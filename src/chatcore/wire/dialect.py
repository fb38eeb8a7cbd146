"""A dialect: one version of the wire protocol, as one connection speaks it.

A connection speaks the seed's dialect until an ``init`` chooses one
(`chatcore.wire.dialects.chosen_by`); from then on the core reads what the
connection sends with its dialect's `Dialect.parse` and writes everything
the connection receives with its dialect's ``*_event`` methods. The core never
asks which version a connection speaks, only what its dialect does.

Each version comes as two dialects, for clients that render payloads as text
and for clients that render them as markup (their payloads and names are
HTML-escaped). A dialect holds no state: the registry makes one of each, and
numbers them (``slot``), so that a talk is encoded once per dialect in use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..control.state import Change, RoomControl
from ..problems import Problem


class TalkFields(Protocol):
    """What a dialect reads of a talk to write its event (a `chatcore.results.LoggedTalk`)."""

    @property
    def offset(self) -> int: ...
    @property
    def user_id(self) -> int: ...
    @property
    def time(self) -> float: ...
    @property
    def payload(self) -> str | None: ...
    @property
    def name(self) -> str | None: ...
    @property
    def talk_id(self) -> str | None: ...
    @property
    def edited(self) -> float | None: ...
    @property
    def verified(self) -> bool: ...


class ChangeFields(Protocol):
    """What a dialect reads of a change to write its event (a `chatcore.results.LoggedChange`)."""

    @property
    def change(self) -> Change: ...
    @property
    def by(self) -> int: ...
    @property
    def talk(self) -> TalkFields | None: ...


@dataclass(frozen=True, slots=True)
class InitRequest:
    """``init``: join the room ``join_key`` (None: start one) speaking ``dialect`` from now on.

    ``name``, ``token`` (to come back as the user it was handed to) and
    ``after`` (the offset of the last talk the client has) are for dialects
    that resume (`Dialect.resumes`); None otherwise.
    """

    join_key: str | None
    dialect: Dialect
    name: str | None = None
    token: str | None = None
    after: int | None = None
    auth: str | None = None
    """A sign-in token (`chatcore.identity`), unread: the core has it checked."""


@dataclass(frozen=True, slots=True)
class TalkRequest:
    """``talk``: say ``payload`` in the room; ``talk_id`` is the sender's own id for it, if its dialect has ids."""

    payload: str
    talk_id: str | None = None


@dataclass(frozen=True, slots=True)
class NameRequest:
    """``name``: rename the sender in its room."""

    name: str


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    """``history``: ``limit`` older talks with offsets below ``before`` (None: below the newest + 1)."""

    before: int | None
    limit: int


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    """A change of the room (``edit``, ``delete``, ``room``, ``lock``, ``remove``, ``role``, ``end``)."""

    change: Change


@dataclass(frozen=True, slots=True)
class TypingRequest:
    """``typing``: the sender is typing in its room (told to the others, never stored)."""


Request = InitRequest | TalkRequest | NameRequest | HistoryRequest | ChangeRequest | TypingRequest


@dataclass(frozen=True, slots=True)
class Welcome:
    """Everything the reply to an ``init`` may tell; each dialect writes what its clients understand."""

    join_key: str
    user_id: int
    name: str | None
    token: str | None
    """The token to come back with (dialects that resume)."""
    resumed: bool
    """The token presented was this user's: not a new user."""
    members: Sequence[tuple[int, str | None]]
    last_offset: int
    history: Sequence[Any]
    """The room's latest talks, oldest first (`chatcore.results.LoggedTalk`)."""
    after: int | None
    """The offset the client said it has, if any."""
    control: RoomControl
    """The room's title, lock and roles."""
    verified: Collection[int] = ()
    """The members who are signed in (the joiner too, if it is)."""
    max_payload_chars: int | None = None
    """The longest talk the server takes (``--max-payload-chars``), for clients to say so before sending."""


class Dialect(ABC):
    """How one connection's client writes requests and reads events; see the module docstring."""

    slot = -1
    """Its number in the registry: the index of its encodings (set by `chatcore.wire.dialects`)."""
    resumes = False
    """Its clients have names, resume tokens and talk ids (an ``init`` then draws a token)."""
    announces_presence = False
    """Its clients are told who joins, leaves and renames."""
    has_talk_ids = False
    """Its clients give their talks ids, and are told which talk an error refuses (`refused_talk_id`)."""
    shows_changes = False
    """Its clients are shown deleted talks as such, and told of changes (`change_event`); others never see a
    deleted talk."""
    tells_typing = False
    """Its clients send ``typing`` (`TypingRequest`) and are told who is typing (`typing_event`)."""

    def __init__(self, *, escape_html: bool) -> None:
        self.escape_html = escape_html
        """Its clients render payloads (and names) as markup: they get them HTML-escaped."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} escape_html={self.escape_html}>"

    @abstractmethod
    def parse(self, event: object, max_payload_chars: int) -> Request:
        """Validate a decoded client event and return the request it makes, or raise `ProtocolError`."""

    @abstractmethod
    def talk_event(self, talk: TalkFields) -> str:
        """A talk, as broadcast to a room and replayed to joiners."""

    @abstractmethod
    def init_event(self, welcome: Welcome) -> str:
        """The reply to a successful ``init``; the talks of `replayed` follow it."""

    def replayed(self, welcome: Welcome) -> Sequence[Any]:
        """The talks of ``welcome.history`` a joiner is shown after the reply, oldest first: all but the deleted."""
        return [talk for talk in welcome.history if talk.payload is not None]

    @abstractmethod
    def error_event(self, problem: Problem, talk_id: str | None = None, request: str | None = None) -> str:
        """An error, ``problem`` said in this dialect; ``talk_id``: the id of the talk it refuses, if the client
        gave one; ``request``: the type of the request it refuses, if it says (`ProtocolError.request`)."""

    def change_event(self, entry: ChangeFields, control: RoomControl) -> str | None:
        """A change of the room, as its members are told (None: not told), ``control`` the room's state once it is
        applied; only asked of dialects that show changes."""
        return None

    def refused_talk_id(self, event: object) -> str | None:
        """The ``id`` of a talk refused before it was read (for its rate), if this dialect tells it."""
        return None

    def refused_request(self, event: object) -> str | None:
        """The type of a request refused before it was read (for its rate), if this dialect tells it."""
        return None

    def presence_event(self, kind: str, user_id: int, name: str | None, verified: bool = False) -> str:
        """``joined``, ``left`` or ``renamed`` (``kind``), ``verified``: the user is signed in; only asked of dialects
        that announce presence."""
        raise NotImplementedError

    def history_event(self, before: int, talks: Sequence[str], older: bool) -> str:
        """The answer to ``history``, ``talks`` written already; only asked of dialects that parse it."""
        raise NotImplementedError

    def typing_event(self, user_id: int) -> str:
        """User ``user_id`` is typing; only asked of dialects that tell typing."""
        raise NotImplementedError
