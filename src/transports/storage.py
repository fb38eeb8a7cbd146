"""Runs the core's `Store` and `Load` actions on a worker thread, grouped into one transaction per round."""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio

from chatcore.storage import Load, StorageFailed, StorageResult, Store

from .database import Database

log = logging.getLogger(__name__)


class StorageWorker:
    """Queues requests while the event loop runs; one task hands each queue to the database thread.

    Everything submitted while a batch is on the thread, or during one turn of
    the event loop, goes in the next batch: commits are grouped by themselves
    as load grows. Results come back in submission order.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self._queue: list[Store | Load] = []
        self._wake = anyio.Event()
        self._idle = anyio.Event()
        self._idle.set()
        self._thread = anyio.CapacityLimiter(1)

    def submit(self, action: Store | Load) -> None:
        if not self._queue:
            self._wake.set()
        if self._idle.is_set():
            self._idle = anyio.Event()
        self._queue.append(action)

    async def run(self, deliver: Callable[[StorageResult], None]) -> None:
        """Serve batches until cancelled, handing every result to ``deliver``."""
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            batch, self._queue = self._queue, []
            results = await self._run_batch(batch)
            for result in results:
                try:
                    deliver(result)
                except Exception:
                    log.exception("internal error while delivering a storage result")
            if not self._queue:
                self._idle.set()

    async def drain(self) -> None:
        """Wait until everything submitted so far has its result delivered."""
        await self._idle.wait()

    async def _run_batch(self, batch: list[Store | Load]) -> list[StorageResult]:
        try:
            return await anyio.to_thread.run_sync(self.database.run, batch, limiter=self._thread)
        except Exception:
            log.exception("database %s: internal error in a batch of %d", self.database.path, len(batch))
            return [StorageFailed(action.ticket, "storage error") for action in batch]
