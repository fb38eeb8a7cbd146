"""The ways a call into the core can fail: the client's mistake, the driver's, or the core's own."""

from __future__ import annotations


class ProtocolError(Exception):
    """A client event the server cannot accept; ``str(error)`` is sent back to the client as an ``error`` event.

    The core catches these itself and answers with an `error` event: a driver
    never sees one. ``talk_id``: the ``id`` of the refused ``talk``, when it carried one (a version-2
    client is told which of its messages was refused).
    """

    def __init__(self, message: str, talk_id: str | None = None) -> None:
        super().__init__(message)
        self.talk_id = talk_id


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
