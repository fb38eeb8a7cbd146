"""The room log kept in memory: a backend without I/O, for a server without a store and for the core's tests.

`MemoryLog.perform` takes any log action of `chatcore.actions` and returns
its results at once: the same results a durable log gives after its commit,
so that a talk takes one way through the core whether rooms are kept in
memory, in SQLite or in Redis. There is no other process to hear from: a
`Subscribe`, a `Forget` or a `Typing` has nothing to do.

Being the only store of names and resume tokens, it bounds them: a user is
remembered from its `AddUser` until it has left (a `Presence` that says so)
and ``remembered_users`` others have left after it; but for the owner and the
banned users, remembered as long as the room.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import NamedTuple, assert_never

from .actions import (
    AddUser,
    Append,
    Expire,
    Fill,
    Forget,
    History,
    Load,
    LogAction,
    LogRequest,
    Moderate,
    Presence,
    Rename,
    Subscribe,
    Typing,
)
from .control import OWNER, Delete, Edit, End, RoomControl, TalkFacts, judge, refuse_join
from .limits import CoreLimits
from .problems import ENDED, TAKEN
from .results import (
    INCONSISTENT,
    Appended,
    ChangeArrived,
    Changed,
    Expired,
    Filled,
    HistoryRead,
    KeyTaken,
    Loaded,
    LogAnswer,
    LogFailed,
    LoggedChange,
    LoggedTalk,
    LogResult,
    NameSaved,
    Refused,
    SavedRoom,
    UserAdded,
)


class _User(NamedTuple):
    token_hash: str | None
    name: str | None


@dataclass(slots=True)
class _Room:
    talks: deque[LoggedTalk]
    created: float
    last_user_id: int = field(default=0)
    last_offset: int = field(default=0)
    users: dict[int, _User] = field(default_factory=dict)
    """Users with a token or a name: those connected, and those remembered after they left."""
    tokens: dict[str, int] = field(default_factory=dict)
    """Token hash → user id, for the users in ``users``."""
    absent: OrderedDict[int, None] = field(default_factory=OrderedDict)
    """The users in ``users`` that have left, the one that left longest ago first."""
    talk_ids: dict[tuple[int, str], LoggedTalk] = field(default_factory=dict)
    """(user id, talk id) → the talk, for the talks still kept, oldest first."""
    control: RoomControl = field(default_factory=RoomControl)
    subjects: dict[str, int] = field(default_factory=dict)
    """Signed-in users: their sign-in identity (``sub``) → user id; remembered as long as the room."""
    signed: set[int] = field(default_factory=set)
    """The user ids in ``subjects``."""
    held_names: dict[str, int] = field(default_factory=dict)
    """Keys (`chatcore.identity.NameKey`) of signed-in users' names → how many signed-in users hold each: no
    unsigned user takes such a name."""
    name_keys: dict[int, str] = field(default_factory=dict)
    """A signed-in user's id → the key it holds (one of ``held_names``)."""

    def user_of(self, subject: str | None, resume_hash: str | None) -> int | None:
        """The user a join names: with a subject, the subject's (None: a new user); else its resume token's.

        A resume token never makes or moves an identity: one left on a shared computer by an anonymous user must
        not hand that user's id to the next one to sign in there, nor the signed-in identity back to its holder.
        """
        if subject is not None:
            return self.subjects.get(subject)
        return None if resume_hash is None else self.tokens.get(resume_hash)

    def sign(self, subject: str, user_id: int) -> None:
        """``user_id`` is the user with sign-in identity ``subject`` from now on."""
        self.subjects[subject] = user_id
        self.signed.add(user_id)

    def holds(self, user_id: int | None, name_key: str | None) -> bool:
        """Whether a signed-in member other than ``user_id`` holds the name with key ``name_key`` (never, for a
        signed-in ``user_id``; an unsigned user holds none)."""
        return name_key in self.held_names and (user_id is None or user_id not in self.signed)

    def hold(self, user_id: int, name_key: str | None) -> None:
        """The signed-in user ``user_id`` holds its name's key ``name_key`` (None: keep the one it holds), and no
        longer the one it held; a key stays held while any signed-in user holds it."""
        old = self.name_keys.get(user_id)
        if name_key is None or name_key == old:
            return
        if old is not None:
            if self.held_names[old] > 1:
                self.held_names[old] -= 1
            else:
                del self.held_names[old]
        self.name_keys[user_id] = name_key
        self.held_names[name_key] = self.held_names.get(name_key, 0) + 1

    def kept(self, offset: int) -> LoggedTalk | None:
        """The talk at ``offset``, if still kept."""
        talks = self.talks
        if not talks or not talks[0].offset <= offset <= talks[-1].offset:
            return None
        return talks[offset - talks[0].offset]

    def replace(self, talk: LoggedTalk) -> None:
        """Keep ``talk`` (a new version of one kept) instead of the version kept."""
        talks = self.talks
        talks[talk.offset - talks[0].offset] = talk
        if talk.talk_id is not None and (talk.user_id, talk.talk_id) in self.talk_ids:
            self.talk_ids[talk.user_id, talk.talk_id] = talk


