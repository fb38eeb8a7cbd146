"""The room log in memory, as a backend: `chatcore.MemoryLog` performed on the event loop, at once."""

from __future__ import annotations

from collections.abc import Callable

import anyio

from chatcore import CoreLimits, LogAction, LogResult, MemoryLog


class MemoryBackend:
    """Answers every log action as it is submitted: its results go to ``deliver`` before `submit` returns.

    The hub hands it an action while performing others: the results' own actions are
    performed then, in the place of the action, as a store's would be once it answered.
    """

    def __init__(self, limits: CoreLimits) -> None:
        self.log = MemoryLog(limits.history_limit, limits.remembered_users)
        self._deliver: Callable[[LogResult], None] | None = None
        self._early: list[LogResult] = []
        """Results of actions submitted before `run` began, for it to deliver first."""

    def submit(self, action: LogAction) -> None:
        deliver = self._deliver
        if deliver is None:
            self._early.extend(self.log.perform(action))
            return
        for result in self.log.perform(action):
            deliver(result)

    async def run(self, deliver: Callable[[LogResult], None]) -> None:
        """Hand results to ``deliver`` until cancelled."""
        self._deliver = deliver  # (kept after: connections that end during shutdown still tell the log)
        early, self._early = self._early, []
        for result in early:
            deliver(result)
        await anyio.sleep_forever()

    async def flush(self) -> None:
        """Nothing is ever waiting: every action was answered when it was submitted."""
