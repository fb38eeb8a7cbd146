"""`Chat`: a `Client` kept connected, on any event loop anyio runs on (trio, asyncio).

The connectors (``chatclient.trio``, ``chatclient.asyncio``) give it only a
WebSocket (`Opener`); everything else is here. One task (`Chat.run`) owns
the connection: it sends the client's hello, feeds what comes to the
`Client`, sends what the client asks for (the pages of a resume's gap),
resends what the room has not stored after each join, and
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
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import anyio
import anyio.abc

from .client import Ask, Client, Retry, State, Stored, encode
from .events import Ended, Event, History, Joined, Refused, Talk

FIRST_PAUSE, LONGEST_PAUSE = 0.5, 10.0
"""Seconds between reconnection attempts: the first, and the most it doubles to (each with jitter)."""
LEAVE_TIMEOUT = 5.0
"""Seconds leaving waits for the server to answer our close."""


class SendRefused(Exception):
    """The room refused a talk or a request (too long, too fast, not allowed, ...): the message says why, for a
    person; ``code`` says what kind of refusal, for a program (``too-long``, ``rate-limited``, ``not-allowed`` …; None:
    refused before it was sent)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class SessionEnded(Exception):
    """The session is over (`Ended`, or we left): removed, the room ended, or it could not be joined."""


class NotConnected(Exception):
    """A request (not a talk: those wait) while the connection is down: send it again once back."""


class Closed(Exception):
    """The WebSocket closed (a connector raises it from `Socket.receive` and `Socket.send`)."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code, self.reason = code, reason


class CannotConnect(Exception):
    """No WebSocket could be opened (refused, no route, a handshake answered with an HTTP error, a timeout)."""


class Socket(Protocol):
    """A connector's WebSocket: text messages both ways."""

    async def send(self, text: str) -> None: ...

    async def receive(self) -> str: ...


Opener = Callable[[str, ssl.SSLContext | None], AbstractAsyncContextManager[Socket]]
"""How a connector opens a WebSocket to a URL; closing the context closes it (our close, the server's answer)."""

OPEN_TIMEOUT = 10.0
"""Seconds a connector waits for a WebSocket to open (TCP, TLS, the handshake)."""
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
"""The largest message a connector takes from the server (a history page of long talks is a few MB)."""
STEADY = 5.0
"""Seconds a connection must last for the next reconnect to start at the shortest pause again."""
PING_INTERVAL, PING_TIMEOUT = 20.0, 20.0
"""A connector pings every PING_INTERVAL seconds; a connection with no pong within PING_TIMEOUT is dead."""
RETRY_PAUSE = 1.0
"""Seconds before a talk the server could not store now is sent again."""


