"""Our page (or the seed's) in a Chromium context, with everything it requests and every error recorded."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, ConsoleMessage, Page, Request, WebSocket

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TIMEOUT_MS = 10_000


class ChatPage:
    def __init__(self, browser: Browser, **context_options: Any) -> None:
        self.context = browser.new_context(**context_options)
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page: Page = self.context.new_page()
        self.requests: list[str] = []
        self.sockets: list[str] = []
        self.sent_frames: list[str] = []
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

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def open(self, url: str) -> ChatPage:
        self.page.goto(url)
        return self

    def join_link(self) -> str:
        link = self.page.locator("#message-wrapper a.join-link")
        link.wait_for()
        href = link.get_attribute("href")
        assert href is not None
        assert link.inner_text() == href
        return href

    def wait_until_in_room(self) -> None:
        self.page.wait_for_function("document.getElementById('name-span').textContent !== ''")

    def name(self) -> str:
        return self.page.locator("#name-span").inner_text()

    def send_with_button(self, text: str) -> None:
        self.page.fill("#message-input", text)
        self.page.click("#form button[type=submit]")

    def send_with_enter(self, text: str) -> None:
        self.page.fill("#message-input", text)
        self.page.press("#message-input", "Enter")

    def messages(self) -> list[str]:
        """Each message line as shown, without its time."""
        return [
            text
            for text in self.page.eval_on_selector_all(
                "#message-wrapper p.message",
                "ps => ps.map(p => Array.from(p.childNodes).filter(n => n.nodeName !== 'TIME')"
                ".map(n => n.textContent).join('').trim())",
            )
        ]

    def wait_for_messages(self, count: int) -> list[str]:
        self.page.wait_for_function(
            "n => document.querySelectorAll('#message-wrapper p.message').length >= n", arg=count
        )
        return self.messages()

    def talk_frames(self) -> list[dict[str, Any]]:
        events = [json.loads(frame) for frame in self.sent_frames]
        return [event for event in events if event.get("type") == "talk"]

    def status(self) -> str:
        return self.page.locator("#status").inner_text()

    def assert_stayed_on(self, host: str) -> None:
        """No request and no socket left the page's host, and no script failed."""
        assert self.requests
        for url in self.requests + self.sockets:
            if not url.startswith("data:"):
                assert urlsplit(url).hostname == host, url
        assert self.script_errors == []

    def close(self) -> None:
        self.context.close()
