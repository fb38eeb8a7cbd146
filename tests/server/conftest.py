"""Fixtures of the tests that run a real server: one per transport, its rooms in a fresh SQLite file (the browser is
in ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from chat_client import V2Client
from live import TEST_LIMITS, LiveServer, live_server
from transports.config import ServerConfig, Transport


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


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[Transport, LiveServer]]:
    """One server per transport, side by side, rooms in memory (for tests comparing the transports' answers)."""
    with ExitStack() as stack:
        yield {
            transport: stack.enter_context(
                live_server(ServerConfig(transport=transport, http_port=0, ws_port=0, limits=TEST_LIMITS,
                                         shutdown_grace=2.0))
            )
            for transport in Transport
        }


@pytest.fixture
def clients() -> Iterator[Callable[[str], V2Client]]:
    """``clients(url)``: a version-2 client (python-websockets) connected to ``url``, closed after the test."""
    with ExitStack() as stack:

        def connect(url: str) -> V2Client:
            client = V2Client(url)
            stack.callback(client.close)
            return client

        yield connect
