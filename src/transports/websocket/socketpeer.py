"""The write side both drivers share: frames go straight to the non-blocking socket.

A broadcast is framed once (`Outgoing`) and the same bytes go to every
member: written at once when its outbox is empty and few messages are in
flight, else queued, and one `Flusher` task per server writes, with one
non-blocking ``send`` per connection, everything queued for it since the last
round (the flusher chooses the way round by round): no task switch per
message per member, no object per write that outlives the round, and writes
coalesce when they pile up. Only a connection whose socket is full gets a
writer task, which waits until the socket takes its backlog and then exits;
an idle connection costs no task for writing.

(The per-connection writer task woken by an event for every message, which
the trio-websocket driver had before, is what made its cost per message grow
with the number of connections: each wake-up left a few objects alive long
enough to reach the garbage collector's oldest generation, and the full
collections they triggered walk every connection's objects.
docs/benchmarks-default-transport.md has the measurements.)
"""

from __future__ import annotations

import contextlib
import socket
from abc import abstractmethod
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import anyio
import anyio.abc
import sniffio
import trio
import trio.abc
import trio.lowlevel
from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import Ping

from chatcore import ConnectionId

from ..config import Limits
from ..net.listener import Listener, serve_raw_tcp
from ..net.rawsocket import Cipher, RawSocket
from ..net.tasks import TaskGroup
from .handshake import Handshake
from .host import Host
from .incoming import Assembler, FrameReader
from .lifecycle import serve_connection
from .outbox import CloseRequest
from .peer import Peer

_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT
PING = Connection(ConnectionType.SERVER).send(Ping(payload=b"keepalive"))
"""Our keepalive ping, as wsproto frames it on an open connection (the same bytes every time)."""


class Flusher:
    """Writes every peer with something queued, once per scheduling round; or lets peers write at once.

    Two ways, chosen round by round from what the last round saw. When few
    messages are in flight (a classroom), a peer rarely gets two frames in a
    round: a frame for an empty outbox is then written at once (`direct`),
    saving the queue and the round's bookkeeping. When many are (large, busy
    rooms), frames for one peer pile up within a round: they are queued and
    written together, one system call for all. A round in which more than a
    tenth of the direct writes found their peer written already in the same
    turn turns direct writing off; a round whose flushes took about one frame a
    peer (at most 1.05) turns it back on.

    A turn is one pass of trio's scheduler (every task it found runnable, run
    once), counted by an instrument. The flusher's own rounds would not do: a
    reader task that runs once before the flusher in one pass and once after
    it in the next (trio runs a pass's tasks in either order) would look like
    two frames piling up in one round when they were written a pass apart.
    Elsewhere (asyncio) a turn is a round.
    """

    __slots__ = ("_dirty", "_wakeup", "direct", "repeats", "round", "turn", "woken", "writes")

    def __init__(self) -> None:
        self._dirty: list[SocketPeer] = []
        self._wakeup = anyio.Event()
        self.woken = False
        """Whether the coming round is due already (`wake`)."""
        self.direct = True
        """Whether a frame for an empty outbox is written at once (`SocketPeer.send_frame`)."""
        self.round = 0
        """Counts the rounds."""
        self.turn = 0
        """Counts the turns: a peer remembers the turn it was last written in at once."""
        self.writes = 0
        """This round's frames for an empty outbox while `direct`: `SocketPeer.send_frame` counts them, and wakes
        the round (its counts choose the next round's way)."""
        self.repeats = 0
        """How many of them found their peer written at once in the same turn already (and were queued instead)."""

    def mark(self, peer: SocketPeer) -> None:
        """Write ``peer``'s queue in the coming round."""
        self._dirty.append(peer)
        if not self.woken:
            self.wake()

    def wake(self) -> None:
        """Make the coming round due."""
        self.woken = True
        self._wakeup.set()

    async def run(self) -> None:
        """Write marked peers, and choose the next round's way, until cancelled."""
        passes = _Passes(self) if sniffio.current_async_library() == "trio" else None
        if passes is not None:
            trio.lowlevel.add_instrument(passes)
        try:
            await self._rounds(turn_per_round=passes is None)
        finally:
            if passes is not None:
                with contextlib.suppress(KeyError):  # (trio removes an instrument that raised; this one cannot)
                    trio.lowlevel.remove_instrument(passes)

    async def _rounds(self, *, turn_per_round: bool) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup = anyio.Event()
            self.woken = False
            dirty, self._dirty = self._dirty, []
            frames = 0
            for peer in dirty:
                try:
                    frames += peer.flush()
                except Exception:
                    peer.fail("writing")  # ends that connection; the others are still written
            if self.direct:
                self.direct = 10 * self.repeats <= self.writes
            elif dirty:
                self.direct = 20 * frames <= 21 * len(dirty)
            self.writes = self.repeats = 0
            self.round += 1
            if turn_per_round:
                self.turn += 1


