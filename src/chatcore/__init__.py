"""A sans-IO chat core: connection events, client messages and room-log results in, actions out.

Nothing here performs I/O, runs an event loop, reads a clock or draws
randomness; drivers in ``transports`` do all of that. The theory of operation
below says what a driver must feed and perform; the modules:

- `core`: `ChatCore`, the connections of one process, their requests and the log's answers; `member`: a
  member's renames, history reads and changes of its room.
- `control`: room control (owner, moderators, the changes, and the rules every log judges them by);
  `changes`: changes applied to a room held here in the log's order, and told to its members.
- `session`: one connection's `SessionState` and its transitions.
- `holdings`: the rooms held in memory, those loading, and the talks other processes append to them.
- `rooms`: a room's members, recent talks and offset order; `presence`: who is in it; `entering`: a joiner;
  `graces`: a user whose last connection closed, kept for a while; `typers`: who is typing.
- `pending`: the core's requests with the room log, by ticket.
- `feed`: gaps in the talks heard from a log shared by several processes.
- `actions`: what the core asks the driver to do (`Send` … and the room log's actions).
- `results`: what the room log answers, and tells (`Appended` …).
- `memorylog`: the room log kept in memory, a backend without I/O.
- `wire`: the JSON wire protocol, a dialect per connection: `wire.seed` (the seed's, frozen), `wire.v2`.

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
- `Wake`: call `ChatCore.settle` that many seconds later (the core has no
  timers: a user's grace ends then, `chatcore.graces`); keep the soonest.
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
core's: a user is in a room while it has a connection to it, or for a
grace after its last one closed (`chatcore.presence`, `chatcore.graces`);
the core tells the log when a user comes and goes here (`Presence`) and is
told what other processes say (`PresenceHeard`, `PresenceSnapshot`); typing
is told at once and never stored (`Typing`, `TypingHeard`). Changes of a room (edit, delete, title, lock, remove,
role, end: `chatcore.control`) take the same way too: the log judges and
numbers each (`Moderate`, `Changed`), other processes' arrive as news
(`ChangeArrived`), and every process applies them in the log's order.

What the driver may assume: the core keeps in memory only rooms with members
(users in their grace too) or requests in flight (the log has the rest; `Forget` says when it lets one
go); a client's mistake never raises (it is answered with an ``error`` event
or a `Close`); `DriverError` means the driver broke this contract, and leaves
the core unchanged.
"""

from . import closecodes
from .actions import (
    Action,
    AddUser,
    Append,
    Broadcast,
    Close,
    ConnectionId,
    Fill,
    Forget,
    History,
    Load,
    LogAction,
    LogNotice,
    LogRequest,
    Presence,
    Rename,
    Send,
    Subscribe,
    Ticket,
    Typing,
    Wake,
)
from .core import ChatCore
from .errors import DriverError, ProtocolError, TransitionError
from .limits import CoreLimits
from .memorylog import MemoryLog
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
    LogNews,
    LogResult,
    NameSaved,
    PresenceHeard,
    PresenceSnapshot,
    SavedRoom,
    Subscribed,
    TalkArrived,
    TypingHeard,
    UserAdded,
)
from .session import SessionState

__all__ = [
    "Action",
    "AddUser",
    "Append",
    "Appended",
    "Broadcast",
    "ChatCore",
    "Close",
    "ConnectionId",
    "CoreLimits",
    "DriverError",
    "Fill",
    "Filled",
    "Forget",
    "History",
    "HistoryRead",
    "KeyTaken",
    "Load",
    "Loaded",
    "LogAction",
    "LogAnswer",
    "LogFailed",
    "LogLost",
    "LogNews",
    "LogNotice",
    "LogRequest",
    "LogResult",
    "LoggedTalk",
    "MemoryLog",
    "NameSaved",
    "Presence",
    "PresenceHeard",
    "PresenceSnapshot",
    "ProtocolError",
    "Rename",
    "SavedRoom",
    "Send",
    "SessionState",
    "Subscribe",
    "Subscribed",
    "TalkArrived",
    "Ticket",
    "TransitionError",
    "Typing",
    "TypingHeard",
    "UserAdded",
    "Wake",
    "closecodes",
]
