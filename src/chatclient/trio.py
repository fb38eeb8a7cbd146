"""The trio connector: `connect` keeps a `Client` connected over trio-websocket, reconnecting on its own.

    async with connect("ws://127.0.0.1:8001/", name="Ada") as chat:
        print(chat.join_key, chat.user_id)
        talk = await chat.send("hello")          # once the room stored it: talk.offset, talk.id
        async for event in chat:                 # Talk, MemberJoined, Edited, ... (chatclient.events)
            ...

A background task owns the connection: it sends the client's hello, feeds
what comes to the `Client`, resends what the room has not stored after each
join, and reconnects after a drop with a growing pause (0.5 s doubling to
10 s, with jitter) until the session ends (`Ended`: removed, the room ended)
or the block exits.
"""

from __future__ import annotations

import json
import math
import random
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection, wrap_client_stream

from .client import Client, State, Stored
from .events import Ended, Event, History, Joined, Talk

FIRST_PAUSE, LONGEST_PAUSE = 0.5, 10.0
"""Seconds between reconnection attempts: the first, and the most it doubles to (each with jitter)."""
LEAVE_TIMEOUT = 5.0
"""Seconds leaving waits for the server to answer our close."""


class SendRefused(Exception):
    """The room refused a talk (too long, too fast, ...): the message says why."""


class SessionEnded(Exception):
    """The session is over (`Ended`): we were removed, the room was ended, or it could not be joined."""


