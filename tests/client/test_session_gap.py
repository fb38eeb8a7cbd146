"""chatclient's `Chat` filling a resume's gap, against a scripted server (no network): it sends the pages its
`Client` asks for, the application's requests wait for the fill, and a refused page means a new connection."""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from chatclient import Joined, Talk
from chatclient.session import Closed, Socket, session
from event_loops import run

TIMEOUT = 10.0


class Link:
    """The server's end of one connection."""

    def __init__(self, inbox: MemoryObjectReceiveStream[str], outbox: MemoryObjectSendStream[str]) -> None:
        self._inbox, self._outbox = inbox, outbox

    async def receive(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(await self._inbox.receive())
        return event

    async def send(self, *events: dict[str, Any]) -> None:
        for event in events:
            await self._outbox.send(json.dumps(event))

    def waiting(self) -> int:
        """How many messages from the client are waiting to be read."""
        return self._inbox.statistics().current_buffer_used


class ClientEnd:
    """The client's end (a connector's `Socket`): the server's closing its side reads as a drop."""

    def __init__(self, inbox: MemoryObjectReceiveStream[str], outbox: MemoryObjectSendStream[str]) -> None:
        self._inbox, self._outbox = inbox, outbox

    async def send(self, text: str) -> None:
        try:
            await self._outbox.send(text)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise Closed(1006) from None

    async def receive(self) -> str:
        try:
            return await self._inbox.receive()
        except anyio.EndOfStream:
            raise Closed(1006) from None


class Server:
    """Hands the test each connection the client opens (`links`); a link's receive ends when the client closed it."""

    def __init__(self) -> None:
        self._accepted, self.links = anyio.create_memory_object_stream[Link](10)
        self._streams: list[MemoryObjectSendStream[Any] | MemoryObjectReceiveStream[Any]] = [
            self._accepted, self.links
        ]

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for stream in self._streams:
            stream.close()

    @asynccontextmanager
    async def open(self, url: str, context: ssl.SSLContext | None) -> AsyncIterator[Socket]:
        to_client, from_server = anyio.create_memory_object_stream[str](100)
        to_server, from_client = anyio.create_memory_object_stream[str](100)
        self._streams += [to_client, from_server, to_server, from_client]
        await self._accepted.send(Link(from_client, to_client))
        try:
            yield ClientEnd(from_server, to_server)
        finally:
            to_server.close()  # (the server's receive ends: the client closed)


def init(offset: int, **fields: Any) -> dict[str, Any]:
    return {"type": "init", "joinKey": "K", "userId": 3, "v": 2, "token": "T" * 32, "name": "Ada", "members": [],
            "resumed": True, "offset": offset, "older": True, "role": "member", **fields}


def talk(offset: int) -> dict[str, Any]:
    return {"type": "talk", "payload": f"t{offset}", "userId": 1, "time": 1.5, "offset": offset, "name": None}


def page(before: int, first: int) -> dict[str, Any]:
    return {"type": "history", "before": before, "talks": [talk(o) for o in range(first, before)], "older": True}


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_the_gap_goes_first_and_the_applications_requests_wait_for_it(backend: str) -> None:
    async def main() -> None:
        with Server() as server, anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tasks:

                async def serve() -> None:
                    link = await server.links.receive()
                    assert (await link.receive())["after"] == 1
                    await link.send(init(11), *(talk(o) for o in range(7, 12)))
                    assert await link.receive() == {"type": "history", "before": 12, "limit": 10}
                    await anyio.sleep(0.2)  # (time for the application's request to go, if it went too soon)
                    assert link.waiting() == 0
                    await link.send(page(12, 2))
                    assert await link.receive() == {"type": "name", "name": "Bo"}  # (after the page only)
                    await link.send(talk(12))

                tasks.start_soon(serve)
                async with session(server.open, "ws://x/", "K", token="T" * 32, after=1) as chat:
                    tasks.start_soon(functools.partial(chat.request, "name", name="Bo"))
                    news = []
                    async for event in chat:
                        news.append(event)
                        if isinstance(event, Talk) and event.offset == 12:
                            break
                    assert isinstance(news[0], Joined)
                    assert not news[0].older
                    assert [t.offset for t in news if isinstance(t, Talk)] == list(range(2, 13))

    run(main, backend)


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_a_refused_page_closes_the_connection_and_the_next_resumes_after_the_last_talk_delivered(
    backend: str,
) -> None:
    async def main() -> None:
        with Server() as server, anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as tasks:

                async def serve() -> None:
                    link = await server.links.receive()
                    await link.receive()
                    await link.send(init(500), *(talk(o) for o in range(496, 501)))
                    assert (await link.receive())["before"] == 202
                    await link.send(page(202, 2))
                    assert (await link.receive())["before"] == 402
                    await link.send({"type": "error", "message": "…", "payload": "…"})
                    with pytest.raises(anyio.EndOfStream):
                        await link.receive()  # (the client closed it)
                    link = await server.links.receive()
                    assert (await link.receive())["after"] == 201
                    await link.send(init(500), *(talk(o) for o in range(496, 501)))
                    assert await link.receive() == {"type": "history", "before": 402, "limit": 200}
                    await link.send(page(402, 202))
                    assert await link.receive() == {"type": "history", "before": 496, "limit": 94}
                    await link.send(page(496, 402))

                tasks.start_soon(serve)
                async with session(server.open, "ws://x/", "K", token="T" * 32, after=1) as chat:
                    offsets = []
                    async for event in chat:
                        if isinstance(event, Talk):
                            offsets.append(event.offset)
                            if event.offset == 500:
                                break
                    assert offsets == list(range(2, 501))
                    assert chat.client.last_offset == 500

    run(main, backend)
