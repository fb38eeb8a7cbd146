"""The error a client's message can be: the wire's, answered with an ``error`` event in the client's dialect."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..problems import Problem

if TYPE_CHECKING:
    from .dialect import Dialect


class ProtocolError(Exception):
    """A client event the server cannot accept; its ``problem`` is sent back to the client as an ``error`` event.

    The core catches these itself and answers with an `error` event: a driver
    never sees one. ``talk_id``: the ``id`` of the refused ``talk``, when it carried one (a version-2
    client is told which of its messages was refused). ``request``: the type of the request refused, for the
    requests whose refusal says so (a version-2 client's ``name``, ``history`` and changes of its room).
    ``dialect``: the dialect to answer in when it is not the connection's (an ``init`` asking for a version is
    answered in that version's, even when it cannot be read).
    """

    def __init__(self, problem: Problem, talk_id: str | None = None, request: str | None = None) -> None:
        super().__init__(problem.text)
        self.problem = problem
        self.dialect: Dialect | None = None
        self.talk_id = talk_id
        self.request = request
