"""chatclient: a Python client of the chat server's protocol version 2.

Theory of operation
===================

`Client` (``client.py``) is what one member of one room knows, as a state
machine that does no I/O: the room's join key, our user id and resume
token, the last offset delivered to the application, and the talks we sent
that the room has not stored yet. `session.Chat` keeps it connected, on
anyio: on every connection it sends `Client.hello` (a join; after the first
join, a resume with the token and ``after``), feeds every event it reads to
`Client.receive`, sends what it asks for (`client.Ask`: the pages of a
resume's gap), resends what `Client.resend` returns, and reconnects after
a drop with a growing pause. The connectors (``chatclient.trio``,
``chatclient.asyncio``) give it only the WebSocket.

What the application gets (``events.py``: small frozen dataclasses):

- every talk of the room once, in offset order, across reconnects and
  server restarts: a talk at or below the last offset delivered is not
  delivered again (a resume's replay starts after it; a talk answered again
  after a resend is only the answer). When the replay starts later (we were
  away for more talks than the room replays), the talks in between are
  fetched with ``history`` and delivered first, the replay and live news
  held until then; what the room's log no longer has is skipped;
- each talk it sends stored exactly once: every talk carries an id of ours,
  the room stores one talk per user and id, and a talk stays pending (and is
  sent again after each reconnect) until the room's echo of it arrives;
- presence, edits, deletions and the room's changes as they come, and
  `Ended` when the session is over for good (removed, the room ended, a join
  refused).
"""

from .client import Client, State
from .events import (
    Deleted,
    Edited,
    Ended,
    Event,
    History,
    Joined,
    Member,
    MemberJoined,
    MemberLeft,
    Refused,
    Removed,
    Renamed,
    RoleChanged,
    RoomChanged,
    Talk,
)

__all__ = [
    "Client",
    "Deleted",
    "Edited",
    "Ended",
    "Event",
    "History",
    "Joined",
    "Member",
    "MemberJoined",
    "MemberLeft",
    "Refused",
    "Removed",
    "Renamed",
    "RoleChanged",
    "RoomChanged",
    "State",
    "Talk",
]
