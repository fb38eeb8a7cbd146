"""``chat-server --workers N``: N server processes on the same ports, each restarted when it dies.

The supervisor reserves the page's and the WebSocket's ports (binding them
with ``SO_REUSEPORT`` without listening, so that port 0 becomes one port for
all), then starts each worker as ``chat-server`` with the same flags and
those ports. Every worker listens on both ports with ``SO_REUSEPORT`` and the
kernel spreads new connections over them; rooms are shared through Redis, so
it does not matter which worker a client lands on. A worker that exits is
logged and started again (after a pause that grows while it keeps dying
young); one that fails at start with a setting error (status 2) stops the
whole command, since every restart would fail alike. SIGTERM or SIGINT goes
to every worker, the same signal: on SIGTERM each drains (1012, in
batches, within ``--drain-timeout``), on SIGINT each closes its connections
with 1001 at once; the supervisor waits for them all, then exits 0. A second
SIGTERM or SIGINT meanwhile kills every worker, and the supervisor exits 1.
Workers run in a session of their own, so that a signal to the supervisor's
process group (Ctrl-C, ``kill -- -PGID``) reaches them once, through it, not
twice (which would stop them at once).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
import anyio.abc

logger = logging.getLogger(__name__)

STARTUP_FAILURE = 2
"""A worker's exit status for a setting that cannot work (`config.StartupError`)."""
YOUNG = 10.0
"""A worker that dies within this many seconds of starting waits longer before the next start."""
MAX_PAUSE = 5.0


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind ``host:port`` with SO_REUSEPORT, not listening: the port stays ours for the workers to share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


@dataclass
class _Outcome:
    startup_failure: bool = False
    stop_signal: signal.Signals = signal.SIGTERM
    """The signal the workers are stopped with: the one the supervisor got."""
    running: set[anyio.abc.Process] = field(default_factory=set)
    """The workers' processes now."""
    at_once: anyio.Event = field(default_factory=anyio.Event)
    """Set by a second signal: every worker is killed, and the supervisor exits 1."""


async def supervise(command: Callable[[int], list[str]], count: int, stop_timeout: float) -> int:
    """Run workers 1..``count`` (``command(n)`` starts worker n) until a signal; the exit status (1 when
    stopped at once by a second signal)."""
    outcome = _Outcome()
    stopping = anyio.Event()
    async with anyio.create_task_group() as outer:
        outer.start_soon(_stop_on_signal, stopping, count, outcome)
        outer.start_soon(_pass_on_sighup, outcome)
        async with anyio.create_task_group() as workers:
            for number in range(1, count + 1):
                workers.start_soon(_keep_running, number, command, stopping, stop_timeout, outcome)
        outer.cancel_scope.cancel()  # every worker has stopped: no signal to wait for any more
    if outcome.at_once.is_set():
        return 1
    return STARTUP_FAILURE if outcome.startup_failure else 0


async def _stop_on_signal(stopping: anyio.Event, count: int, outcome: _Outcome) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if stopping.is_set():
                logger.warning("second %s while stopping: killing the %d workers, exiting now",
                               signal.Signals(signum).name, len(outcome.running))
                outcome.at_once.set()
                continue
            logger.info("%s: stopping %d workers", signal.Signals(signum).name, count)
            outcome.stop_signal = signal.Signals(signum)
            stopping.set()


async def _pass_on_sighup(outcome: _Outcome) -> None:
    """SIGHUP (``systemctl reload``: a renewed TLS certificate) goes to every worker, which reloads its own."""
    with anyio.open_signal_receiver(signal.SIGHUP) as signals:
        async for _ in signals:
            logger.info("SIGHUP: passed to %d workers", len(outcome.running))
            for process in list(outcome.running):
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGHUP)


async def _keep_running(
    number: int, command: Callable[[int], list[str]], stopping: anyio.Event, stop_timeout: float, outcome: _Outcome
) -> None:
    pause = 0.1
    while not stopping.is_set():
        started = anyio.current_time()
        process = await anyio.open_process(command(number), stdin=subprocess.DEVNULL, stdout=None, stderr=None,
                                           start_new_session=True)
        logger.info("worker %d started (pid %d)", number, process.pid)
        outcome.running.add(process)
        try:
            async with anyio.create_task_group() as watch:
                watch.start_soon(_stop_when, stopping, process, stop_timeout, outcome)
                status = await process.wait()
                watch.cancel_scope.cancel()
        finally:
            outcome.running.discard(process)
        if stopping.is_set():
            logger.info("worker %d (pid %d) stopped with status %d", number, process.pid, status)
            return
        lived = anyio.current_time() - started
        if status == STARTUP_FAILURE and lived < YOUNG:
            logger.error("worker %d could not start (status 2): stopping every worker", number)
            outcome.startup_failure = True
            stopping.set()
            return
        pause = min(pause * 2, MAX_PAUSE) if lived < YOUNG else 0.1
        logger.log(logging.WARNING if status == 0 else logging.ERROR,
                   "worker %d (pid %d) exited with status %d after %.0f s; starting it again in %.1f s",
                   number, process.pid, status, lived, pause)
        with anyio.move_on_after(pause):
            await stopping.wait()


async def _stop_when(
    stopping: anyio.Event, process: anyio.abc.Process, stop_timeout: float, outcome: _Outcome
) -> None:
    """Once stopping: pass the worker the signal, and SIGKILL it if it has not exited after ``stop_timeout``, or
    on a second signal. (The task is cancelled as soon as the worker exits.)"""
    await stopping.wait()
    process.send_signal(outcome.stop_signal)
    with anyio.move_on_after(stop_timeout) as waiting:
        await outcome.at_once.wait()
    if waiting.cancelled_caught:
        logger.warning("worker (pid %d) did not stop within %.0f s of %s: killing it", process.pid, stop_timeout,
                       outcome.stop_signal.name)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