class _Passes(trio.abc.Instrument):
    """Counts the passes of trio's scheduler as a flusher's turns: once before each wait for I/O."""

    def __init__(self, flusher: Flusher) -> None:
        self._flusher = flusher

    def before_io_wait(self, timeout: float) -> None:
        self._flusher.turn += 1


class SocketPeer(Peer):
    """A peer on a non-blocking socket, with wsproto's `Connection` for its protocol.

    Everything written for the connection takes one ordered way: queued
    frames (`flush`), then the protocol's own frames (`write_frames`: pongs,
    the close frame), each after what came before it. What the socket does
    not take waits in ``_unsent`` for the writer task; nothing else writes
    meanwhile. Whole messages read go to the hub (`deliver`).
    """

    __slots__ = (
        "_close_begun", "_encrypt", "_flusher", "_gone", "_socket", "_turn", "_unsent", "_writer_running", "assembler",
        "connection_id", "frames", "hub", "raw",
    )

    def __init__(self, hub: Host, raw: RawSocket, frames: FrameReader, flusher: Flusher, limits: Limits) -> None:
        self.hub = hub
        self.raw = raw
        self._socket = raw.sock
        self.frames = frames
        """What the client sends, parsed; it holds wsproto's connection, made when first needed."""
        self.connection_id: ConnectionId = 0
        """The hub's id for it, once `read_loop` runs."""
        self.assembler = Assembler(limits.max_message_size)
        self._flusher = flusher
        self._unsent: memoryview | None = None  # what the socket did not take (as sent: encrypted with TLS)
        self._encrypt: Cipher | None = None
        """With TLS, once the 101 is out (`Opening`): what it encrypts everything written next with."""
        self._gone = False
        self._writer_running = False
        self._close_begun = False
        self._turn = -1  # the flusher's turn this peer was last written in at once
        super().__init__(limits, raw.address, raw.port)

    @property
    def connection(self) -> Connection:
        """wsproto's connection for this client (made now if it was not needed before): it frames our closes."""
        return self.frames.connection

    @property
    def remote(self) -> str:
        """How log lines name this peer: ``host:port``, or ``client via proxy:port`` through a trusted proxy."""
        return self.raw.remote

    def start(self, tasks: TaskGroup) -> None:
        super().start(tasks)
        if self.closing is not None:  # closed before it started: shutting down
            self._need_writer()

    def send_frame(self, frame: bytes) -> None:
        # The hot path, once per member of every broadcast: `Outbox.put` and `_notify` inlined.
        items = self._items
        flusher = self._flusher
        if not items and flusher.direct and self._unsent is None and self._close is None and self.tasks is not None:
            flusher.writes += 1  # (the flusher's bookkeeping inlined: it is once per delivery)
            if self._turn != flusher.turn:  # the first frame this turn: written at once
                self._turn = flusher.turn
                if not flusher.woken:
                    flusher.wake()
                if not self._gone:
                    try:
                        self._write_now(frame)
                    except Exception:
                        self.fail("writing")  # ends this connection only: the broadcast goes on to the others
                return
            flusher.repeats += 1  # another one this turn: queued, to be written with what follows it
        if self._close is None and (not items or self._size + len(frame) <= self._limit):
            items.append(frame)
            self._size += len(frame)
            if len(items) == 1:
                if self._unsent is None:
                    self._flusher.mark(self)
                else:
                    self._need_writer()
            return
        super().send_frame(frame)  # refused: closing, or a reader too slow (closed)

    def deliver(self, message: str | bytes) -> None:
        """Hand a whole message from the client to the hub."""
        if isinstance(message, str):
            self.hub.receive_text(self.connection_id, message)
        else:
            self.hub.receive_binary(self.connection_id, message)

    def _send_ping(self) -> None:
        if self.frames.state is ConnectionState.OPEN:
            # Anything from the client answers it (the hub's keepalive): the pong needs no matching.
            self.put(PING)

    def _notify(self) -> None:
        if self.closing is not None or self._unsent is not None:
            self._need_writer()
        else:
            self._flusher.mark(self)

    def _need_writer(self) -> None:
        if not self._writer_running and self.tasks is not None:
            self._writer_running = True
            self.tasks.start_soon(self._write)

    def flush(self) -> int:
        """Write everything queued, as far as the socket takes it now; how many frames that was."""
        if self._unsent is not None or self._gone:
            return 0  # the writer task sends it, in order, once the socket takes it
        items = self.take()
        if items:
            self._write_now(items[0] if len(items) == 1 else b"".join(items))
        return len(items)

    def write_frames(self, data: bytes) -> bool:
        """Write frames the protocol made (a pong, a close) after everything queued; False once the socket is gone."""
        if self._gone:
            return False
        self.flush()
        if self._unsent is None:
            self._write_now(data)
        else:
            encrypt = self._encrypt
            self._unsent = memoryview(b"".join((self._unsent, data if encrypt is None else encrypt(data))))
        return not self._gone

    def write_records(self, records: bytes) -> None:
        """Write what TLS made on its own (a key update's answer, close_notify) as it is, before anything queued:
        it comes in sequence after what was encrypted so far, and before what is encrypted next."""
        if self._gone:
            return
        if self._unsent is None:
            self._write_now(records, encrypted=True)
        else:
            self._unsent = memoryview(b"".join((self._unsent, records)))

    def _write_now(self, data: bytes | memoryview, *, encrypted: bool = False) -> None:
        if self._encrypt is not None and not encrypted:
            data = self._encrypt(data)
        try:
            sent = self._socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as error:
            self._gone = True
            self.drop(f"write failed: {error}")
            return
        if sent < len(data):
            self._unsent = memoryview(data)[sent:]
            self._need_writer()

    async def _write(self) -> None:
        """Write what a full socket left, and start the closing handshake once a close is due."""
        try:
            await self._write_unsent()
            close = self.closing
            if close is not None and not self._gone:
                self.flush()
                await self._write_unsent()
                if not self._gone and not self._close_begun:
                    self._close_begun = True
                    self._begin_close(close)
                    await self._write_unsent()
        finally:
            self._writer_running = False

    async def _write_unsent(self) -> None:
        """Wait for the socket to take what it left, then what queued meanwhile."""
        while self._unsent is not None and not self._gone:
            await anyio.wait_writable(self._socket)
            unsent, self._unsent = self._unsent, None
            self._write_now(unsent, encrypted=True)
            if self._unsent is None:
                self.flush()

    def data_waiting(self) -> bool:
        """Whether the client sent bytes we have not read yet (the kernel holds them)."""
        try:
            return bool(self._socket.recv(1, _PEEK))
        except OSError:  # nothing waiting (EAGAIN), or the connection is gone
            return False

    @abstractmethod
    def _begin_close(self, close: CloseRequest) -> None:
        """Everything queued is written: start the closing handshake (its frame goes out through `write_frames`)."""


