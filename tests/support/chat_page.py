"""Our page (or the seed's) in a Chromium context, with everything it requests and every error recorded."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, ConsoleMessage, Page, Request, WebSocket, WebSocketRoute

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TIMEOUT_MS = 10_000
HOST = "127.0.0.2"
"""Where the browser tests' servers listen: on loopback, but not localhost: the page must not assume either."""

LINE_TEXT = "p => p.querySelector('.sender').textContent + ': ' + p.querySelector('.text').textContent"
"""A message line as a reader sees it, without its time or state: "Ada: hello"."""
DELIVERED = "#message-wrapper p.message[data-offset]"
"""Talks the server has (echoed, replayed or fetched): each has its room offset."""
PENDING = "#message-wrapper p.message.pending"
"""My talks the server has not echoed yet: sending, waiting for the connection, or refused."""


class ChatPage:
    def __init__(self, browser: Browser, **context_options: Any) -> None:
        self.context = browser.new_context(**context_options)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page: Page = self.context.new_page()
        self.requests: list[str] = []
        self.sockets: list[str] = []
        self.sent_frames: list[str] = []
        self.received_frames: list[str] = []
        self.script_errors: list[str] = []
        self.console_errors: list[str] = []
        self.context.on("request", self._on_request)
        self.page.on("websocket", self._on_websocket)
        self.page.on("pageerror", lambda error: self.script_errors.append(str(error)))
        self.page.on("console", self._on_console)

    def _on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _on_websocket(self, websocket: WebSocket) -> None:
        self.sockets.append(websocket.url)
        websocket.on("framesent", lambda payload: self.sent_frames.append(str(payload)))
        websocket.on("framereceived", lambda payload: self.received_frames.append(str(payload)))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def open(self, url: str, name: str | None = None) -> ChatPage:
        """Load ``url``; with ``name``, answer the page's question for one (it asks on a first visit only)."""
        self.page.goto(url)
        if name is not None:
            self.give_name(name)
        return self

    # ---- names -------------------------------------------------------------

    def asks_for_name(self) -> bool:
        return self.page.locator("#name-modal.is-active").is_visible()

    def give_name(self, name: str) -> None:
        """Answer the open name dialog."""
        self.page.locator("#name-modal.is-active #name-input").wait_for()
        self.page.fill("#name-input", name)
        self.page.press("#name-input", "Enter")
        self.page.locator("#name-modal.is-active").wait_for(state="detached")

    def rename(self, name: str) -> None:
        """Click my name and change it."""
        self.page.click("#my-name")
        self.give_name(name)

    def my_name(self) -> str:
        return self.page.locator("#my-name").inner_text()

    def user_id(self) -> str:
        """The number the server gave this page's user (``#name-span``; shown as "user N")."""
        return self.page.locator("#name-span").inner_text()

    # ---- the room ----------------------------------------------------------

    def join_link(self) -> str:
        link = self.page.locator("#message-wrapper a.join-link")
        link.wait_for()
        href = link.get_attribute("href")
        assert href is not None
        assert link.inner_text() == href
        return href

    def wait_until_in_room(self) -> None:
        """In the room, its replay over: what is typed now is sent at once."""
        self.page.wait_for_function("document.body.dataset.state === 'live'")

    def members(self) -> list[str]:
        """The online list, as shown (my own entry ends with " (you)")."""
        return self.page.locator("#members .member").all_inner_texts()

    def wait_for_members(self, expected: list[str]) -> list[str]:
        self.page.wait_for_function(
            "want => JSON.stringify(Array.from(document.querySelectorAll('#members .member'),"
            " m => m.innerText)) === JSON.stringify(want)",
            arg=expected,
        )
        return self.members()

    def notices(self) -> list[str]:
        """Join, leave and rename notices in the message list."""
        return self.page.locator("#message-wrapper p.notice").all_inner_texts()

    def wait_for_notice(self, text: str) -> None:
        self.page.wait_for_function(
            "t => Array.from(document.querySelectorAll('#message-wrapper p.notice')).some(p => p.innerText === t)",
            arg=text,
        )

    # ---- talking -----------------------------------------------------------

    def send_with_button(self, text: str) -> None:
        self.page.fill("#message-input", text)
        self.page.click("#form button[type=submit]")

    def send_with_enter(self, text: str) -> None:
        self.page.fill("#message-input", text)
        self.page.press("#message-input", "Enter")

    def messages(self) -> list[str]:
        """Each delivered message as shown, "Name: text", without its time."""
        return list(self.page.eval_on_selector_all(DELIVERED, f"ps => ps.map({LINE_TEXT})"))

    def wait_for_messages(self, count: int) -> list[str]:
        self.page.wait_for_function(
            "([selector, n]) => document.querySelectorAll(selector).length >= n", arg=[DELIVERED, count]
        )
        return self.messages()

    def pending(self) -> list[str]:
        """My messages not (yet) echoed by the server, as shown, "Name: text"."""
        return list(self.page.eval_on_selector_all(PENDING, f"ps => ps.map({LINE_TEXT})"))

    def wait_until_nothing_pending(self) -> None:
        self.page.wait_for_function("s => document.querySelectorAll(s).length === 0", arg=PENDING)

    def sent_events(self, kind: str) -> list[dict[str, Any]]:
        events = [json.loads(frame) for frame in self.sent_frames]
        return [event for event in events if event.get("type") == kind]

    def talk_frames(self) -> list[dict[str, Any]]:
        return self.sent_events("talk")

    def received_events(self, kind: str) -> list[dict[str, Any]]:
        events = [json.loads(frame) for frame in self.received_frames]
        return [event for event in events if event.get("type") == kind]

    def status(self) -> str:
        return self.page.locator("#status").inner_text()

    def title(self) -> str:
        return self.page.title()

    def assert_stayed_on(self, host: str) -> None:
        """No request and no socket left the page's host, and no script failed."""
        assert self.requests
        for url in self.requests + self.sockets:
            if not url.startswith("data:"):
                assert urlsplit(url).hostname == host, url
        assert self.script_errors == []

    def close(self) -> None:
        self.context.close()


@contextmanager
def two_in_a_room(browser: Browser, url: str, **context_options: Any) -> Iterator[tuple[ChatPage, ChatPage]]:
    """Alice starts a room at ``url`` (its join link under ``url``), Bob joins by her link; both pages closed after."""
    pages = [ChatPage(browser, **context_options) for _ in range(2)]
    try:
        alice = pages[0].open(url, name="Alice")
        link = alice.join_link()
        assert link.startswith(url)
        bob = pages[1].open(link, name="Bob")
        bob.wait_until_in_room()
        alice.wait_until_in_room()
        yield alice, bob
    finally:
        for page in pages:
            page.close()


class Cutter:
    """Routes a page's sockets through the test, to cut them (and refuse new ones) until `restore`. Install it first."""

    def __init__(self, page: ChatPage) -> None:
        self._refusing = False
        self._current: tuple[WebSocketRoute, WebSocketRoute] | None = None
        page.page.route_web_socket(re.compile(r"^wss?://"), self._route)

    def _route(self, ws: WebSocketRoute) -> None:
        if self._refusing:
            ws.close(code=4000, reason="cut by the test")
            return
        server = ws.connect_to_server()
        self._current = (ws, server)
        ws.on_message(server.send)
        server.on_message(ws.send)

    def cut(self) -> None:
        self._refusing = True
        if self._current is not None:
            page_side, server_side = self._current
            self._current = None
            page_side.close(code=4000, reason="cut by the test")
            server_side.close()

    def restore(self) -> None:
        self._refusing = False
