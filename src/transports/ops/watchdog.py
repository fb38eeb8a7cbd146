"""The event loop's watchdog: a stuck loop is logged with what holds it, and counted.

A task on the loop notes the time every quarter of `THRESHOLD`; a plain
thread, which runs whatever the loop does and on any event loop, reads that
note as often. A note overdue by more than `THRESHOLD` means that something
holds the loop's thread (a blocking call in a task, a long computation) and
every client waits: the thread logs one WARNING with that thread's stack as
it is at that moment, and counts the stall (``chat_event_loop_stalls_total``
in ``/metrics``). However long the stall lasts, it is one warning; once the
loop runs again, an INFO line says for about how long it did not.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback

import anyio

logger = logging.getLogger(__name__)

THRESHOLD = 1.0
"""Seconds the event loop may go without running before it counts as stalled."""


class Watchdog:
    """Watches the event loop that runs `run`, from a thread of its own."""

    def __init__(self, threshold: float = THRESHOLD) -> None:
        self.threshold = threshold
        self.stalls = 0
        """Stalls seen so far (only the watching thread writes it)."""
        self._every = threshold / 4
        self._beat = time.monotonic()
        self._stopped = threading.Event()

    async def run(self) -> None:
        """Note the time on the loop until cancelled, with the watching thread running meanwhile."""
        self._beat = time.monotonic()
        thread = threading.Thread(target=self._watch, args=(threading.get_ident(),), name="event-loop-watchdog",
                                  daemon=True)  # daemon: it must never keep the process alive
        thread.start()
        try:
            while True:
                self._beat = time.monotonic()
                await anyio.sleep(self._every)
        finally:
            self._stopped.set()
            thread.join()

    def _watch(self, loop_thread: int) -> None:
        stalled_at: float | None = None  # the last note before the stall being reported
        while not self._stopped.wait(self._every):
            beat = self._beat
            if stalled_at is not None:
                if beat != stalled_at:
                    logger.info("the event loop runs again, after about %.1f s", beat - stalled_at - self._every)
                    stalled_at = None
                continue
            late = time.monotonic() - beat - self._every
            if late > self.threshold:
                stalled_at = beat
                self.stalls += 1
                frame = sys._current_frames().get(loop_thread)
                stack = "".join(traceback.format_stack(frame)).rstrip() if frame is not None else "(no stack)"
                logger.warning("the event loop has not run for %.1f s: every client waits; its thread is in "
                            "(most recent call last):\n%s", late, stack)
