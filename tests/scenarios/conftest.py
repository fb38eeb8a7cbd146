"""Fixtures of the scenarios: a ``chat-server`` process that can restart on its port and SQLite file, the member
under test (our page, or a chatclient session: each scenario runs with both) and the other members (chatclient)."""

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

HISTORY_LIMIT = 5
"""The server's ``--history-limit``: a joiner is sent the room's latest 5 talks."""


@pytest.fixture
def chat_server(tmp_path: Path) -> Iterator[RestartableServer]:
    server = RestartableServer(
        HOST, "--db", str(tmp_path / "chat.db"), "--history-limit", str(HISTORY_LIMIT), "--web", str(ROOT / "web"),
        "--drain-timeout", "5",
    )
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def history_limit() -> int:
    return HISTORY_LIMIT


@pytest.fixture(params=["page", "chatclient"])
def member(request: pytest.FixtureRequest, chat_server: RestartableServer) -> Iterator[Member]:
    """The member under test: our page in Chromium, or a chatclient session."""
    driven: Member
    if request.param == "page":
        browser: Browser = request.getfixturevalue("browser")
        driven = PageMember(browser, chat_server.url)
    else:
        driven = ClientMember(chat_server.ws_url)
    try:
        yield driven
    finally:
        driven.close()


@pytest.fixture
def others(chat_server: RestartableServer) -> Iterator[Callable[[], ClientMember]]:
    """``others()``: another member (a chatclient session), closed after the test."""
    with ExitStack() as stack:

        def other() -> ClientMember:
            new = ClientMember(chat_server.ws_url)
            stack.callback(new.close)
            return new

        yield other
