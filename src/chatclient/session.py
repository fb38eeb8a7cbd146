"""`Chat`: a `Client` kept connected, on any event loop anyio runs on (trio, asyncio).

The connectors (``chatclient.trio``, ``chatclient.asyncio``) give it only a
WebSocket (`Opener`); everything else is here. One task (`Chat.run`) owns
the connection: it sends the client's hello, feeds what comes to the
`Client`, resends what the room has not stored after each join, and
reconnects after a drop with a growing pause (0.5 s doubling to 10 s, with
jitter) until the session ends (`Ended`: removed, the room ended) or the
application leaves. `leave` interrupts only what that task waits on, so the
task itself closes the WebSocket, and the server answers the close.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectSendStream

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


class Closed(Exception):
    """The WebSocket closed (a connector raises it from `Socket.receive` and `Socket.send`)."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code, self.reason = code, reason


class CannotConnect(Exception):
    """No WebSocket could be opened (refused, no route, a handshake answered with an HTTP error)."""


class Socket(Protocol):
    """A connector's WebSocket: text messages both ways."""

    async def send(self, text: str) -> None: ...

    async def receive(self) -> str: ...


Opener = Callable[[str, ssl.SSLContext | None], AbstractAsyncContextManager[Socket]]
"""How a connector opens a WebSocket to a URL; closing the context closes it (our close, the server's answer)."""


class Chat:
    """A connected member of one room (`connect`'s): send talks and requests, read the room's news."""

    def __init__(self, client: Client, url: str, ssl_context: ssl.SSLContext | None, opener: Opener) -> None:
        self.client = client
        self.joined: Joined | None = None
        """The latest `Joined` (after each reconnect, a new one)."""
        self.ended: Ended | None = None
        self._url, self._ssl, self._open = url, ssl_context, opener
        self._news_in, self._news_out = anyio.create_memory_object_stream[Event](math.inf)
        self._waiting: dict[str, anyio.Event] = {}
        self._stored: dict[str, Stored] = {}
        self._history: MemoryObjectSendStream[History] | None = None
        self._history_lock = anyio.Lock()
        self._socket: Socket | None = None
        self._leaving = False
        self._started = False
        self._waiting_scope = anyio.CancelScope()
        self._stopped = anyio.Event()

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
        done = self._waiting[talk_id] = anyio.Event()
        if event is not None and self._socket is not None:
            with contextlib.suppress(Closed):  # (the connection dropped: the talk goes again after the next join)
                await self._socket.send(_json(event))
        await done.wait()
        stored = self._stored.pop(talk_id, None)
        if stored is None:
            raise SessionEnded(self.ended.reason if self.ended is not None else "the session ended")
        if stored.talk is None:
            raise SendRefused(stored.refusal or "refused")
        return stored.talk

    async def request(self, kind: str, **fields: Any) -> None:
        """Send a request of version 2 (``name``, ``edit``, ``delete``, ``room``, ``lock``, ``remove``, ``role``,
        ``end``), with its fields as the protocol names them; what it changes comes as news."""
        self._check()
        await self._send(self.client.request(kind, **fields))

    async def history(self, before: int | None = None, limit: int = 50) -> History:
        """Older talks: at most ``limit`` with offsets below ``before`` (None: the newest), oldest first."""
        self._check()
        fields: dict[str, Any] = {"limit": limit} if before is None else {"before": before, "limit": limit}
        async with self._history_lock:
            send, receive = anyio.create_memory_object_stream[History](1)
            with send, receive:
                self._history = send
                await self._send(self.client.request("history", **fields))
                return await receive.receive()

    async def sent(self) -> None:
        """Wait until the room has stored every talk sent so far."""
        while self.client.pending:
            self._check()
            await anyio.sleep(0.05)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._news_out.__aiter__()

    async def leave(self) -> None:
        """Close the connection (1000) and stay closed: what is not stored by then is not sent."""
        self._leaving = True
        self._waiting_scope.cancel()
        with anyio.move_on_after(LEAVE_TIMEOUT):
            await self._stopped.wait()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Stay connected until the session ends or `leave` is called; started (``task_status``) once joined."""
        pause = FIRST_PAUSE
        try:
            while self.ended is None and not self._leaving:
                if await self._connect_once(task_status):
                    pause = FIRST_PAUSE
                if self.ended is None and not self._leaving:
                    self.client.connection_lost()
                    with self._cancellable():
                        await anyio.sleep(pause * random.uniform(0.5, 1.5))
                    pause = min(pause * 2, LONGEST_PAUSE)
            if self.ended is not None and not self._started:
                raise SessionEnded(self.ended.reason)
        finally:
            self._stopped.set()

    async def _connect_once(self, task_status: anyio.abc.TaskStatus[None]) -> bool:
        """One connection, until it drops; whether it joined the room."""
        joined = False
        try:
            async with self._open(self._url, self._ssl) as socket:
                self._socket = socket
                await socket.send(_json(self.client.hello()))
                with self._cancellable():  # (leaving ends the wait; the connection closes as it ends)
                    while self.ended is None and self.client.state is not State.IDLE:  # (IDLE: a join refused)
                        for news in self.client.receive(_parse(await socket.receive())):
                            if isinstance(news, Joined):
                                joined = True
                                self.joined = news
                                for event in self.client.resend():
                                    await socket.send(_json(event))
                                if not self._started:
                                    self._started = True
                                    task_status.started()
                            self._take(news)
        except Closed as closed:
            ended = self.client.closed(closed.code, closed.reason)
            if ended is not None:
                self._take(ended)
        except CannotConnect as error:
            if not self._started:
                raise SessionEnded(f"could not connect to {self._url}: {error}") from error
        finally:
            self._socket = None
        return joined

    def _cancellable(self) -> anyio.CancelScope:
        """A scope around what `leave` interrupts: waiting for the server's next event, or to reconnect."""
        self._waiting_scope = anyio.CancelScope()
        if self._leaving:
            self._waiting_scope.cancel()
        return self._waiting_scope

    def _check(self) -> None:
        if self.ended is not None:
            raise SessionEnded(self.ended.reason)

    async def _send(self, event: dict[str, Any]) -> None:
        if self._socket is None:
            raise anyio.BrokenResourceError("not connected: the request is not sent (talks are, once back)")
        await self._socket.send(_json(event))

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
async def session(
    opener: Opener,
    url: str,
    join_key: str | None = None,
    *,
    name: str | None = None,
    auth: str | None = None,
    token: str | None = None,
    after: int = 0,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[Chat]:
    """Join the room ``join_key`` (None: start one) at ``url`` and stay in it for the block, over ``opener``'s
    WebSockets (each connector's ``connect`` is this with its own).

    Returns once joined; `SessionEnded` if the room cannot be joined (not found, locked, we were banned) or the
    server cannot be reached. ``token`` and ``after`` resume a user of an earlier session.
    """
    chat = Chat(Client(join_key, name=name, auth=auth, token=token, after=after), url, ssl_context, opener)
    try:
        async with anyio.create_task_group() as tasks:
            await tasks.start(chat.run)
            try:
                yield chat
            finally:
                await chat.leave()
                tasks.cancel_scope.cancel()
    except BaseExceptionGroup as group:  # (the block's own exception, or the connection's, as itself)
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        chat._news_in.close()
        chat._news_out.close()


def _json(event: dict[str, Any]) -> str:
    return json.dumps(event)


def _parse(text: str) -> dict[str, Any]:
    event = json.loads(text)
    return event if isinstance(event, dict) else {}
