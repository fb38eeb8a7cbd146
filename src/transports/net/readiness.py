"""Waiting for connections' sockets to become readable, under trio, on one epoll of our own.

Theory of operation
===================

trio's own `trio.lowlevel.wait_readable` registers a socket with its epoll for
one event at a time (``EPOLLONESHOT``): every wait costs an ``epoll_ctl``
system call and a registration record, created and dropped again, per message
a connection receives. `Readiness` keeps one epoll of its own instead, in
which each socket is registered once, edge-triggered (``EPOLLET``), for as
long as its file descriptor stays open; one system task waits in trio for that
epoll to have events and wakes the tasks waiting for those sockets.

Edge-triggered means an event per arrival, not per wait:

- an arrival while nobody waits is remembered (``_ready``), and the next wait
  for that socket returns at once;
- a reader must not wait while data it has not read may remain: one that
  filled its whole buffer reads again before waiting (`RawSocket.receive_now`
  says so);
- an event may come for data read already (it arrived just before a read):
  the woken reader finds nothing (``EAGAIN``) and waits again;
- the end of the stream (a FIN, an error) may come with the last data, in the
  same event, and a read of that data does not read the end: once a socket's
  event says hang-up, every wait for it returns at once (``_ended``), so the
  reader reads on until it finds the end.

A waiter may hand its read over (``inline``): while it waits, this task calls
that read each time the socket becomes readable, and wakes the waiter only when
the read says so (a backlog to read, the end of reading), raises, or the stream
has ended. A connection's messages are then read and handed on without a task
switch each; the waiter stays parked, its task kept for its lifecycle.

A socket is known by its file descriptor and the socket object together: a
descriptor closed and reused by a new socket is registered anew (the kernel
dropped the old registration with the old socket), and an event remembered for
the old one is at worst such an empty wake-up.
"""

from __future__ import annotations

import logging
import select
import socket
from collections.abc import Callable

import outcome
import trio
import trio.lowlevel

logger = logging.getLogger(__name__)

Inline = Callable[[], bool]
"""A waiter's read, done in this task: True if the waiter may go on waiting (see `Readiness.wait_readable`)."""

MAX_EVENTS = 1024
"""Most events taken from the epoll per wake-up of its task (the rest wait for the next: a bounded loop)."""

_EVENTS = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLET
_ENDED = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR


class Readiness:
    """One epoll for many sockets: `wait_readable` in place of trio's, each socket registered once."""

    __slots__ = ("_ended", "_epoll", "_ready", "_registered", "_waiters")

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._registered: dict[int, socket.socket] = {}
        self._waiters: dict[int, tuple[trio.lowlevel.Task, Inline | None]] = {}
        self._ready: set[int] = set()
        self._ended: set[int] = set()

    async def wait_readable(self, sock: socket.socket, inline: Inline | None = None) -> None:
        """Return once ``sock`` may have something to read (a trio checkpoint, like trio's own).

        With ``inline``, each time ``sock`` becomes readable while its waiter waits, this task calls
        ``inline`` instead of waking the waiter (no task switch per message read), and wakes it only when
        ``inline`` returns False, raises (the waiter gets the exception), or the socket's stream ended.
        """
        fd = sock.fileno()
        if self._registered.get(fd) is not sock:
            self._register(fd, sock)
        if fd in self._ready or fd in self._ended:
            self._ready.discard(fd)
            await trio.lowlevel.checkpoint()
            return
        if fd in self._waiters:
            raise trio.BusyResourceError("another task is already waiting for this socket to be readable")
        self._waiters[fd] = (trio.lowlevel.current_task(), inline)

        def abort(_: trio.lowlevel.RaiseCancelT) -> trio.lowlevel.Abort:
            self._waiters.pop(fd, None)
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _register(self, fd: int, sock: socket.socket) -> None:
        try:
            self._epoll.register(fd, _EVENTS)
        except FileExistsError:  # (a duplicate of an earlier socket's description keeps its registration)
            self._epoll.modify(fd, _EVENTS)
        self._registered[fd] = sock
        self._ready.discard(fd)  # (remembered for the socket that had this descriptor before)
        self._ended.discard(fd)

    async def serve(self) -> None:
        """Wake the waiters of the sockets that became readable, until cancelled (a system task)."""
        epoll, waiters, ready, ended = self._epoll, self._waiters, self._ready, self._ended
        try:
            while True:
                await trio.lowlevel.wait_readable(epoll)
                for fd, flags in epoll.poll(0, MAX_EVENTS):
                    if flags & _ENDED:
                        ended.add(fd)
                    waiter = waiters.get(fd)
                    if waiter is None:
                        ready.add(fd)
                        continue
                    task, inline = waiter
                    if inline is not None and fd not in ended:
                        try:
                            wait_on = inline()
                        except Exception as error:  # the waiter's own: it raises it, as if it had read itself
                            if waiters.get(fd) is waiter:
                                del waiters[fd]
                                trio.lowlevel.reschedule(task, outcome.Error(error))
                            else:  # (cancelled meanwhile)
                                logger.exception("error in a read done for a cancelled reader")
                            continue
                        if wait_on or waiters.get(fd) is not waiter:  # (the read may have cancelled its waiter)
                            continue
                    del waiters[fd]
                    trio.lowlevel.reschedule(task)
        finally:
            epoll.close()


_READINESS: trio.lowlevel.RunVar[Readiness] = trio.lowlevel.RunVar("readiness")


def current_readiness() -> Readiness:
    """This trio run's `Readiness`, made (and its task started) on first use."""
    try:
        return _READINESS.get()
    except LookupError:
        readiness = Readiness()
        _READINESS.set(readiness)
        trio.lowlevel.spawn_system_task(readiness.serve, name="socket readiness")
        return readiness
