"""Quiet presence: a user whose last connection to a room here closed stays in it for a grace.

A page that reconnects after a blip, or a user a draining server moves to another process, comes back within
seconds: the others should see nothing. So when a user's last connection here closes (`Graces.start`), the
user stays in the room (``Room.leaving``: still a member, its presence in a shared log kept), and the driver
is asked to call `chatcore.ChatCore.settle` when the grace is over (`chatcore.actions.Wake`). A user who
comes back meanwhile (here: ``Room.add_member``; on another process: its news) is never announced gone;
one who does not is announced ``left`` then, and the log told (`chatcore.actions.Presence`), as it was at
once before. No timer here: deadlines by the core's clock, in a heap, each checked when it is due.

What never waits: a user removed by a moderator (`at_once`), a room that ended or was lost (the log is told
of the users in their grace at once: `ended`). A process that stops with users in their grace tells nothing:
with a shared log their entries lapse as a dead process's do (``--presence-ttl``), unless they came back
elsewhere.
"""

from __future__ import annotations

import heapq
import itertools

from .actions import Action, Presence, Wake
from .presence import announce
from .rooms import Room


class Graces:
    """The graces under way in the rooms of one process, by when each ends."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        """Seconds (0: none, a user is announced gone at once)."""
        self._due: list[tuple[float, int, Room, int]] = []
        """(when it ends, a tie-breaker, room, user id); an entry whose grace ended otherwise is skipped."""
        self._numbers = itertools.count()
        self._latest = float("-inf")
        """When the latest grace began: a clock now earlier than it stepped back."""

    def start(self, room: Room, user_id: int, now: float) -> Wake:
        """The user's last connection to the room here closed: it stays until `over` says otherwise."""
        until = now + self.grace
        room.leaving[user_id] = until
        self._latest = max(self._latest, now)
        heapq.heappush(self._due, (until, next(self._numbers), room, user_id))
        return Wake(self.grace)

    def over(self, now: float, limit: int) -> tuple[list[tuple[Room, int]], Wake | None]:
        """At most ``limit`` users whose grace is over (each taken out of ``Room.leaving``), and when to call again
        (None: no grace under way). A clock that stepped back ends every grace now, rather than stretch them."""
        due = self._due
        stepped_back = now < self._latest
        ended: list[tuple[Room, int]] = []
        while due and len(ended) < limit and (stepped_back or due[0][0] <= now):
            until, _, room, user_id = heapq.heappop(due)
            if room.leaving.get(user_id) == until:  # (else it came back, or was removed, since)
                del room.leaving[user_id]
                ended.append((room, user_id))
        if not due:
            self._latest = float("-inf")
            return ended, None
        return ended, Wake(0.0 if stepped_back else max(0.0, due[0][0] - now))


def gone(room: Room, user_id: int, *, held: bool) -> list[Action]:
    """The user has no connection to the room here any more, and no grace: the log is told, and the members
    (but in a room no longer held: ended or lost) if it is in the room nowhere else."""
    actions: list[Action] = [Presence(room.join_key, user_id, False, None)]
    if held:
        actions.extend(announce(room, {user_id: (True, room.names.get(user_id))}))
    return actions


def ended(room: Room) -> list[Action]:
    """The room ended or was lost: the log is told at once of the users in their grace here."""
    actions: list[Action] = [Presence(room.join_key, user_id, False, None) for user_id in room.leaving]
    room.leaving.clear()
    return actions
