"""A sans-IO chat core: connection events, client messages and log results in, actions out.

Nothing here performs I/O, runs an event loop, reads a clock or draws
randomness; drivers in ``transports`` do all of that. `chatcore.core` explains
what a driver must feed and perform (its theory of operation); the modules:

- `core`: `ChatCore`, the rooms in use and the connections of one process.
- `session`: one connection's `ConnectionState` and its transitions.
- `rooms`: a room's members, recent talks and offset order.
- `actions`: what the core asks the driver to do (`Send` … and log requests).
- `results`: what the room log answers (`Appended` …).
- `memorylog`: the log kept in memory, the core's loopback when it has no store.
- `wire`: the JSON wire protocol; `wire.seed` is the seed's format, frozen; `wire.v2` the opt-in version 2.
"""

from . import closecodes
from .actions import (
    Action,
    AddUser,
    Append,
    Broadcast,
    Close,
    ConnectionId,
    Forget,
    History,
    Load,
    LogRequest,
    Presence,
    Rename,
    Send,
    Ticket,
)
from .core import ChatCore
from .errors import DriverError, ProtocolError
from .limits import CoreLimits
from .memorylog import MemoryLog
from .results import (
    Appended,
    HistoryRead,
    KeyTaken,
    Loaded,
    LogFailed,
    LoggedTalk,
    LogResult,
    NameSaved,
    PresenceHeard,
    PresenceSnapshot,
    SavedRoom,
    UserAdded,
)
from .session import ConnectionState

__all__ = [
    "Action",
    "AddUser",
    "Append",
    "Appended",
    "Broadcast",
    "ChatCore",
    "Close",
    "ConnectionId",
    "ConnectionState",
    "CoreLimits",
    "DriverError",
    "Forget",
    "History",
    "HistoryRead",
    "KeyTaken",
    "Load",
    "Loaded",
    "LogFailed",
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
    "Ticket",
    "UserAdded",
    "closecodes",
]
