"""The trio connector: `connect` keeps a member of a room connected over trio-websocket.

    async with connect("ws://127.0.0.1:8001/", name="Ada") as chat:
        print(chat.join_key, chat.user_id)
        talk = await chat.send("hello")          # once the room stored it: talk.offset, talk.id
        async for event in chat:                 # Talk, MemberJoined, Edited, ... (chatclient.events)
            ...

What it does, and what `Chat` offers: `chatclient.session`.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection, wrap_client_stream

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
    one_exception,
    session,
)

__all__ = ["Chat", "NotConnected", "SendRefused", "SessionEnded", "connect"]


class _Socket:
    def __init__(self, connection: WebSocketConnection) -> None:
        self._connection = connection

    async def send(self, text: str) -> None:
        try:
            await self._connection.send_message(text)
        except ConnectionClosed as closed:
            raise _closed(closed) from None

    async def receive(self) -> str:
        try:
            message = await self._connection.get_message()
        except ConnectionClosed as closed:
            raise _closed(closed) from None
        return message if isinstance(message, str) else message.decode("utf-8", "replace")


def _closed(closed: ConnectionClosed) -> Closed:
    reason = closed.reason
    return Closed(reason.code, reason.reason or "") if reason is not None else Closed(None)


_CANNOT_OPEN = (HandshakeError, ConnectionClosed, trio.BrokenResourceError, trio.TooSlowError, OSError)
"""What opening a WebSocket raises when it cannot: refused, reset, a failed TLS or WebSocket handshake, a timeout."""


@asynccontextmanager
async def _open(url: str, ssl_context: ssl.SSLContext | None) -> AsyncIterator[_Socket]:
    """A WebSocket to ``url``, kept alive with pings, its TCP connection closed on the way out whoever closed the
    WebSocket first.

    (Not `trio_websocket.open_websocket_url`: after a close the server began, a client of trio-websocket 0.12
    leaves its TCP socket open until the collector finds it; and it does not ping.)
    """
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or "localhost"
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    stream: trio.SocketStream | trio.SSLStream[trio.SocketStream] | None = None
    try:
        with one_exception():
            async with trio.open_nursery() as reader:
                try:
                    with trio.fail_after(OPEN_TIMEOUT):
                        if secure:
                            context = ssl_context or ssl.create_default_context()
                            stream = await trio.open_ssl_over_tcp_stream(
                                host, port, ssl_context=context, https_compatible=True
                            )
                        else:
                            stream = await trio.open_tcp_stream(host, port)
                        connection = await wrap_client_stream(
                            reader, stream, parts.netloc, resource, max_message_size=MAX_MESSAGE_BYTES
                        )
                except _CANNOT_OPEN as error:
                    raise CannotConnect(str(error) or type(error).__name__) from error
                reader.start_soon(_keep_alive, connection, stream)
                try:
                    yield _Socket(connection)
                finally:
                    with trio.move_on_after(LEAVE_TIMEOUT) as leaving:
                        leaving.shield = True
                        await connection.aclose()
                    reader.cancel_scope.cancel()
    finally:
        if stream is not None:
            await trio.aclose_forcefully(stream)


async def _keep_alive(connection: WebSocketConnection, stream: trio.abc.Stream) -> None:
    """Ping every `PING_INTERVAL`; a connection with no pong within `PING_TIMEOUT` is dead: end it (the reader
    then finds it closed, and the session reconnects)."""
    while True:
        await trio.sleep(PING_INTERVAL)
        with trio.move_on_after(PING_TIMEOUT):
            await connection.ping()
            continue
        await trio.aclose_forcefully(stream)
        return


connect = functools.partial(session, _open)
"""``connect(url, join_key=None, *, name=None, auth=None, token=None, after=0, ssl_context=None)``: join a room
and stay in it for the block (`chatclient.session.session`)."""
