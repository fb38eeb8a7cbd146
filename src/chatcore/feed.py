"""Talks heard from a shared room log's channels, checked for gaps: what a process must read back from the log.

Theory of operation
===================

Several processes share one room log (Redis): each talk is appended to its
room's stream at the room's next offset and published on the room's channel
in the same atomic step, so a channel carries a room's talks in offset order.
A process listens to the channels of the rooms it holds and hands every talk
it hears to its core (`ChatCore.log_result` with a `TalkArrived`), which
shows each talk once, in offset order, holding back any talk that arrives
before the ones preceding it. The core keeps a `RoomFeed` for that.

What a channel does not guarantee is that every talk arrives: a subscriber
that loses its connection misses whatever was published meanwhile. The
core would then hold every later talk forever. `RoomFeed` notices and says
what to read back from the stream (a `Fill`):

- a talk heard with an offset beyond the next one expected (a gap);
- a subscription confirmed again (the broker reconnected: anything may have
  been missed, with no later talk yet to show it);
- a room loaded with talks heard beyond its last offset but not following it.

A room is watched from the moment the process subscribes to its channel,
which it does before reading the room (the load): a talk published in
between is heard, and one published before is in what the load read.
`loaded` sets where the channel's sequence starts (``seen``, the highest
offset up to which every talk has reached the core); talks heard before
that are only remembered. Each `Fill` returned is a log action (the log
reads the talks after ``after``); its answer goes to `filled`, and every
talk, heard or filled, to the room. One fill is in flight per room at
a time. A fill whose first talk is later than the one asked for means the
log no longer has the missing talks (trimmed, or lost with the log's data):
`filled` then returns `Lost`, and the caller ends the room on this process
(`ChatCore` closes its members with 1012) so that its members rejoin.

Nothing here performs I/O or reads a clock; the simulation in the tests runs
it against a model of the broker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .actions import Fill
from .results import LoggedTalk


@dataclass(frozen=True, slots=True)
class Lost:
    """The log no longer has talks ``after + 1`` to ``first - 1`` of the room: end it here (members close with 1012)."""

    join_key: str
    after: int
    first: int


@dataclass(slots=True)
class _Watch:
    seen: int | None = None
    """Every talk up to this offset has reached the core; None until the room is loaded."""
    ahead: set[int] = field(default_factory=set)
    """Offsets heard beyond ``seen`` + 1 (or before the load)."""
    filling: int | None = None
    """While a fill is in flight: the highest offset heard when it was asked (the fill must reach it)."""
    again: bool = False
    """Subscribed again while a fill was in flight: fill once more when it returns."""


class RoomFeed:
    """The rooms a process listens to, and how far each one's talks have reached its core without a gap."""

    def __init__(self) -> None:
        self._rooms: dict[str, _Watch] = {}

    def __contains__(self, join_key: object) -> bool:
        return join_key in self._rooms

    def seen(self, join_key: str) -> int | None:
        """The offset up to which every talk of the room reached the core (None: not loaded yet, or not watched)."""
        watch = self._rooms.get(join_key)
        return None if watch is None else watch.seen

    def subscribed(self, join_key: str) -> list[Fill]:
        """The room's channel was subscribed, or subscribed again after a reconnect: perform the fills returned."""
        watch = self._rooms.get(join_key)
        if watch is None:
            self._rooms[join_key] = _Watch()
            return []
        if watch.filling is not None or watch.seen is None:
            # That fill, or the read not answered yet, may have read the log before what this subscription missed.
            watch.again = True
            return []
        return self._fill(join_key, watch, force=True)

    def loaded(self, join_key: str, last_offset: int) -> list[Fill]:
        """The room was read (or created, ``last_offset`` 0): its channel's sequence follows ``last_offset``."""
        watch = self._rooms.setdefault(join_key, _Watch())
        if watch.seen is None or watch.seen < last_offset:
            watch.seen = last_offset
        watch.ahead = {offset for offset in watch.ahead if offset > watch.seen}
        fills = self._fill(join_key, watch, force=watch.again)
        if fills:
            watch.again = False
        return fills

    def heard(self, talk: LoggedTalk) -> list[Fill]:
        """A talk arrived on its room's channel (give it to the core as well): perform the fills returned."""
        watch = self._rooms.get(talk.join_key)
        if watch is None:
            return []  # unsubscribed meanwhile: the room is not held here any more
        seen = watch.seen
        if seen is None:
            watch.ahead.add(talk.offset)
            return []
        if talk.offset <= seen:
            return []
        if talk.offset == seen + 1 and not watch.ahead:
            watch.seen = talk.offset  # the common case: the next one
            return []
        watch.ahead.add(talk.offset)
        return self._fill(talk.join_key, watch)

    def filled(self, join_key: str, after: int, talks: Sequence[LoggedTalk]) -> list[Fill | Lost]:
        """The answer to ``Fill(join_key, after)``: the talks after it, oldest first (give them to the core too)."""
        watch = self._rooms.get(join_key)
        if watch is None or watch.filling is None or watch.seen is None:
            return []  # forgotten (and perhaps watched again) while the fill was in flight
        target, watch.filling = watch.filling, None
        for talk in talks:
            if talk.offset > watch.seen:
                watch.ahead.add(talk.offset)
        self._advance(watch)
        # A channel delivers in offset order: a talk missing below one heard before the fill was published
        # before that one, so the fill must have found it. If it did not, the log no longer has it.
        if watch.seen < target or (talks and watch.seen < talks[-1].offset):
            del self._rooms[join_key]
            return [Lost(join_key, watch.seen, min(watch.ahead))]
        force, watch.again = watch.again, False
        return list(self._fill(join_key, watch, force=force))

    def forget(self, join_key: str) -> None:
        """The process stopped listening to the room."""
        self._rooms.pop(join_key, None)

    def _fill(self, join_key: str, watch: _Watch, *, force: bool = False) -> list[Fill]:
        self._advance(watch)
        if watch.seen is None or watch.filling is not None or not (force or watch.ahead):
            return []
        watch.filling = max(watch.ahead, default=watch.seen)
        return [Fill(join_key, watch.seen)]

    @staticmethod
    def _advance(watch: _Watch) -> None:
        """Move ``seen`` over the offsets heard that now follow it without a gap."""
        if watch.seen is None:
            return
        ahead = watch.ahead
        while watch.seen + 1 in ahead:
            watch.seen += 1
            ahead.discard(watch.seen)
