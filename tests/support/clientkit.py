"""`chatclient.Client`s against the real core, in memory: connections as queues, a log that answers when told.

No event loop and no sockets. Each connection is two queues: what its client wrote and the core has not read
(`Server.outbox`), and what the core sent and the client has not read (`Net.inbox`); the test says when each
moves. The core's room log is a `MemoryLog` whose requests wait until the test answers them (or fails them),
and a restart is a new core over the same log. `Member` drives a `Client` as `chatclient.session.Chat` drives
it: hello on each new connection, what pending talks it resends and when, a talk refused for now sent again.
"""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from chatclient import Event, History, Joined, MemberJoined, MemberLeft, Renamed, State, Talk
from chatclient.client import Ask, Client, Retry, Stored, encode
from chatcore import (
    Action,
    Append,
    Appended,
    ChatCore,
    ConnectionId,
    CoreLimits,
    LogFailed,
    LoggedTalk,
    LogRequest,
    LogResult,
    MemoryLog,
    Presence,
)
from corekit import FakeClock, keys
from v2kit import Net

FAILURE = "storage unavailable"
"""Why the log fails a request when the test says so."""


class Server(Net):
    """A chat server process: its core, its connections' queues, and a room log that outlives restarts.

    ``stream`` is every talk the log appended, per room, from the first: the `MemoryLog` keeps only the
    latest ``history_limit``, the rooms' whole sequences are for the tests to check against. The log is told
    who leaves, and forgets users beyond ``remembered_users`` as a server without a store does: their tokens
    no longer resume. ``log_memory``: how many talks per room the log keeps, when more than the replay holds (a
    store's log keeps them all: a gap after a long absence then has talks to fetch).
    """

    def __init__(
        self, history_limit: int, remembered_users: int = CoreLimits().remembered_users, log_memory: int = 0
    ) -> None:
        self.clock = FakeClock()
        self.limits = CoreLimits(
            history_limit=history_limit, remembered_users=remembered_users, messages_per_second=1e9,
            message_burst=10**9,
        )
        self.memory = MemoryLog(max(history_limit, log_memory), remembered_users)
        self._keys = keys()  # (one sequence across restarts: a key or token is never drawn twice)
        super().__init__(self._new_core())
        self.log = self.memory
        self.stream: dict[str, list[LoggedTalk]] = defaultdict(list)
        self.outbox: dict[ConnectionId, deque[str]] = {}
        """What each open connection's client wrote that the core has not read yet."""
        self.dead: set[ConnectionId] = set()
        """Connections their client lost that the core has not noticed yet (it still sends to them)."""
        self.failed_talks: set[str] = set()
        """Ids of talks whose append the log failed (the sender sends them again, perhaps after later ones)."""
        self.restarts = 0
        self._connections = itertools.count(1)

    def _new_core(self) -> ChatCore:
        return ChatCore(clock=self.clock, new_join_key=self._keys.__next__, limits=self.limits)

    def do(self, actions: list[Action]) -> None:
        """As `Net.do`, and the log hears who comes and goes (it forgets users who left)."""
        for action in actions:
            if isinstance(action, Presence):
                self.memory.perform(action)
        super().do(actions)

    # The connections

    def open(self) -> ConnectionId:
        """A new connection, open on both sides."""
        connection = next(self._connections)
        self.connect(connection)
        self.outbox[connection] = deque()
        return connection

    def write(self, connection: ConnectionId, event: dict[str, Any]) -> None:
        """The client sends ``event`` (as the connectors do: `chatclient.client.encode`)."""
        self.outbox[connection].append(encode(event))

    def arrive(self, connection: ConnectionId, count: int | None = None) -> None:
        """The core reads the connection's next ``count`` messages (all by default)."""
        outbox = self.outbox[connection]
        for _ in range(len(outbox) if count is None else min(count, len(outbox))):
            self.do(self.core.receive_text(connection, outbox.popleft()))

    def read(self, connection: ConnectionId) -> dict[str, Any] | None:
        """The next event the core sent on the connection, as its client reads it (None: nothing yet)."""
        events = self.inbox.get(connection)
        return events.pop(0) if events else None

    def lose(self, connection: ConnectionId, *, noticed: bool = True) -> None:
        """The connection is gone on the client's side: what either side had not read yet is lost; the core is
        told now if ``noticed``, else later (`notice`)."""
        del self.outbox[connection]
        self.inbox.pop(connection, None)
        self.dead.add(connection)
        if noticed:
            self.notice(connection)

    def notice(self, connection: ConnectionId) -> None:
        """The core learns that a lost connection closed."""
        self.dead.remove(connection)
        self.disconnect(connection)
        self.inbox.pop(connection, None)

    # The log

    def answer_one(self, *, fail: bool = False) -> None:
        """The log answers its oldest request: done, or failed (``fail``: nothing done)."""
        request = self.waiting.popleft()
        if fail and isinstance(request, Append) and request.talk_id is not None:
            self.failed_talks.add(request.talk_id)
        result = LogFailed(request.ticket, FAILURE) if fail else self._perform(request)
        self.do(self.core.log_result(result))

    def _perform(self, request: LogRequest) -> LogResult:
        result = self.memory.answer(request)
        if isinstance(result, Appended) and not result.duplicate:
            stream = self.stream[result.talk.join_key]
            assert result.talk.offset == len(stream) + 1, (result.talk, stream)
            stream.append(result.talk)
        return result

    def restart(self, done: int = 0) -> None:
        """The process restarts: every connection ends, the log's oldest ``done`` requests in flight were done
        (it does them in order) and the rest were not, their answers lost; a new core takes over the same log."""
        for request in list(self.waiting)[:done]:
            self._perform(request)
        self.waiting.clear()
        self.inbox.clear()
        self.outbox.clear()
        self.dead.clear()
        self.closed.clear()
        self.shared.clear()
        self.core = self._new_core()
        self.restarts += 1


