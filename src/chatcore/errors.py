"""The ways a call into the core can fail: the client's mistake, the driver's, or the core's own."""

from __future__ import annotations

from .wire.errors import ProtocolError

__all__ = ["DriverError", "ProtocolError", "TransitionError"]


class DriverError(Exception):
    """The driver broke the core's contract: a bug in the driver, never something a client did.

    Raised for events about a connection the core does not know (or knows
    already), and for log results that answer no pending request or the wrong
    kind of request. The core's state is unchanged when it is raised.
    """


class TransitionError(Exception):
    """The core asked a connection's session for a transition its state does not have: a bug in the core.

    The message names the step and the state, as h11's and wsproto's protocol errors do.
    """