class Chat:
    """A connected member of one room (`connect`'s): send talks and requests, read the room's news."""

    def __init__(self, client: Client, url: str, ssl_context: ssl.SSLContext | None) -> None:
        self.client = client
        self.joined: Joined | None = None
        """The latest `Joined` (after each reconnect, a new one)."""
        self.ended: Ended | None = None
        self._url, self._ssl = url, ssl_context
        self._news_in, self._news_out = trio.open_memory_channel[Event](math.inf)
        self._waiting: dict[str, trio.Event] = {}
        self._stored: dict[str, Stored] = {}
        self._history: trio.MemorySendChannel[History] | None = None
        self._history_lock = trio.Lock()
        self._socket: WebSocketConnection | None = None
        self._leaving = False
        self._started = False
        self._waiting_scope = trio.CancelScope()
        self._stopped = trio.Event()

    @property
    def join_key(self) -> str | None:
        return self.client.join_key

    @property
    def user_id(self) -> int | None:
        return self.client.user_id

    @property
    def token(self) -> str | None:
        return self.client.token

    async def send(self, text: str) -> Talk:
        """Say ``text``; returns the talk once the room stored it (`SendRefused` if it refused it)."""
        self._check()
        talk_id, event = self.client.talk(text)
        done = self._waiting[talk_id] = trio.Event()
        if event is not None:
            await self._send(event)
        await done.wait()
        stored = self._stored.pop(talk_id, None)
        if stored is None:
            raise SessionEnded(self.ended.reason if self.ended is not None else "the session ended")
        if stored.talk is None:
            raise SendRefused(stored.refusal or "refused")
        return stored.talk

    async def request(self, kind: str, **fields: Any) -> None:
        """Send a request of version 2 (``name``, ``edit``, ``delete``, ``room``, ``lock``, ``remove``, ``role``,
        ``end``); what it changes comes as news."""
        self._check()
        await self._send(self.client.request(kind, **fields))

    def _check(self) -> None:
        if self.ended is not None:
            raise SessionEnded(self.ended.reason)

    async def history(self, before: int | None = None, limit: int = 50) -> History:
        """Older talks: at most ``limit`` with offsets below ``before`` (None: the newest), oldest first."""
        fields: dict[str, Any] = {"limit": limit} if before is None else {"before": before, "limit": limit}
        self._check()
        async with self._history_lock:
            send, receive = trio.open_memory_channel[History](1)
            self._history = send
            await self._send(self.client.request("history", **fields))
            return await receive.receive()

    async def sent(self) -> None:
        """Wait until the room has stored every talk sent so far."""
        while self.client.pending:
            await trio.sleep(0.05)
            if self.ended is not None:
                raise SessionEnded(self.ended.reason)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._news_out.__aiter__()

    async def _send(self, event: dict[str, Any]) -> None:
        if self._socket is None:
            raise trio.BrokenResourceError("not connected: the request is not sent (talks are, once back)")
        await self._socket.send_message(json.dumps(event))

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Stay connected until the session ends or `leave` is called; started (``task_status``) once first joined.

        Only this task touches the connection: `leave` cancels what it waits on (``_waiting_scope``), and it
        closes the WebSocket itself (a close the server answers) on the way out.
        """
        pause = FIRST_PAUSE
        try:
            while self.ended is None and not self._leaving:
                if await self._connect_once(task_status):
                    pause = FIRST_PAUSE
                if self.ended is None and not self._leaving:
                    self.client.connection_lost()
                    with self._cancellable():
                        await trio.sleep(pause * random.uniform(0.5, 1.5))
                    pause = min(pause * 2, LONGEST_PAUSE)
            if self.ended is not None and not self._started:
                raise SessionEnded(self.ended.reason)
        finally:
            self._stopped.set()

    async def _connect_once(self, task_status: trio.TaskStatus[None]) -> bool:
        """One connection, until it drops; whether it joined the room."""
        joined = False
        try:
            async with self._connection() as socket:
                self._socket = socket
                await socket.send_message(json.dumps(self.client.hello()))
                with self._cancellable():  # (leaving ends the wait; the connection closes as it ends)
                    while self.ended is None and self.client.state is not State.IDLE:  # (IDLE: a join refused)
                        for news in self.client.receive(json.loads(await socket.get_message())):
                            if isinstance(news, Joined):
                                joined = True
                                self.joined = news
                                for event in self.client.resend():
                                    await socket.send_message(json.dumps(event))
                                if not self._started:
                                    self._started = True
                                    task_status.started()
                            self._take(news)
        except ConnectionClosed as closed:
            reason = closed.reason
            ended = self.client.closed(*((reason.code, reason.reason or "") if reason is not None else (None, "")))
            if ended is not None:
                self._take(ended)
        except (HandshakeError, OSError, trio.BrokenResourceError) as error:
            if not self._started:
                raise SessionEnded(f"could not connect to {self._url}: {error}") from error
        finally:
            self._socket = None
        return joined

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[WebSocketConnection]:
        """A WebSocket to the URL, its TCP connection closed on the way out whoever closed the WebSocket first.

        (Not `trio_websocket.open_websocket_url`: after a close the server began, a client of trio-websocket 0.12
        leaves its TCP socket open until the collector finds it.)
        """
        parts = urlsplit(self._url)
        secure = parts.scheme == "wss"
        host = parts.hostname or "localhost"
        port = parts.port or (443 if secure else 80)
        resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if secure:
            context = self._ssl or ssl.create_default_context()
            stream: trio.SocketStream | trio.SSLStream[trio.SocketStream] = await trio.open_ssl_over_tcp_stream(
                host, port, ssl_context=context, https_compatible=True
            )
        else:
            stream = await trio.open_tcp_stream(host, port)
        try:
            async with trio.open_nursery() as reader:
                socket = await wrap_client_stream(reader, stream, parts.netloc, resource)
                try:
                    yield socket
                finally:
                    with trio.move_on_after(LEAVE_TIMEOUT) as leaving:
                        leaving.shield = True
                        await socket.aclose()
                    reader.cancel_scope.cancel()
        except BaseExceptionGroup as group:  # (what the block raised, as itself)
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            await trio.aclose_forcefully(stream)

    def _cancellable(self) -> trio.CancelScope:
        """A scope around what `leave` interrupts: waiting for the server's next event, or to reconnect."""
        self._waiting_scope = trio.CancelScope()
        if self._leaving:
            self._waiting_scope.cancel()
        return self._waiting_scope

    async def leave(self) -> None:
        """Close the connection (1000) and stay closed: what is not stored by then is not sent."""
        self._leaving = True
        self._waiting_scope.cancel()
        with trio.move_on_after(LEAVE_TIMEOUT):
            await self._stopped.wait()

    def _take(self, news: Event | Stored) -> None:
        if isinstance(news, Stored):
            self._stored[news.id] = news
            waiting = self._waiting.pop(news.id, None)
            if waiting is not None:
                waiting.set()
            return
        if isinstance(news, History) and self._history is not None:
            self._history.send_nowait(news)
            self._history = None
            return
        self._news_in.send_nowait(news)
        if isinstance(news, Ended):
            self.ended = news
            for waiting in self._waiting.values():
                waiting.set()  # (their talks are not stored: send() says so)
            self._news_in.close()  # (the application's loop ends after the Ended)


@asynccontextmanager
async def connect(
    url: str,
    join_key: str | None = None,
    *,
    name: str | None = None,
    auth: str | None = None,
    token: str | None = None,
    after: int = 0,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Chat]:
    """Join the room ``join_key`` (None: start one) at ``url`` and stay in it for the block.

    Returns once joined; `SessionEnded` if the room cannot be joined (not found, locked, we were banned) or
    the server cannot be reached. ``token`` and ``after`` resume a user of an earlier session.
    """
    chat = Chat(Client(join_key, name=name, auth=auth, token=token, after=after), url, ssl_context)
    try:
        async with trio.open_nursery() as tasks:
            await tasks.start(chat.run)
            try:
                yield chat
            finally:
                await chat.leave()
                tasks.cancel_scope.cancel()
                chat._news_in.close()
    except BaseExceptionGroup as group:  # (the block's own exception, or the connection's, as itself)
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