@dataclass(eq=False)
class Member:
    """One member of a room: a `Client` driven as `chatclient.session.Chat` drives it, and what it heard.

    ``careful`` resends what the room has not stored once the join's replay is read, as `Chat` does; else right
    at the `Joined` (the room answers a talk it has with the one it stored, but not one stored under a user whose
    token it forgot: that one is stored again). New talks go at once while the connection is ready (what was
    pending at the join has gone), else they wait to be resent.
    """

    client: Client
    careful: bool = True
    connection: ConnectionId | None = None
    ready: bool = False
    joined_here: bool = False
    joined: Joined | None = None
    """The latest `Joined`."""
    news: list[Event] = field(default_factory=list)
    """What the application got, in order (not `Stored` nor `Retry`: those are the session's)."""
    stored: list[Stored] = field(default_factory=list)
    talked: list[str] = field(default_factory=list)
    """The ids `Client.talk` gave, in order."""
    retried: bool = False
    """A talk of ours was refused for now (`Retry`) at least once."""
    retries: list[tuple[ConnectionId, str]] = field(default_factory=list)
    """Talks refused for now, to send again on the connection that was told."""
    histories: list[tuple[dict[str, Any], History]] = field(default_factory=list)
    """Each ``history`` event read, and the `History` the client made of it."""

    def connect(self, server: Server) -> None:
        """A new connection, and the client's hello on it."""
        assert self.connection is None
        self.connection = server.open()
        self.ready = self.joined_here = False
        server.write(self.connection, self.client.hello())

    def talk(self, server: Server, payload: str) -> str:
        talk_id, event = self.client.talk(payload)
        self.talked.append(talk_id)
        if event is not None and self.connection is not None and self.ready:
            server.write(self.connection, event)
        return talk_id

    def request(self, server: Server, kind: str, **fields: Any) -> None:
        """A request of version 2, if in the room now and not filling a gap (`Chat.request` raises `NotConnected`,
        or waits for the gap)."""
        if self.connection is not None and self.client.state is State.JOINED and not self.client.filling:
            server.write(self.connection, self.client.request(kind, **fields))

    def read(self, server: Server, count: int | None = None) -> None:
        """Read the connection's next ``count`` events (all by default), as they come."""
        done = 0
        while self.connection is not None and (count is None or done < count):
            event = server.read(self.connection)
            if event is None:
                return
            self.take(server, event)
            done += 1

    def take(self, server: Server, event: dict[str, Any]) -> None:
        assert self.connection is not None
        for news in self.client.receive(event):
            if isinstance(news, Stored):
                self.stored.append(news)
            elif isinstance(news, Retry):
                self.retried = True
                self.retries.append((self.connection, news.id))
            elif isinstance(news, Ask):
                server.write(self.connection, news.event)
            else:
                self.news.append(news)
                if isinstance(news, History):
                    self.histories.append((event, news))
                if isinstance(news, Joined):
                    self.joined, self.joined_here = news, True
                    if not self.careful:
                        self.resend(server)
        if self.client.state is not State.JOINING and self.client.state is not State.JOINED:
            # Refused for now (the session closes this connection and opens another), or ended.
            server.lose(self.connection)
            self.connection = None
            self.ready = False
        elif self.joined_here and not self.ready and self._replayed():
            self.resend(server)

    def _replayed(self) -> bool:
        """As `Chat._replayed`: the join's replay, and the gap before it, have been read."""
        if self.client.state is not State.JOINED or self.client.filling:
            return False
        return self.joined is None or self.client.last_offset >= self.joined.offset

    def resend(self, server: Server) -> None:
        """Send again what the room has not stored, then take new talks."""
        assert self.connection is not None
        for event in self.client.resend():
            server.write(self.connection, event)
        self.ready = True

    def retry(self, server: Server) -> None:
        """Send again the oldest talk refused for now, if still pending and on the connection that was told."""
        connection, talk_id = self.retries.pop(0)
        event = self.client.talk_event(talk_id)
        if event is not None and connection == self.connection:
            server.write(connection, event)

    def lost(self, server: Server, *, noticed: bool = True, code: int | None = None) -> None:
        """The connection dropped (``code``: as the server closed it; None: gone without a close)."""
        assert self.connection is not None
        if code is None:
            self.client.connection_lost()
        else:
            self.client.closed(code, "")
        if self.connection in server.outbox:  # (else a restart took it already)
            server.lose(self.connection, noticed=noticed)
        self.connection = None
        self.ready = False
        self.retries.clear()  # (what they name is pending: resent after the next join)

    def members(self) -> dict[int, str | None]:
        """Who is in the room as the application was told since the latest `Joined`: user id → name."""
        view: dict[int, str | None] = {}
        for news in self.news:
            if isinstance(news, Joined):
                view = {member.user_id: member.name for member in news.members}
            elif isinstance(news, MemberJoined | Renamed):
                view[news.user_id] = news.name
            elif isinstance(news, MemberLeft):
                view.pop(news.user_id, None)
        return view

    def talks(self) -> list[Talk]:
        return [news for news in self.news if isinstance(news, Talk)]
