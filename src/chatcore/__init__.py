"""A sans-IO chat core: connection events and client messages in, actions out.

Nothing here performs I/O, runs an event loop, reads a clock or draws
randomness; drivers in ``transports`` do all of that.
"""

from .actions import Action, Broadcast, Close, ConnectionId, Send
from .core import ChatCore
from .limits import CoreLimits
from .protocol import ProtocolError

__all__ = [
    "Action",
    "Broadcast",
    "ChatCore",
    "Close",
    "ConnectionId",
    "CoreLimits",
    "ProtocolError",
    "Send",
]
