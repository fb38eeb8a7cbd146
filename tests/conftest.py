"""Shared fixtures: a real server on loopback, in a thread of its own, for each transport."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import trio
from anyio.from_thread import BlockingPortal, start_blocking_portal
from playwright.sync_api import Browser, sync_playwright

from chat_page import CHROMIUM, CHROMIUM_ARGS
from transports.config import ServerConfig, Transport
from transports.limits import Limits
from transports.server import Running, run

TEST_LIMITS = Limits(close_timeout=1.0, handshake_timeout=2.0)


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


@pytest.fixture(params=[t.value for t in Transport])
def transport(request: pytest.FixtureRequest) -> Transport:
    return Transport(request.param)


@pytest.fixture
def server_config(transport: Transport, tmp_path: Path) -> ServerConfig:
    """Each test's server keeps its rooms in a fresh SQLite file, as ``chat-server`` does by default."""
    return ServerConfig(
        transport=transport, http_port=0, ws_port=0, limits=TEST_LIMITS, shutdown_grace=2.0,
        database=tmp_path / "chat.db",
    )


@pytest.fixture
def server(server_config: ServerConfig) -> Iterator[LiveServer]:
    with live_server(server_config) as live:
        yield live


@pytest.fixture
def start_server(server_config: ServerConfig) -> Iterator[Callable[..., LiveServer]]:
    """Start a server with some settings changed: ``start_server(limits=...)``."""
    with ExitStack() as stack:

        def start(**changes: Any) -> LiveServer:
            return stack.enter_context(live_server(replace(server_config, **changes)))

        yield start


ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, driven by Playwright (whose own browser download does not work here)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
