"""Fixtures of the browser tests: a server and pages for it, and a folder for screenshots (the browser itself is in
``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from chat_page import HOST, ChatPage
from live import ROOT, LiveServer
from processes import ServerProcess, server_process
from redis_server import redis_server
from transports.config import Transport

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def e2e_server(start_server: Callable[..., LiveServer]) -> LiveServer:
    return start_server(host=HOST)


@pytest.fixture
def pages(browser: Browser) -> Iterator[Callable[..., ChatPage]]:
    """Opens pages (each in its own browser context: another user), all closed after the test."""
    opened: list[ChatPage] = []

    def new_page(**options: Any) -> ChatPage:
        permissions = ["clipboard-read", "clipboard-write", *options.pop("permissions", [])]
        page = ChatPage(browser, permissions=permissions, **options)
        opened.append(page)
        return page

    yield new_page
    for page in opened:
        page.close()


@pytest.fixture
def redis_pair(transport: Transport, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two server processes on the test's transport, serving pages at ``HOST``, their rooms in one redis-server."""
    args = ("--transport", transport.value, "--host", HOST, "--http-port", "0", "--ws-port", "0")
    with redis_server(tmp_path) as redis, server_process(*args, "--redis", redis.url) as first, server_process(
        *args, "--redis", redis.url
    ) as second:
        yield first, second