@contextlib.contextmanager
def one_exception() -> Iterator[None]:
    """What a task group raises, as itself when it is one exception (a group of one says nothing more)."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


class _Waiter:
    """One answer a call waits for (a history page), or why it will not come."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.answer: History | None = None
        self.failure: Exception | None = None

    def settle(self, answer: History | None = None, failure: Exception | None = None) -> None:
        if not self.done.is_set():
            self.answer, self.failure = answer, failure
            self.done.set()


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
        self._history: _Waiter | None = None
        self._history_lock = anyio.Lock()
        self._socket: Socket | None = None
        self._ready = False
        """The socket takes new talks: what was pending at the join has been sent again, after the replay."""
        self._filled = anyio.Event()
        """Unset only while a connection's client fills a resume's gap (`Client.filling`)."""
        self._filled.set()
        self._joined_here = False
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
        """Say ``text``; returns the talk once the room stored it (`SendRefused` if it refused it). While the
        connection is down the talk waits, and goes once we are back in the room."""
        self._check()
        try:
            talk_id, event = self.client.talk(text)
        except ValueError as error:
            raise SendRefused(str(error)) from None
        done = self._waiting[talk_id] = anyio.Event()
        if event is not None and self._socket is not None and self._ready:
            with contextlib.suppress(Closed):  # (the connection dropped: the talk goes again after the next join)
                await self._socket.send(encode(event))
        await done.wait()
        stored = self._stored.pop(talk_id, None)
        if stored is None:
            raise SessionEnded(self._end_reason())
        if stored.talk is None:
            raise SendRefused(stored.refusal or "refused", stored.code)
        return stored.talk

    async def request(self, kind: str, **fields: Any) -> None:
        """Send a request of version 2 (``name``, ``edit``, ``delete``, ``room``, ``lock``, ``remove``, ``role``,
        ``end``), with its fields as the protocol names them; what it changes comes as news (a refusal as
        `Refused`). `NotConnected` while the connection is down."""
        self._check()
        await self._after_gap()
        await self._send(kind, fields)

    async def history(self, before: int | None = None, limit: int = 50) -> History:
        """Older talks: at most ``limit`` with offsets below ``before`` (None: the newest), oldest first.
        `SendRefused` if the room refused the request, `NotConnected` if the connection dropped meanwhile."""
        self._check()
        fields: dict[str, Any] = {"limit": limit} if before is None else {"before": before, "limit": limit}
        async with self._history_lock:
            await self._after_gap()
            waiter = self._history = _Waiter()
            try:
                await self._send("history", fields)
                await waiter.done.wait()
            finally:
                self._history = None
            if waiter.answer is None:
                raise waiter.failure or NotConnected("no answer")
            return waiter.answer

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
                began = anyio.current_time()
                if await self._connect_once(task_status) and anyio.current_time() - began >= STEADY:
                    pause = FIRST_PAUSE  # (a connection that drops at once, again and again, waits longer each time)
                if self.ended is None and not self._leaving:
                    self.client.connection_lost()
                    with self._cancellable():
                        await anyio.sleep(pause * random.uniform(0.5, 1.5))
                    pause = min(pause * 2, LONGEST_PAUSE)
            if self.ended is not None and not self._started:
                raise SessionEnded(self.ended.reason)
        finally:
            self._stopped.set()
            self._release()

    async def _connect_once(self, task_status: anyio.abc.TaskStatus[None]) -> bool:
        """One connection, until it drops; whether it joined the room."""
        self._joined_here = False
        try:
            async with self._open(self._url, self._ssl) as socket:
                self._socket, self._ready = socket, False
                await socket.send(encode(self.client.hello()))
                with one_exception():
                    async with anyio.create_task_group() as retries:
                        with self._cancellable():  # (leaving ends the wait; the connection closes as it ends)
                            await self._read(socket, retries, task_status)
                        retries.cancel_scope.cancel()
        except Closed as closed:
            ended = self.client.closed(closed.code, closed.reason)
            if ended is not None:
                self._take(ended)
        except CannotConnect as error:
            if not self._started:
                raise SessionEnded(f"could not connect to {self._url}: {error}") from error
        finally:
            self._socket, self._ready = None, False
            self._filled.set()
            if self._history is not None:
                self._history.settle(failure=NotConnected("the connection dropped before the answer"))
        return self._joined_here

    async def _read(
        self, socket: Socket, retries: anyio.abc.TaskGroup, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        """The room's events, until the session ends or a join is refused for now (the client IDLE again)."""
        while self.ended is None and self.client.state is not State.IDLE:
            for news in self.client.receive(_parse(await socket.receive())):
                if isinstance(news, Ask):
                    await socket.send(encode(news.event))
                    continue
                if isinstance(news, Retry):
                    retries.start_soon(self._send_again, socket, news.id)
                    continue
                if isinstance(news, Joined):
                    self._joined_here = True
                    self.joined = news
                    if self.client.filling:
                        self._filled = anyio.Event()
                    if not self._started:
                        self._started = True
                        task_status.started()
                self._take(news)
            if not self.client.filling:
                self._filled.set()
            if self._joined_here and not self._ready and self._replayed():
                await self._resend(socket)

    def _replayed(self) -> bool:
        """Whether the join's replay, and the gap before it, have been read (our talks stored before a drop are in
        them, not to send again)."""
        if self.client.state is not State.JOINED or self.client.filling:
            return False
        return self.joined is None or self.client.last_offset >= self.joined.offset

    async def _after_gap(self) -> None:
        """Wait while the client fills a resume's gap: its pages go alone (see `Client.filling`)."""
        while self.client.filling and self._socket is not None:
            await self._filled.wait()
        self._check()

    async def _resend(self, socket: Socket) -> None:
        """Send again what the room had not stored at the join, then take new talks (they go after, in order)."""
        sent: set[str] = set()
        while batch := [event for event in self.client.resend() if event["id"] not in sent]:
            for event in batch:
                await socket.send(encode(event))
                sent.add(event["id"])
        self._ready = True

    async def _send_again(self, socket: Socket, talk_id: str) -> None:
        await anyio.sleep(RETRY_PAUSE)
        event = self.client.talk_event(talk_id)
        if event is not None and socket is self._socket:
            with contextlib.suppress(Closed):
                await socket.send(encode(event))

    def _cancellable(self) -> anyio.CancelScope:
        """A scope around what `leave` interrupts: waiting for the server's next event, or to reconnect."""
        self._waiting_scope = anyio.CancelScope()
        if self._leaving:
            self._waiting_scope.cancel()
        return self._waiting_scope

    def _check(self) -> None:
        if self.ended is not None or self._leaving:
            raise SessionEnded(self._end_reason())

    def _end_reason(self) -> str:
        return self.ended.reason if self.ended is not None else "left the room"

    async def _send(self, kind: str, fields: dict[str, Any]) -> None:
        socket = self._socket
        if socket is None or self.client.state is not State.JOINED:
            raise NotConnected(f"{kind}: not connected; send it again once back in the room")
        try:
            await socket.send(encode(self.client.request(kind, **fields)))
        except Closed:
            raise NotConnected(f"{kind}: the connection dropped; send it again once back in the room") from None

    def _take(self, news: Event | Stored) -> None:
        if isinstance(news, Stored):
            self._stored[news.id] = news
            waiting = self._waiting.pop(news.id, None)
            if waiting is not None:
                waiting.set()
            return
        if isinstance(news, History) and self._history is not None:
            self._history.settle(answer=news)
            return
        if isinstance(news, Refused) and news.request == "history" and self._history is not None:
            self._history.settle(failure=SendRefused(news.message, news.code))
        self._news_in.send_nowait(news)
        if isinstance(news, Ended):
            self.ended = news
            if self._history is not None:
                self._history.settle(failure=SessionEnded(news.reason))
            self._release()

    def _release(self) -> None:
        """The session is over: every talk still waiting is told so (`send`), and the application's loop ends."""
        for waiting in self._waiting.values():
            waiting.set()
        self._news_in.close()


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
        with one_exception():  # (the block's own exception, or the connection's, as itself)
            async with anyio.create_task_group() as tasks:
                await tasks.start(chat.run)
                try:
                    yield chat
                finally:
                    await chat.leave()
                    tasks.cancel_scope.cancel()
    finally:
        chat._news_out.close()  # (``run`` closed the other end, however it ended)


def _parse(text: str) -> dict[str, Any]:
    """A server event, or nothing (``{}``) for a message that is not a JSON object: the client leaves it."""
    try:
        event = json.loads(text)
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}
