"""Fixtures of the scenarios: a ``chat-server`` process that can restart on its ports and SQLite file, the member
under test (our page, or a chatclient session: each scenario runs with both) on a network the test can hold, and
the other members (chatclient sessions)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from chat_page import HOST
from live import ROOT
from members import ClientMember, Member, PageMember
from processes import RestartableServer
from tcp_proxy import TcpProxy

HISTORY_LIMIT = 5
"""The server's ``--history-limit``: a joiner is sent the room's latest 5 talks."""


@pytest.fixture
def network() -> Iterator[TcpProxy]:
    """The member under test's way to the server (a TCP forwarder), which a test can hold or cut."""
    proxy = TcpProxy(HOST)
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def chat_server(tmp_path: Path, network: TcpProxy) -> Iterator[RestartableServer]:
    """The server; its page tells pages to reach the chat through `network`."""
    server = RestartableServer(
        HOST, "--db", str(tmp_path / "chat.db"), "--history-limit", str(HISTORY_LIMIT), "--web", str(ROOT / "web"),
        "--public-ws-port", str(network.port), "--drain-timeout", "5",
    )
    network.target = (HOST, server.ws_port)
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def history_limit() -> int:
    return HISTORY_LIMIT


@pytest.fixture(params=["page", "chatclient"])
def member(request: pytest.FixtureRequest, chat_server: RestartableServer, network: TcpProxy) -> Iterator[Member]:
    """The member under test: our page in Chromium, or a chatclient session; either reaches the chat through
    `network`."""
    driven: Member
    if request.param == "page":
        browser: Browser = request.getfixturevalue("browser")
        driven = PageMember(browser, chat_server.url)
    else:
        driven = ClientMember(f"ws://{HOST}:{network.port}/")
    try:
        yield driven
    finally:
        driven.close()


@pytest.fixture
def others(chat_server: RestartableServer) -> Iterator[Callable[[], ClientMember]]:
    """``others()``: another member (a chatclient session, straight to the server), closed after the test."""
    with ExitStack() as stack:

        def other() -> ClientMember:
            new = ClientMember(chat_server.ws_url)
            stack.callback(new.close)
            return new

        yield other
