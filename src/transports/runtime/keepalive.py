"""Keepalive for every connection of a server: one task pings them all and drops those that stay silent."""

from __future__ import annotations

from collections.abc import Mapping

import anyio

from chatcore import ConnectionId

from ..config import MIN_TIMER_PERIOD
from ..websocket.peer import Peer


async def keepalive(peers: Mapping[ConnectionId, Peer], interval: float, answer_within: float) -> None:
    """Ping every peer every ``interval`` seconds; drop those that leave one unanswered for ``answer_within``.

    One task for all connections, checking a few times per period. A
    client is judged by what it sent, not by how late we got round to
    reading it: anything received after the ping answers it, and so do
    bytes still waiting in the kernel, so that an overloaded server does
    not drop clients whose pongs wait behind its own backlog.
    """
    if interval <= 0:
        return
    while True:
        await anyio.sleep(max(min(interval, answer_within) / 4, MIN_TIMER_PERIOD))
        now = anyio.current_time()
        for peer in list(peers.values()):
            if peer.ping_sent_at is not None:
                if peer.heard:
                    peer.ping_sent_at = None
                elif now - peer.ping_sent_at >= answer_within and not peer.data_waiting():
                    peer.drop(f"nothing received within {answer_within:g} s of a ping")
            elif now - peer.last_ping_at >= interval:
                peer.ping(now)