class Opening:
    """Opens the WebSocket of an accepted handshake: entering sends the 101 and gives the peer.

    A small object rather than a generator-based context manager: it lives
    as long as the connection, and idle connections are what memory is
    counted in.
    """

    __slots__ = ("_greeting", "_peer")

    def __init__(self, peer: SocketPeer, handshake: Handshake) -> None:
        self._peer = peer
        self._greeting = handshake.accept_response()

    async def __aenter__(self) -> Peer:
        greeting, self._greeting = self._greeting, b""
        peer = self._peer
        await peer.raw.send_all(greeting)
        peer._encrypt = peer.raw.encryption(peer.write_records)  # (with TLS: the peer writes all from now on)
        return peer

    async def __aexit__(self, *exc_info: object) -> None:
        pass


MakePeer = Callable[[Host, Limits, Flusher, RawSocket, Handshake], SocketPeer]
"""A driver's peer for a connection whose handshake was accepted (its 101 not sent yet)."""


ConnectionEntry = Callable[[RawSocket, bytes], Coroutine[Any, Any, None]]
"""Serves one connection, accepted on some other port, on a running server (`serve` gives it): ``bytes`` is what
that port read of it already."""


async def serve(
    hub: Host, listener: Listener, limits: Limits, make_peer: MakePeer,
    *, task_status: anyio.abc.TaskStatus[ConnectionEntry] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve connections from ``listener``, one `Flusher` writing for all, until cancelled.

    Started with ``TaskGroup.start``, it hands back the way to serve a connection
    accepted elsewhere on this server, the same way (the page's port's WebSocket
    upgrades, `transports.pageport`): the flusher writes for those too, so it runs
    until cancelled, even once ``listener`` has stopped accepting.
    """
    flusher = Flusher()

    def accept(raw: RawSocket, handshake: Handshake) -> Opening:
        return Opening(make_peer(hub, limits, flusher, raw, handshake), handshake)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(flusher.run)
        entry = partial(serve_connection, hub=hub, limits=limits, accept=accept)
        task_status.started(entry)
        await serve_raw_tcp(entry, listener)
