"""A sans-IO chat core: connection events and client messages in, actions out.

Nothing here performs I/O, runs an event loop, reads a clock or draws
randomness; drivers in ``transports`` do all of that.
"""

from .actions import Action, Broadcast, Close, ConnectionId, Send
from .core import DEFAULT_HISTORY_LIMIT, ChatCore
from .protocol import ProtocolError

__all__ = [
    "DEFAULT_HISTORY_LIMIT",
    "Action",
    "Broadcast",
    "ChatCore",
    "Close",
    "ConnectionId",
    "ProtocolError",
    "Send",
]
