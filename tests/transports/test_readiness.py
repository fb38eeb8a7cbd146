"""Readiness on one epoll of our own (`transports.net.readiness`): each socket registered once, edge-triggered,
and no arrival missed: while a reader waits, before it waits, beyond a full buffer, on a reused descriptor."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import trio
import trio.testing

from transports.net.rawsocket import RawSocket
from transports.net.readiness import current_readiness


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


def raw(sock: socket.socket) -> RawSocket:
    return RawSocket(sock, "127.0.0.1", 1, current_readiness().wait_readable)


@pytest.mark.trio
async def test_a_waiting_reader_wakes_when_data_arrives(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    received: list[bytes] = []

    async def reader() -> None:
        received.append(await raw(ours).receive(100))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert not received  # nothing came yet: it waits
        theirs.send(b"hello")
    assert received == [b"hello"]


@pytest.mark.trio
async def test_what_arrives_while_nobody_waits_is_not_missed(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    reader = raw(ours)
    theirs.send(b"one")
    assert await reader.receive(100) == b"one"
    theirs.send(b"two")  # the edge comes while nobody waits
    await trio.testing.wait_all_tasks_blocked()
    with trio.fail_after(5):
        assert await reader.receive(100) == b"two"


@pytest.mark.trio
async def test_a_read_that_fills_its_buffer_reads_again_before_waiting(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    reader = raw(ours)
    theirs.sendall(b"x" * 2500)  # one arrival, one edge; three reads
    with trio.fail_after(5):
        assert [len(await reader.receive(1000)) for _ in range(3)] == [1000, 1000, 500]


@pytest.mark.trio
async def test_a_cancelled_wait_leaves_the_socket_free_to_wait_for_again(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    reader = raw(ours)
    with trio.move_on_after(0.05) as waited:
        await reader.receive(100)
    assert waited.cancelled_caught
    theirs.send(b"later")
    with trio.fail_after(5):
        assert await reader.receive(100) == b"later"


@pytest.mark.trio
async def test_two_readers_of_one_socket_are_refused(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, _ = pair
    readiness = current_readiness()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(readiness.wait_readable, ours)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await readiness.wait_readable(ours)
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_a_descriptor_closed_and_reused_by_a_new_socket_is_registered_anew() -> None:
    first, first_peer = socket.socketpair()
    first.setblocking(False)
    reader = raw(first)
    first_peer.send(b"a")
    assert await reader.receive(10) == b"a"
    fd = first.fileno()
    first.close()
    first_peer.close()
    spare: list[socket.socket] = []
    try:
        second, second_peer = socket.socketpair()
        while second.fileno() != fd and len(spare) < 64:  # (descriptors are reused lowest first)
            spare += [second, second_peer]
            second, second_peer = socket.socketpair()
        assert second.fileno() == fd
        second.setblocking(False)
        second_peer.send(b"b")
        with trio.fail_after(5):
            assert await raw(second).receive(10) == b"b"
        second.close()
        second_peer.close()
    finally:
        for sock in spare:
            sock.close()


@pytest.mark.trio
async def test_an_end_that_came_with_the_last_data_is_found_after_reading_it(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    reader = raw(ours)
    theirs.send(b"half a request")
    theirs.shutdown(socket.SHUT_WR)  # data and FIN, one edge
    await trio.testing.wait_all_tasks_blocked()
    with trio.fail_after(5):
        assert await reader.receive(100) == b"half a request"
        assert await reader.receive(100) == b""


@pytest.mark.trio
async def test_a_reader_that_reads_inline_stays_asleep_until_its_read_says_wake(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    ours, theirs = pair
    reader = raw(ours)
    read: list[bytes] = []
    woken: list[bool] = []

    def inline() -> bool:
        data = reader.receive_now(100)
        if data:
            read.append(data)
        return data != b"stop"

    async def wait() -> None:
        await reader.wait_readable(inline)
        woken.append(True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        for message in (b"one", b"two", b"three"):
            await trio.testing.wait_all_tasks_blocked()
            theirs.send(message)
            await trio.testing.wait_all_tasks_blocked()  # (the readiness task has read it)
            assert read[-1] == message
        assert read == [b"one", b"two", b"three"]
        assert not woken  # each was read while the reader slept
        theirs.send(b"stop")
    assert woken == [True]


@pytest.mark.trio
async def test_an_inline_read_that_raises_raises_in_the_reader(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    reader = raw(ours)

    def inline() -> bool:
        raise ValueError("a bug in the read")

    theirs.send(b"x")
    await trio.testing.wait_all_tasks_blocked()
    reader.receive_now(100)  # (the edge is consumed: the next one comes while the reader waits)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            async def later() -> None:
                await trio.testing.wait_all_tasks_blocked()
                theirs.send(b"y")

            nursery.start_soon(later)
            with pytest.raises(ValueError, match="a bug in the read"):
                await reader.wait_readable(inline)


@pytest.mark.trio
async def test_the_end_wakes_an_inline_reader_to_read_it_itself(pair: tuple[socket.socket, socket.socket]) -> None:
    ours, theirs = pair
    reader = raw(ours)
    inline_calls: list[int] = []

    def inline() -> bool:
        inline_calls.append(1)
        return True

    async def close_later() -> None:
        await trio.testing.wait_all_tasks_blocked()
        theirs.shutdown(socket.SHUT_WR)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(close_later)
            await reader.wait_readable(inline)
    assert not inline_calls
    assert reader.receive_now(100) == b""
