"""Draining on SIGTERM: every client told to reconnect elsewhere, a few at a time, within ``--drain-timeout``.

In order, from the signal:

1. readiness turns 503 ("draining"), the WebSocket port stops accepting, and
   a handshake that still arrives (on the page's port, or one accepted just
   before) is refused with 503; the page's port keeps answering, so that
   probes see the 503 rather than a refused connection, until the end;
2. what clients sent so far is stored and delivered (the store flushed);
3. every client gets close **1012** ("service restart"), in batches spread
   over up to a third of the drain timeout (`close_spread`), so that
   thousands of clients do not come back to the other servers at once. 1012
   rather than 1001 ("going away", which the quick stop on SIGINT sends):
   1001 says this endpoint is leaving, 1012 that the service restarts and
   a client should come back, here or elsewhere;
4. each closed client has ``--close-timeout`` to answer its close (then it
   is reset); whoever is still connected near the deadline is cut;
5. what arrived meanwhile is stored, and the process exits 0 — within
   ``--drain-timeout`` even if clients never answer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

import anyio

from chatcore import closecodes

from ..net.listener import Listener
from ..runtime.hub import Hub
from .health import Health

logger = logging.getLogger(__name__)

CLOSE_RATE = 1000.0
"""Clients closed per second while draining, unless that would take longer than a third of the drain timeout."""
BATCH_EVERY = 0.1
"""Seconds between two batches of closes."""
REASON = "server restarting: reconnect"


def close_spread(clients: int, timeout: float) -> tuple[int, int]:
    """How to close ``clients``: (batches, clients per batch), a batch every `BATCH_EVERY` seconds.

    At `CLOSE_RATE` clients a second, but over a third of ``timeout`` at most:
    the rest of it is for their closing handshakes and the store.
    """
    if clients <= 0:
        return 0, 0
    seconds = min(clients / CLOSE_RATE, timeout / 3)
    size = math.ceil(clients / max(1, min(clients, math.floor(seconds / BATCH_EVERY) + 1)))
    return math.ceil(clients / size), size


async def drain(
    hub: Hub, health: Health, ws: Listener, within: float, flush_store: Callable[[], Awaitable[None]] | None
) -> None:
    """Close every connection with 1012 in batches and store what they sent; return within ``within`` seconds."""
    started = anyio.current_time()
    deadline = started + within
    margin = min(1.0, within / 10)  # for the store's last writes, and the process's exit
    health.stop("draining")
    ws.stop_accepting()
    hub.begin_shutdown(closecodes.SERVICE_RESTART, REASON)
    if flush_store is not None:
        with anyio.CancelScope(deadline=started + within / 4):
            await flush_store()  # what members sent so far reaches them before their close
    connections = hub.open_connections()
    batches, size = close_spread(len(connections), within)
    logger.info("draining %d connections: close 1012 in %d batches over %.1f s, within %g s in all",
                len(connections), batches, max(0, batches - 1) * BATCH_EVERY, within)
    with anyio.CancelScope(deadline=deadline - margin):
        for first in range(0, len(connections), size or 1):
            if first:
                await anyio.sleep(BATCH_EVERY)
            for connection in connections[first:first + size]:
                hub.close_connection(connection, closecodes.SERVICE_RESTART, REASON)
        await hub.all_closed()
    left = hub.connection_count
    if left:
        logger.info("drain: cutting %d connections that did not finish closing in time", left)
        hub.cut("the drain's time is up")
        with anyio.move_on_after(margin / 4):
            await hub.all_closed()
    if flush_store is not None:
        with anyio.CancelScope(deadline=deadline - margin / 2):
            await flush_store()
    logger.info("drained in %.1f s", anyio.current_time() - started)
