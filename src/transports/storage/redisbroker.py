"""The event loop's side of the room log in Redis: `RedisBroker`, the core's room-log backend (see `redislog`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
import anyio.abc

from chatcore import (
    Fill,
    Filled,
    LogAction,
    LoggedTalk,
    LogLost,
    LogResult,
    Presence,
    PresenceHeard,
    Subscribed,
    TalkArrived,
    TypingHeard,
)
from chatcore.results import ChangeArrived, Expired, LoggedChange

from ..config import MIN_TIMER_PERIOD, RedisSettings
from .loopcall import loop_call
from .redislog import (
    RETRY_AFTER_FAILURE,
    Answer,
    AskAgain,
    EpochChanged,
    FilledFrom,
    FillFailed,
    RedisLog,
    Refresh,
    SweepDue,
    Work,
)
from .redissubscriber import Heard, _Subscribed
from .worker import StorageWorker

logger = logging.getLogger(__name__)

REFILL_DELAY = 0.5
"""Seconds before a fill that failed (Redis unreachable) is tried again."""


class RedisBroker:
    """The event loop's side: the core's log actions in (`submit`), results and news out (``deliver``)."""

    def __init__(self, settings: RedisSettings, origin: str | None = None) -> None:
        self.log = RedisLog(settings, origin)
        self.worker: StorageWorker[Work, Answer] = StorageWorker(self.log)
        self._deliver: Callable[[LogResult], None] = _not_running
        self._tasks: anyio.abc.TaskGroup | None = None
        self._up = True
        self.gaps_filled = 0
        """Gaps in what a room's channel brought, read back from its stream (metrics)."""
        self.here: dict[str, set[int]] = {}
        """The users with a connection to each room on this process (as the core said: `Presence`)."""
        self._sweeping = False

    def submit(self, action: LogAction) -> None:
        """Take one of the core's log actions."""
        if isinstance(action, Presence):
            self._presence(action)
        else:
            self.worker.submit(action)

    def _expire(self, due: SweepDue) -> None:
        """Retention, once the storage thread has done what was asked before it (`SweepDue`): on a thread of its own,
        as a sweep may take a while and the rooms' requests go on meanwhile; one at a time. What it erases comes back
        as news on the rooms' channels."""
        if not self._sweeping:
            assert self._tasks is not None
            self._sweeping = True
            self._tasks.start_soon(self._sweep, due.before)

    @property
    def sweeping(self) -> bool:
        """Whether a sweep (retention) of this process's is under way."""
        return self._sweeping

    async def _sweep(self, before: float) -> None:
        try:
            await anyio.to_thread.run_sync(self.log.sweep, before)
        finally:
            self._sweeping = False

    def _presence(self, presence: Presence) -> None:
        users = self.here.get(presence.join_key)
        if presence.here:
            if users is None:
                users = self.here[presence.join_key] = set()
            users.add(presence.user_id)
        elif users is not None:
            users.discard(presence.user_id)
            if not users:
                del self.here[presence.join_key]
        self.worker.submit(presence)

    # Presence kept alive

    def refresh(self, join_key: str | None = None) -> None:
        """Renew this process's presence in every room it has users in (or in one), and read who is there."""
        keys = list(self.here) if join_key is None else [join_key] if join_key in self.here else []
        for key in keys:
            self.worker.submit(Refresh(key, tuple(sorted(self.here[key]))))

    async def _refreshing(self) -> None:
        period = max(self.log.settings.presence_ttl / 3, MIN_TIMER_PERIOD)
        while True:
            await anyio.sleep(period)
            self.refresh()

    async def _asking_again(self) -> None:
        """Have talks Redis did not answer asked about again even when nothing else goes to it."""
        while True:
            await anyio.sleep(RETRY_AFTER_FAILURE / 2)
            if self.log.unanswered:
                self.worker.submit(AskAgain())

    # Running

    async def run(self, deliver: Callable[[LogResult], None]) -> None:
        """Serve the core's log until cancelled, handing ``deliver`` every result and news, on the event loop."""
        self._deliver = deliver
        async with anyio.create_task_group() as tasks:
            self._tasks = tasks
            self.log.subscriber.start(loop_call(), self._heard)
            tasks.start_soon(self.worker.run, self._answer)
            tasks.start_soon(self._refreshing)
            tasks.start_soon(self._asking_again)

    async def flush(self) -> None:
        """Wait until everything asked so far is answered, talks Redis has not answered yet included."""
        await self.worker.flush()
        while self.log.unanswered:
            await anyio.sleep(RETRY_AFTER_FAILURE / 2)  # (`_asking_again` has them asked again meanwhile)
            await self.worker.flush()

    @property
    def listening(self) -> bool:
        """Whether the subscriber's connection is up (as last handed over to the event loop)."""
        return self._up

    def _answer(self, answer: Answer) -> None:
        if isinstance(answer, FilledFrom):
            self.gaps_filled += 1
            self._deliver(Expired(answer.filled.join_key, answer.first))  # (heard or not: dropped here too)
            self._deliver(answer.filled)
        elif isinstance(answer, Filled):
            self.gaps_filled += 1
            self._deliver(answer)
        elif isinstance(answer, FillFailed):
            assert self._tasks is not None
            self._tasks.start_soon(self._refill, answer.fill)
        elif isinstance(answer, EpochChanged):
            self._deliver(LogLost())
        elif isinstance(answer, SweepDue):
            self._expire(answer)
        else:
            self._deliver(answer)

    async def _refill(self, fill: Fill) -> None:
        await anyio.sleep(REFILL_DELAY)
        self.worker.submit(fill)

    def _heard(self, burst: list[Heard]) -> None:
        """On the event loop: what the subscriber heard, in order."""
        for item in burst:
            try:
                if isinstance(item, LoggedTalk):
                    self._deliver(TalkArrived(item))
                elif isinstance(item, LoggedChange):
                    self._deliver(ChangeArrived(item))
                elif isinstance(item, PresenceHeard | TypingHeard | Expired):
                    self._deliver(item)
                elif isinstance(item, _Subscribed):
                    self._deliver(Subscribed(item.join_key))
                    self.refresh(item.join_key)  # (again, after a reconnect: news may have been missed meanwhile)
                elif item.up != self._up:
                    self._up = item.up
                    if item.up:
                        logger.warning("Redis %s: listening again; rooms read back what they missed", self.log.name)
                    else:
                        logger.warning("Redis %s: lost the subscriber's connection (%s); reconnecting",
                                       self.log.name, item.why)
            except Exception:
                logger.exception("internal error while handing over what Redis published")


def _not_running(result: LogResult) -> None:
    raise RuntimeError("Redis answers arrived before RedisBroker.run")
