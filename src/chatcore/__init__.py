"""A sans-IO chat core: connection events, client messages and room-log results in, actions out.

Nothing here performs I/O, runs an event loop, reads a clock or draws
randomness; drivers in ``transports`` do all of that. `chatcore.core` explains
what a driver must feed and perform (its theory of operation); the modules:

- `core`: `ChatCore`, the rooms in use and the connections of one process.
- `session`: one connection's `SessionState` and its transitions.
- `rooms`: a room's members, recent talks and offset order; `presence`: who is in it.
- `pending`: the core's requests with the room log, by ticket.
- `feed`: gaps in the talks heard from a log shared by several processes.
- `actions`: what the core asks the driver to do (`Send` … and the room log's actions).
- `results`: what the room log answers, and tells (`Appended` …).
- `memorylog`: the room log kept in memory, a backend without I/O.
- `wire`: the JSON wire protocol, a dialect per connection: `wire.seed` (the seed's, frozen), `wire.v2`.
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
    "UserAdded",
    "closecodes",
]
