"""The asyncio connector: `connect` keeps a member of a room connected over python-websockets.

    async with connect("ws://127.0.0.1:8001/", name="Ada") as chat:
        talk = await chat.send("hello")
        async for event in chat:
            ...

The same API as ``chatclient.trio``; what it does, and what `Chat` offers: `chatclient.session`.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as websocket
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from .session import (
    LEAVE_TIMEOUT,
    MAX_MESSAGE_BYTES,
    OPEN_TIMEOUT,
    PING_INTERVAL,
    PING_TIMEOUT,
    CannotConnect,
    Chat,
    Closed,
    NotConnected,
    SendRefused,
    SessionEnded,
    session,
)

__all__ = ["Chat", "NotConnected", "SendRefused", "SessionEnded", "connect"]


class _Socket:
    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection

    async def send(self, text: str) -> None:
        try:
            await self._connection.send(text)
        except ConnectionClosed as closed:
            raise _closed(closed) from None

    async def receive(self) -> str:
        try:
            message = await self._connection.recv()
        except ConnectionClosed as closed:
            raise _closed(closed) from None
        return message if isinstance(message, str) else message.decode("utf-8", "replace")


def _closed(closed: ConnectionClosed) -> Closed:
    frame = closed.rcvd
    return Closed(frame.code, frame.reason) if frame is not None else Closed(None)


@asynccontextmanager
async def _open(url: str, ssl_context: ssl.SSLContext | None) -> AsyncIterator[_Socket]:
    try:
        options = {"close_timeout": LEAVE_TIMEOUT, "open_timeout": OPEN_TIMEOUT, "ping_interval": PING_INTERVAL,
                   "ping_timeout": PING_TIMEOUT, "max_size": MAX_MESSAGE_BYTES, "proxy": None}
        if ssl_context is not None and url.startswith("wss:"):
            connection = await websocket(url, ssl=ssl_context, **options)  # type: ignore[arg-type]
        else:
            connection = await websocket(url, **options)  # type: ignore[arg-type]
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as error:
        raise CannotConnect(str(error) or type(error).__name__) from error
    try:
        yield _Socket(connection)
    finally:
        await connection.close()


connect = functools.partial(session, _open)
"""``connect(url, join_key=None, *, name=None, auth=None, token=None, after=0, ssl_context=None)``: join a room
and stay in it for the block (`chatclient.session.session`)."""
