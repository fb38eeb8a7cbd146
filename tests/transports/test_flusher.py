"""The flusher's two ways (`transports.websocket.socketpeer.Flusher`): write at once while peers get about one frame a
round, queue and write together once frames pile up; each round's way chosen from what the last one saw."""

from __future__ import annotations

import threading
from typing import Any, cast

import anyio
import pytest
import trio
import trio.lowlevel
import trio.testing

from transports.websocket.socketpeer import Flusher, SocketPeer


class Queued:
    """A peer the flusher writes: ``frames`` frames queued each time."""

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.flushed = 0

    def flush(self) -> int:
        self.flushed += 1
        return self.frames


def written_at_once(flusher: Flusher, writes: int, repeats: int) -> None:
    """What `SocketPeer.send_frame` tells the flusher of ``writes`` frames for empty outboxes, ``repeats`` of them
    for peers written at once this round already."""
    flusher.writes += writes
    flusher.repeats += repeats
    if not flusher.woken:
        flusher.wake()


async def one_round(flusher: Flusher) -> None:
    """Let the flusher run the round it was woken for (and nothing more)."""
    before = flusher.round
    await trio.testing.wait_all_tasks_blocked()
    assert flusher.round == before + 1


@pytest.mark.trio
async def test_direct_writes_stop_once_peers_get_several_frames_a_round_and_come_back_when_they_do_not() -> None:
    flusher = Flusher()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(flusher.run)
        assert flusher.direct  # (a new server: nothing in flight)

        written_at_once(flusher, 22, 2)  # a few repeats in a round: still direct
        await one_round(flusher)
        assert flusher.direct

        written_at_once(flusher, 20, 10)  # half the peers written twice this round: queue instead
        await one_round(flusher)
        assert not flusher.direct

        busy = [Queued(3) for _ in range(5)]  # frames pile up: stay queued
        for peer in busy:
            flusher.mark(cast(SocketPeer, peer))
        await one_round(flusher)
        assert not flusher.direct
        assert [peer.flushed for peer in busy] == [1] * 5

        quiet: list[Any] = [Queued(1) for _ in range(5)]  # one frame a peer: direct again
        for peer in quiet:
            flusher.mark(peer)
        await one_round(flusher)
        assert flusher.direct
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_round_is_woken_once_however_many_peers_are_written() -> None:
    flusher = Flusher()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(flusher.run)
        await trio.testing.wait_all_tasks_blocked()
        start = flusher.round
        for _ in range(100):
            written_at_once(flusher, 1, 0)
        await one_round(flusher)  # (one round for them all, and none without work)
        assert flusher.round == start + 1
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_under_trio_a_turn_is_a_pass_of_the_scheduler_whether_or_not_the_flusher_ran() -> None:
    # Frames for one peer a pass apart were written a pass apart: only those that meet in one pass pile up.
    flusher = Flusher()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(flusher.run)
        await trio.testing.wait_all_tasks_blocked()
        rounds, turn = flusher.round, flusher.turn
        await trio.lowlevel.checkpoint()
        await trio.lowlevel.checkpoint()
        assert flusher.turn >= turn + 2
        assert flusher.round == rounds  # (not woken: no round ran)
        nursery.cancel_scope.cancel()
    turn = flusher.turn
    await trio.lowlevel.checkpoint()
    assert flusher.turn == turn  # a flusher that stopped counts no more


def test_elsewhere_a_turn_is_a_round() -> None:
    async def rounds() -> list[tuple[int, int]]:
        flusher = Flusher()
        seen = []
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(flusher.run)
            await anyio.sleep(0.01)
            for _ in range(2):
                written_at_once(flusher, 1, 0)
                await anyio.sleep(0.01)
                seen.append((flusher.round, flusher.turn))
            tasks.cancel_scope.cancel()
        return seen

    seen: list[list[tuple[int, int]]] = []
    # (a thread of its own: no event loop of the test runner's is running there)
    thread = threading.Thread(target=lambda: seen.append(anyio.run(rounds, backend="asyncio")))
    thread.start()
    thread.join(timeout=30)
    assert seen == [[(1, 1), (2, 2)]]
