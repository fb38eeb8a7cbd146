"""A real server on loopback, in a thread of its own, and a way to look inside it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio
from anyio.from_thread import BlockingPortal, start_blocking_portal

from transports.config import Limits, ServerConfig
from transports.process import Running, run

TEST_LIMITS = Limits(close_timeout=1.0, handshake_timeout=2.0)
ROOT = Path(__file__).resolve().parents[2]
"""The repository."""
SEED_CLIENT = Path(__file__).resolve().parent / "seed_client"
"""The seed's own page, unchanged."""


@dataclass
class LiveServer:
    """A server running in a background thread, and a way to look inside it."""

    config: ServerConfig
    running: Running
    portal: BlockingPortal

    @property
    def ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.running.ws_port}/"

    @property
    def http_url(self) -> str:
        return f"http://{self.config.host}:{self.running.http_port}/"

    def call(self, function: Callable[[], Any]) -> Any:
        """Run ``function`` in the server's event loop thread."""
        return self.portal.call(function)

    def connection_count(self) -> int:
        count: int = self.call(lambda: self.running.hub.connection_count)
        return count

    def slots_taken(self) -> int:
        """Connections counted against the limits (open, or still in their handshake)."""
        count: int = self.call(lambda: self.running.hub.slots_taken)
        return count

    def task_count(self) -> int:
        """Tasks alive in the server's event loop, the portal's own included."""
        count: int = self.call(_count_tasks)
        return count


def _count_tasks() -> int:
    root = trio.lowlevel.current_root_task()
    assert root is not None
    stack = [root]
    count = 0
    while stack:
        task = stack.pop()
        count += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


@contextmanager
def live_server(config: ServerConfig) -> Iterator[LiveServer]:
    with start_blocking_portal(backend="trio") as portal:
        future, running = portal.start_task(run, config)
        try:
            yield LiveServer(config, running, portal)
        finally:
            portal.call(running.stop)
            future.result(timeout=config.shutdown_grace + 10)
