"""``/healthz`` and ``/readyz`` on the page's port.

``/healthz`` is 200 whenever the process can answer at all: a liveness
probe. ``/readyz`` is 200 only while the server takes new connections and
its store answers, else 503 with a one-line reason: a load balancer's or
an orchestrator's readiness probe, to send new clients elsewhere.

The store check never blocks the event loop and is bounded in time: SQLite
is asked a trivial read on its storage thread, between batches (so a batch
stuck on a locked file shows as a check that does not answer within
``--db-timeout``); Redis is pinged from a worker thread, within
``--redis-timeout``, and its subscriber's connection must be up. One check
runs at a time, in a task of its own, and its outcome is kept for
`CHECK_EVERY` seconds: probes, however frequent, cost the store at most one
trivial request per second. Reasons name no address or path (the page's port
may be public); the log says more when readiness changes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from redis.exceptions import RedisError

from ..http.static import Response
from ..runtime.hub import Hub
from ..storage.redisbroker import RedisBroker
from ..storage.worker import LogWorker

logger = logging.getLogger(__name__)

CHECK_EVERY = 1.0
"""Seconds a store check's outcome answers readiness probes before the store is asked again."""

StoreCheck = Callable[[], Awaitable[str | None]]
"""Asks the store; None if it answered, else a short reason (no address, no path)."""


class Health:
    """Liveness and readiness of one server process."""

    def __init__(
        self, hub: Hub, max_connections: int, store: StoreCheck | None = None,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        self._hub = hub
        self._max_connections = max_connections
        self._store = store
        self.observe = observe
        """Called with each store check's seconds (metrics)."""
        self.stopping: str | None = None
        """Why the server no longer takes connections (draining, stopping); None while it does."""
        self._outcome: str | None = None
        self._checked_at = -CHECK_EVERY
        self._wanted = anyio.Event()
        self._checked = anyio.Event()
        self._checking = False
        self._ready: bool | None = None  # as last logged

    def stop(self, why: str) -> None:
        """From now on readiness is 503 with ``why``."""
        if self.stopping is None:
            self.stopping = why

    async def healthz(self) -> Response:
        return Response(200, b"ok\n")

    async def readyz(self) -> Response:
        reason = await self.not_ready()
        if reason is None:
            return Response(200, b"ready\n")
        return Response(503, f"not ready: {reason}\n".encode())

    async def not_ready(self) -> str | None:
        """Why the server is not ready, or None if it is."""
        if self.stopping is not None:
            return self.stopping
        if self._hub.slots_taken >= self._max_connections:
            return f"full (--max-connections {self._max_connections} reached)"
        if self._store is None:
            return None
        if anyio.current_time() - self._checked_at >= CHECK_EVERY:
            checked = self._checked  # set once the check under way, or else the next one, has its outcome
            if not self._checking:
                self._wanted.set()
            await checked.wait()
        return self.stopping or self._outcome  # (the drain may have begun meanwhile)

    async def run(self) -> None:
        """Check the store whenever a probe wants a fresh outcome, one check at a time; until cancelled."""
        if self._store is None:
            return
        while True:
            await self._wanted.wait()
            self._wanted = anyio.Event()
            self._checking = True
            started = anyio.current_time()
            outcome = await self._store()
            self._checking = False
            self._checked_at = now = anyio.current_time()
            if self.observe is not None:
                self.observe(now - started)
            if (outcome is None) != self._ready:
                self._ready = outcome is None
                if outcome is None:
                    logger.info("readiness: the store answers")
                else:
                    logger.warning("readiness: not ready: %s", outcome)
            self._outcome = outcome
            checked, self._checked = self._checked, anyio.Event()
            checked.set()


def sqlite_check(storage: LogWorker, check: Callable[[], None], timeout: float) -> StoreCheck:
    """A trivial read on the storage thread, between batches, within ``timeout`` seconds."""

    async def ask() -> str | None:
        answered = anyio.Event()
        outcome: list[str | None] = []

        def done(reason: str | None) -> None:
            outcome.append(reason)
            answered.set()

        storage.probe(check, done)
        with anyio.move_on_after(timeout):
            await answered.wait()
        if not outcome:
            return f"the database did not answer within {timeout:g} s"
        reason = outcome[0]
        return None if reason is None else f"the database failed a read ({reason})"

    return ask


def redis_check(broker: RedisBroker, timeout: float) -> StoreCheck:
    """A PING from a worker thread within ``timeout`` seconds, and the subscriber's connection up."""

    async def ask() -> str | None:
        failed = "Redis does not answer"
        with anyio.move_on_after(timeout):
            try:
                await anyio.to_thread.run_sync(broker.log.ping, abandon_on_cancel=True)
            except (RedisError, OSError) as error:
                logger.debug("readiness: Redis %s: %s", broker.log.name, error)
            else:
                failed = ""
        if failed:
            return failed
        if not broker.listening:
            return "Redis's subscriber connection is down"
        return None

    return ask