class MemoryLog:
    """Every room of one process, its latest ``history_limit`` talks and the users it remembers; lost at exit."""

    def __init__(self, history_limit: int, remembered_users: int = CoreLimits().remembered_users) -> None:
        self._history_limit = history_limit
        self._remembered_users = remembered_users
        self._rooms: dict[str, _Room] = {}

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    def perform(self, action: LogAction) -> list[LogResult]:
        """Do a log action: its result (none for a notice)."""
        if isinstance(action, LogRequest):
            return [self.answer(action)]
        if isinstance(action, Presence):
            if not action.here:
                self.left(action.join_key, action.user_id)
            return []
        if isinstance(action, Subscribe | Forget | Typing):
            return []
        if isinstance(action, Fill):
            room = self._rooms.get(action.join_key)
            talks = () if room is None else tuple(talk for talk in room.talks if talk.offset > action.after)
            return [Filled(action.join_key, action.after, talks)]
        if isinstance(action, Expire):
            return self.expire(action.before)
        assert_never(action)

    def expire(self, before: float) -> list[LogResult]:
        """Retention: erase the talks sent before ``before``, and end the rooms with no talk since (news of both)."""
        news: list[LogResult] = []
        for join_key, room in list(self._rooms.items()):
            talks = room.talks
            newest = talks[-1].time if talks else room.created
            if newest < before:
                del self._rooms[join_key]
                seq = room.control.seq + 1
                news.append(ChangeArrived(LoggedChange(join_key, seq, room.last_offset, 0, before, End())))
                continue
            if talks and talks[0].time < before:
                while talks and talks[0].time < before:
                    dropped = talks.popleft()
                    if dropped.talk_id is not None:
                        room.talk_ids.pop((dropped.user_id, dropped.talk_id), None)
                news.append(Expired(join_key, talks[0].offset if talks else room.last_offset + 1))
        return news

    def left(self, join_key: str, user_id: int) -> None:
        """The user has no connection to the room any more: remembered among the last ``remembered_users`` that
        left, then forgotten (its token no longer resumes)."""
        room = self._rooms.get(join_key)
        if room is None or user_id not in room.users:
            return
        absent = room.absent
        absent[user_id] = None
        absent.move_to_end(user_id)
        while len(absent) > self._remembered_users:
            gone, _ = absent.popitem(last=False)
            if gone == OWNER or gone in room.control.banned or gone in room.signed:
                continue  # (the owner's token must keep the room, a ban must keep its token out)
            token_hash = room.users.pop(gone).token_hash
            if token_hash is not None:
                del room.tokens[token_hash]

    def append(
        self, join_key: str, user_id: int, time: float, payload: str, name: str | None = None,
        talk_id: str | None = None, verified: bool = False,
    ) -> tuple[LoggedTalk, bool]:
        """Append a talk to an existing room (else `KeyError`): the talk, with its offset, and whether a duplicate.

        A talk whose user and id the room has already is not appended: the
        one it has is returned, with True.
        """
        room = self._rooms[join_key]
        if talk_id is not None:
            kept = room.talk_ids.get((user_id, talk_id))
            if kept is not None:
                return kept, True
        room.last_offset = offset = room.last_offset + 1
        talk = LoggedTalk(join_key, offset, user_id, time, payload, name, talk_id, verified=verified)
        talks = room.talks
        if room.talk_ids and len(talks) == talks.maxlen:
            dropped = talks[0]
            if dropped.talk_id is not None:
                room.talk_ids.pop((dropped.user_id, dropped.talk_id), None)
        talks.append(talk)
        if talk_id is not None and talks.maxlen:
            room.talk_ids[user_id, talk_id] = talk
        return talk, False

    def answer(self, request: LogRequest) -> LogAnswer:
        """Do ``request`` and return its result."""
        if isinstance(request, Append):
            if request.join_key not in self._rooms:
                return LogFailed(request.ticket, INCONSISTENT)
            talk, duplicate = self.append(
                request.join_key, request.user_id, request.time, request.payload, request.name, request.talk_id,
                request.verified,
            )
            return Appended(request.ticket, talk, duplicate)
        if isinstance(request, AddUser):
            room = self._rooms.get(request.join_key)
            if request.created is not None:
                if room is not None:
                    return KeyTaken(request.ticket)
                room = self._rooms[request.join_key] = _Room(deque(maxlen=self._history_limit), request.created)
            elif room is None:
                return LogFailed(request.ticket, INCONSISTENT)
            user_id = room.user_of(request.subject, request.resume_hash)
            refusal = None if request.created is not None else refuse_join(room.control, user_id)
            if refusal is None and request.subject is None and room.holds(user_id, request.name_key):
                refusal = TAKEN
            if refusal is not None:
                return Refused(request.ticket, refusal)
            resumed = user_id is not None
            if user_id is None:
                room.last_user_id = user_id = room.last_user_id + 1
                kept = room.users.get(user_id)  # (named by a `Rename` before it was handed out)
                if request.token_hash is not None or request.name is not None or kept is not None:
                    name = request.name if request.name is not None or kept is None else kept.name
                    room.users[user_id] = _User(request.token_hash, name)
                    if request.token_hash is not None:
                        room.tokens[request.token_hash] = user_id
                if request.subject is not None:
                    room.sign(request.subject, user_id)
                    room.users.setdefault(user_id, _User(request.token_hash, request.name))
            else:
                if request.subject is not None:
                    room.sign(request.subject, user_id)
                room.absent.pop(user_id, None)
                if request.name is not None and (request.subject is not None or user_id not in room.signed):
                    # (a signed-in user's name is the one its sign-in gave: a join by its token alone keeps it)
                    room.users[user_id] = room.users[user_id]._replace(name=request.name)
            if request.subject is not None:
                room.hold(user_id, request.name_key)
            user = room.users.get(user_id)
            return UserAdded(
                request.ticket, user_id, resumed, None if user is None else user.name, user_id in room.signed
            )
        if isinstance(request, Load):
            room = self._rooms.get(request.join_key)
            if room is None:
                return Loaded(request.ticket, None)
            recent = tuple(room.talks)[-request.recent:] if request.recent else ()
            return Loaded(request.ticket, SavedRoom(request.join_key, room.last_offset, recent, control=room.control))
        if isinstance(request, Rename):
            room = self._rooms.get(request.join_key)
            if room is None:
                return LogFailed(request.ticket, INCONSISTENT)
            user_id = request.user_id
            if room.holds(user_id, request.name_key):
                return Refused(request.ticket, TAKEN)
            if user_id in room.signed:
                room.hold(user_id, request.name_key)
            user = room.users.get(user_id)
            room.users[user_id] = _User(None if user is None else user.token_hash, request.name)
            return NameSaved(request.ticket)
        if isinstance(request, History):
            room = self._rooms.get(request.join_key)
            if room is None:
                return LogFailed(request.ticket, INCONSISTENT)
            earlier = [talk for talk in room.talks if talk.offset < request.before]
            chosen = earlier[-request.limit:]
            older = len(earlier) > len(chosen)
            return HistoryRead(request.ticket, tuple(chosen), older)
        if isinstance(request, Moderate):
            return self._moderate(request)
        assert_never(request)

    def _moderate(self, request: Moderate) -> Changed | Refused:
        room = self._rooms.get(request.join_key)
        if room is None:
            return Refused(request.ticket, ENDED)
        change = request.change
        talk = room.kept(change.offset) if isinstance(change, Edit | Delete) else None
        decided = decide(request, room.control, talk, room.last_user_id)
        if isinstance(decided, Refused):
            return decided
        room.control, talk = decided
        if talk is not None:
            room.replace(talk)
        if isinstance(change, End):
            del self._rooms[request.join_key]
        entry = LoggedChange(
            request.join_key, room.control.seq, room.last_offset, request.user_id, request.time, change, talk
        )
        return Changed(request.ticket, entry)


def decide(
    request: Moderate, control: RoomControl, talk: LoggedTalk | None, last_user_id: int
) -> Refused | tuple[RoomControl, LoggedTalk | None]:
    """A change judged (`chatcore.control.judge`) against a room's state and the talk it names (None: none kept):
    its refusal, or the room's state once it is made, numbered, and the talk as it is after it."""
    change = request.change
    facts = None if talk is None else TalkFacts(talk.user_id, talk.deleted)
    refusal = judge(control, request.user_id, change, talk=facts, last_user_id=last_user_id)
    if refusal is not None:
        return Refused(request.ticket, refusal)
    if talk is not None:
        talk = talk.edit(change.payload, request.time) if isinstance(change, Edit) else talk.erased()
    return control.after(change, control.seq + 1), talk
