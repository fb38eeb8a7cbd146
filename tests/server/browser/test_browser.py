"""The page in a real browser (Debian's Chromium via Playwright), served from 127.0.0.2 on non-default ports.

The page speaks protocol version 2 (docs/protocol.md): names, who is online,
the same user across reloads, talks with ids that stay pending until echoed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import WebSocketRoute

from chat_client import ChatClient
from chat_page import HOST, ChatPage
from chatcore import CoreLimits, problems
from live import ROOT, SEED_CLIENT, LiveServer, wait_until
from processes import ServerProcess, children, server_process
from redis_server import redis_server
from tcp_proxy import TcpProxy
from transports.config import Transport

MARKUP = '<img src=x onerror="window.__pwned=1"><b>bold</b><script>window.__pwned=2</script>'
NAME_MARKUP = "<b>Carol</b><img src=x>"  # a name is text too (at most 32 characters)
PHONE = {"width": 375, "height": 667}


def two_talking(pages: Callable[..., ChatPage], url: str) -> tuple[ChatPage, ChatPage, str]:
    """Alice starts a room at ``url``, Bob joins by her link, and each says one thing; and the link."""
    alice = pages().open(url, name="Alice")
    link = alice.join_link()
    bob = pages().open(link, name="Bob")
    bob.wait_until_in_room()
    alice.wait_until_in_room()
    alice.send_with_enter("one")
    assert bob.wait_for_messages(1) == ["Alice: one"]  # (two pages sending at once: either may come first)
    bob.send_with_enter("two")
    assert alice.wait_for_messages(2) == ["Alice: one", "Bob: two"]
    assert bob.wait_for_messages(2) == ["Alice: one", "Bob: two"]
    return alice, bob, link


def wait_for_status(page: ChatPage, script: str) -> None:
    page.page.wait_for_function(f"(s => {script})(document.getElementById('status').textContent)")


def pump_until(page: ChatPage, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for ``condition`` while Playwright runs the page's routes and events (it does so inside its calls)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        page.page.wait_for_timeout(20)


def scroll_list(page: ChatPage, where: str) -> None:
    """Scroll the message list to its "top" or "bottom", as a reader would."""
    top = "0" if where == "top" else "w.scrollHeight"
    page.page.locator("#message-wrapper").evaluate(f"w => {{ w.scrollTop = {top}; }}")


class SocketTap:
    """Routes a page's sockets through the test: records what the page sends, and can cut the connection.

    Install it before the page opens. `drop_next_echo` makes the next talk the
    server sends with an id vanish on its way to the page, and cuts the
    connection right there: the server has the talk, the page does not know.
    `hold_echoes` keeps talks with ids from the page until `release`. `cut`
    closes the page's socket and refuses new ones until `restore`.
    """

    def __init__(self, page: ChatPage) -> None:
        self.sent: list[dict[str, Any]] = []
        self.dropped: list[dict[str, Any]] = []
        self.held: list[dict[str, Any]] = []
        self.released: list[dict[str, Any]] = []
        self.opened = 0
        self._dropping = False
        self._refuse_after_drop = False
        self._holding = False
        self._refusing = False
        self._current: tuple[WebSocketRoute, WebSocketRoute] | None = None
        page.page.route_web_socket(re.compile(r"^wss?://"), self._route)

    def _route(self, ws: WebSocketRoute) -> None:
        self.opened += 1
        if self._refusing:
            ws.close(code=4000, reason="cut by the test")
            return
        server = ws.connect_to_server()
        self._current = (ws, server)

        def to_server(message: str | bytes) -> None:
            self.sent.append(json.loads(message))
            server.send(message)

        def to_page(message: str | bytes) -> None:
            event = json.loads(message)
            if event.get("type") == "talk" and "id" in event:
                if self._dropping:
                    self._dropping = False
                    self.dropped.append(event)
                    self._refusing = self._refuse_after_drop
                    self._close()
                    return
                if self._holding:
                    self.held.append(event)
                    return
            ws.send(message)

        ws.on_message(to_server)
        server.on_message(to_page)

    def _close(self) -> None:
        if self._current is not None:
            page_side, server_side = self._current
            self._current = None
            page_side.close(code=4000, reason="cut by the test")
            server_side.close()

    def drop_next_echo(self, *, then_refuse: bool = False) -> None:
        """Lose the next echo of a talk and cut the link; with ``then_refuse``, stay cut until `restore`."""
        self._dropping = True
        self._refuse_after_drop = then_refuse

    def hold_echoes(self) -> None:
        self._holding = True

    def release(self) -> None:
        self._holding = False
        assert self._current is not None
        for event in self.held:
            self._current[0].send(json.dumps(event))
        self.released += self.held
        self.held = []

    def cut(self) -> None:
        self._refusing = True
        self._close()

    def restore(self) -> None:
        self._refusing = False

    def sent_of(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.sent if event.get("type") == kind]


@contextmanager
def cut_off_after_talking(
    start_server: Callable[..., LiveServer], pages: Callable[..., ChatPage]
) -> Iterator[tuple[TcpProxy, ChatPage, ChatPage, str]]:
    """`two_talking` through a TCP proxy (like a flaky network), then the proxy cut until the test restores it."""
    proxy = TcpProxy(HOST)
    try:
        server = start_server(host=HOST, public_ws_port=proxy.port)
        proxy.target = (HOST, server.running.ws_port)
        alice, bob, link = two_talking(pages, server.http_url)
        proxy.sever(refuse_new=True)
        for page in (alice, bob):
            wait_for_status(page, "s.includes('reconnecting')")
        yield proxy, alice, bob, link
    finally:
        proxy.close()


def test_a_whole_conversation(
    e2e_server: LiveServer, pages: Callable[..., ChatPage], transport: Transport, artifacts: Path
) -> None:
    assert e2e_server.running.http_port not in (8000, 8001)
    alice = pages().open(e2e_server.http_url, name="Alice")
    link = alice.join_link()
    assert link.startswith(f"http://{HOST}:{e2e_server.running.http_port}/?join=")

    bob = pages().open(link, name="Bob")
    bob.wait_until_in_room()
    alice.wait_until_in_room()
    alice.send_with_button("hello from alice")
    assert bob.wait_for_messages(1) == ["Alice: hello from alice"]
    bob.send_with_enter("hello from bob")
    expected = ["Alice: hello from alice", "Bob: hello from bob"]
    assert alice.wait_for_messages(2) == expected
    assert bob.wait_for_messages(2) == expected

    bob.send_with_enter(MARKUP)
    expected.append(f"Bob: {MARKUP}")
    for page in (alice, bob):
        assert page.wait_for_messages(3) == expected
        assert page.page.locator("#message-wrapper img, #message-wrapper b, #message-wrapper script").count() == 0
        assert page.page.evaluate("window.__pwned") is None

    carol = pages(viewport=PHONE).open(link, name=NAME_MARKUP)
    assert carol.wait_for_messages(3) == expected  # the history, for a late joiner
    assert sorted({alice.user_id(), bob.user_id(), carol.user_id()}) == ["1", "2", "3"]
    assert alice.page.locator("#name-span").evaluate("e => getComputedStyle(e, '::before').content") == '"user "'
    assert alice.page.locator("#name-span").inner_text() == "1"
    assert alice.wait_for_members(["Alice (you)", "Bob", NAME_MARKUP]) == ["Alice (you)", "Bob", NAME_MARKUP]
    assert carol.my_name() == NAME_MARKUP

    carol.send_with_button("hi, I was late")
    expected.append(f"{NAME_MARKUP}: hi, I was late")
    for page in (alice, bob, carol):
        assert page.wait_for_messages(4) == expected
        assert page.page.locator(":is(#message-wrapper, #members, #my-name) :is(img, b, script)").count() == 0
        assert page.page.evaluate("window.__pwned") is None
        page.assert_stayed_on(HOST)
        assert page.console_errors == []
    # Readable on a phone: nothing wider than the screen.
    assert carol.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    alice.page.screenshot(path=artifacts / f"conversation-{transport.value}.png")
    carol.page.screenshot(path=artifacts / f"late-joiner-{transport.value}.png")


def test_the_join_link_can_be_copied(e2e_server: LiveServer, pages: Callable[..., ChatPage]) -> None:
    alice = pages().open(e2e_server.http_url, name="Alice")
    link = alice.join_link()
    button = alice.page.locator("#message-wrapper button.copy-link")
    button.click()
    assert alice.page.evaluate("navigator.clipboard.readText()") == link
    assert button.inner_text() == "Copied"


def test_the_creator_sees_chat_started_and_a_joiner_sees_joined(
    e2e_server: LiveServer, pages: Callable[..., ChatPage]
) -> None:
    alice = pages().open(e2e_server.http_url, name="Alice")
    link = alice.join_link()
    alice.wait_until_in_room()
    alice.send_with_enter("before bob")
    alice.wait_for_messages(1)
    bob = pages().open(link, name="Bob")
    assert bob.join_link() == link
    info = bob.page.locator("#message-wrapper p.info", has=bob.page.locator("a.join-link"))
    assert info.inner_text().startswith(f"joined; invite others: {link}")
    assert bob.page.locator("#message-wrapper", has_text="chat started").count() == 0
    bob.page.locator("#message-wrapper p.info button.copy-link").wait_for()
    started = alice.page.locator("#message-wrapper p.info", has=alice.page.locator("a.join-link"))
    assert started.inner_text().startswith(f"chat started; join: {link}")


def test_the_name_is_asked_once_and_remembered(e2e_server: LiveServer, pages: Callable[..., ChatPage]) -> None:
    alice = pages()
    alice.open(e2e_server.http_url)
    assert alice.asks_for_name()
    assert alice.page.evaluate("document.body.dataset.state") == "starting"  # it waits for the name to join
    assert alice.sockets == []
    alice.page.fill("#name-input", "   ")
    alice.page.press("#name-input", "Enter")
    assert alice.page.locator("#name-error").inner_text() != ""
    assert alice.page.locator("#name-input").evaluate("e => e === document.activeElement")
    assert alice.asks_for_name()
    alice.give_name("  Alice  ")
    alice.wait_until_in_room()
    assert alice.my_name() == "Alice"
    assert alice.sent_events("init")[0]["name"] == "Alice"

    # A second visit in the same browser, to another room: not asked again; the init carries the name.
    again = alice.context.new_page()
    again.goto(e2e_server.http_url)
    again.wait_for_function("document.body.dataset.state === 'live'")
    assert not again.locator("#name-modal").is_visible()
    assert again.locator("#my-name").inner_text() == "Alice"
    assert again.evaluate("localStorage.getItem('chat.name')") == "Alice"

    # Changeable later: a click on the name; the next visit uses the new one.
    alice.rename("Ada")
    assert alice.sent_events("name") == [{"type": "name", "name": "Ada"}]
    alice.page.wait_for_function("document.getElementById('my-name').innerText === 'Ada'")
    alice.wait_for_members(["Ada (you)"])
    third = alice.context.new_page()
    third.goto(e2e_server.http_url)
    third.wait_for_function("document.body.dataset.state === 'live'")
    assert third.locator("#my-name").inner_text() == "Ada"


def test_a_name_the_server_refuses_is_asked_again_with_its_reason(
    e2e_server: LiveServer, pages: Callable[..., ChatPage]
) -> None:
    alice = pages().open(e2e_server.http_url)
    alice.page.fill("#name-input", "Ada\u00a0L")  # (a no-break space: refused by the server's rule, not the page's)
    alice.page.press("#name-input", "Enter")
    alice.page.wait_for_function("t => document.getElementById('name-error').textContent === t",
                                 arg=problems.NAME_CONTROL.text)
    assert alice.asks_for_name()
    assert alice.received_events("error")[0]["code"] == "bad-name"
    alice.give_name("Ada L")
    alice.wait_until_in_room()
    assert alice.my_name() == "Ada L"
    assert alice.script_errors == []


def test_names_are_shown_and_my_own_messages_are_marked(
    e2e_server: LiveServer, pages: Callable[..., ChatPage]
) -> None:
    alice, bob, _ = two_talking(pages, e2e_server.http_url)
    style = (
        "p => { const s = getComputedStyle(p);"
        " return [s.backgroundColor, s.borderLeftColor, s.marginLeft, s.marginRight].join(' '); }"
    )
    for page, mine, theirs in ((alice, 0, 1), (bob, 1, 0)):
        lines = page.page.locator("#message-wrapper p.message[data-offset]")
        assert "mine" in (lines.nth(mine).get_attribute("class") or "")
        assert "mine" not in (lines.nth(theirs).get_attribute("class") or "")
        assert lines.nth(mine).evaluate(style) != lines.nth(theirs).evaluate(style)
        assert lines.nth(mine).locator(".sender").inner_text() == page.my_name()


def test_the_online_list_follows_joins_leaves_and_renames(
    e2e_server: LiveServer, pages: Callable[..., ChatPage]
) -> None:
    alice = pages().open(e2e_server.http_url, name="Alice")
    link = alice.join_link()
    alice.wait_until_in_room()
    assert alice.wait_for_members(["Alice (you)"])
    assert alice.page.locator("#member-count").inner_text() == "1"

    bob = pages().open(link, name="Bob")
    bob.wait_until_in_room()
    assert bob.wait_for_members(["Alice", "Bob (you)"])
    alice.wait_for_members(["Alice (you)", "Bob"])
    alice.wait_for_notice("Bob joined")
    assert alice.page.locator("#member-count").inner_text() == "2"
    assert bob.notices() == []  # a joiner is not told of its own arrival

    bob.rename("Robert")
    bob.wait_for_members(["Alice", "Robert (you)"])
    alice.wait_for_members(["Alice (you)", "Robert"])
    alice.wait_for_notice("Bob is now Robert")
    bob.wait_for_notice("Bob is now Robert")
    assert bob.my_name() == "Robert"
    bob.send_with_enter("new name")
    assert alice.wait_for_messages(1) == ["Robert: new name"]

    bob.close()
    alice.wait_for_members(["Alice (you)"])
    alice.wait_for_notice("Robert left")
    assert alice.notices() == ["Bob joined", "Bob is now Robert", "Robert left"]
    assert alice.script_errors == []


def test_a_reload_keeps_the_name_the_user_and_the_messages(
    e2e_server: LiveServer, pages: Callable[..., ChatPage]
) -> None:
    alice, bob, link = two_talking(pages, e2e_server.http_url)
    assert alice.page.url == link
    join_key = link.split("?join=", 1)[1]
    token = alice.page.evaluate("k => localStorage.getItem('chat.token:' + k)", join_key)
    assert isinstance(token, str)
    assert len(token) >= 16
    assert token not in alice.page.url

    alice.page.reload()
    alice.wait_until_in_room()
    assert not alice.asks_for_name()
    assert alice.user_id() == "1"  # the same user, by its token
    assert alice.my_name() == "Alice"
    init = alice.sent_events("init")[-1]
    assert (init["v"], init["joinKey"], init["token"], init["name"]) == (2, join_key, token, "Alice")
    assert "after" not in init  # nothing shown yet after a reload
    assert alice.messages() == ["Alice: one", "Bob: two"]
    assert "mine" in (alice.page.locator("#message-wrapper p.message[data-offset]").first.get_attribute("class") or "")
    bob.wait_for_members(["Alice", "Bob (you)"])
    alice.wait_for_members(["Alice (you)", "Bob"])
    alice.send_with_enter("after reload")
    assert bob.wait_for_messages(3) == ["Alice: one", "Bob: two", "Alice: after reload"]


def test_messages_show_their_time_in_the_readers_zone(
    e2e_server: LiveServer, pages: Callable[..., ChatPage]
) -> None:
    alice = pages(locale="en-GB", timezone_id="Asia/Tokyo").open(e2e_server.http_url, name="Alice")
    alice.wait_until_in_room()
    alice.send_with_enter("what time is it")
    alice.wait_for_messages(1)
    stamp = alice.page.locator("#message-wrapper p.message time")
    shown = datetime.fromisoformat(stamp.get_attribute("datetime") or "")
    assert abs((shown - datetime.now(UTC)).total_seconds()) < 120
    assert stamp.inner_text() == shown.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%H:%M")


def test_the_list_follows_the_newest_message(e2e_server: LiveServer, pages: Callable[..., ChatPage]) -> None:
    alice = pages().open(e2e_server.http_url, name="Alice")
    alice.wait_until_in_room()
    for i in range(25):  # within the default burst of the rate limit
        alice.send_with_enter(f"line {i}")
    alice.wait_for_messages(25)
    alice.wait_until_nothing_pending()
    wrapper = alice.page.locator("#message-wrapper")
    assert wrapper.evaluate("w => w.scrollHeight > w.clientHeight")  # it does overflow
    assert wrapper.evaluate("w => w.scrollHeight - w.scrollTop - w.clientHeight") < 2
    assert alice.page.locator("#message-wrapper p.message").last.is_visible()


def test_empty_messages_are_not_sent(e2e_server: LiveServer, pages: Callable[..., ChatPage]) -> None:
    alice = pages().open(e2e_server.http_url, name="Alice")
    alice.wait_until_in_room()
    alice.send_with_button("")
    alice.send_with_enter("   \t ")
    alice.page.fill("#message-input", "")
    alice.page.press("#message-input", "Shift+Enter")
    alice.page.press("#message-input", "Enter")
    alice.send_with_enter("real one")
    assert alice.wait_for_messages(1) == ["Alice: real one"]
    assert [frame["payload"] for frame in alice.talk_frames()] == ["real one"]
    assert alice.pending() == []


def test_shift_enter_makes_a_multi_line_message(e2e_server: LiveServer, pages: Callable[..., ChatPage]) -> None:
    alice, bob, _ = two_talking(pages, e2e_server.http_url)
    assert alice.page.locator("#message-input").evaluate("e => e.tagName") == "TEXTAREA"
    one_line = alice.page.locator("#message-input").evaluate("e => e.offsetHeight")
    alice.page.fill("#message-input", "first line")
    alice.page.press("#message-input", "Shift+Enter")
    alice.page.keyboard.type("second line")
    alice.page.press("#message-input", "Shift+Enter")
    alice.page.keyboard.type("third line")
    assert alice.page.locator("#message-input").evaluate("e => e.offsetHeight") > one_line  # it grows
    assert alice.talk_frames()[-1]["payload"] == "one"  # nothing sent yet
    alice.page.press("#message-input", "Enter")
    expected = ["Alice: one", "Bob: two", "Alice: first line\nsecond line\nthird line"]
    assert bob.wait_for_messages(3) == expected
    assert alice.wait_for_messages(3) == expected
    assert alice.talk_frames()[-1]["payload"] == "first line\nsecond line\nthird line"
    assert alice.page.locator("#message-input").input_value() == ""
    # Shown on three lines, not one.
    last = bob.page.locator("#message-wrapper p.message .text").last
    assert last.evaluate("e => e.getClientRects().length") >= 3 or last.evaluate("e => e.offsetHeight") > 40


def test_server_errors_are_shown_readably(e2e_server: LiveServer, pages: Callable[..., ChatPage]) -> None:
    lost = pages().open(e2e_server.http_url + "?join=no-such-room", name="Alice")
    error = lost.page.locator("#message-wrapper p.error")
    error.wait_for()
    assert error.inner_text() == problems.NOT_FOUND.text
    # It stays away, and says so: not "connecting", and nothing typed waits for a room that is not there.
    lost.page.wait_for_function("document.body.dataset.state === 'not-found'")
    assert lost.status() == problems.NOT_FOUND.text
    assert lost.page.locator("#message-input").is_disabled()
    assert lost.page.locator("#send-button").is_disabled()
    start_over = lost.page.locator("#message-wrapper a", has_text="start a new chat")
    start_over.click()
    assert lost.join_link().startswith(e2e_server.http_url + "?join=")
    assert not lost.asks_for_name()
    assert lost.script_errors == []


def test_talks_have_ids_and_stay_pending_until_echoed(e2e_server: LiveServer, pages: Callable[..., ChatPage]) -> None:
    alice = pages()
    tap = SocketTap(alice)
    alice.open(e2e_server.http_url, name="Alice")
    alice.wait_until_in_room()
    tap.hold_echoes()  # the server's answers to talks wait in the test
    alice.send_with_enter("hello")
    alice.send_with_enter("hello")  # the same text twice: two messages, two ids
    assert alice.pending() == ["Alice: hello", "Alice: hello"]
    assert alice.page.locator("#message-wrapper p.message.pending .state").first.inner_text() == "sending…"
    pump_until(alice, lambda: len(tap.held) == 2)
    assert alice.messages() == []
    tap.release()
    assert alice.wait_for_messages(2) == ["Alice: hello", "Alice: hello"]
    alice.wait_until_nothing_pending()
    ids = [frame["id"] for frame in tap.sent_of("talk")]
    assert len(ids) == len(set(ids)) == 2
    assert all(isinstance(i, str) and 1 <= len(i) <= 64 for i in ids)
    assert [event["id"] for event in tap.released] == ids

    # Another page of the same browser (another tab) numbers its talks differently.
    other = pages()
    other_tap = SocketTap(other)
    other.open(e2e_server.http_url, name="Other")
    other.wait_until_in_room()
    other.send_with_enter("x")
    other.wait_for_messages(1)
    assert other_tap.sent_of("talk")[0]["id"] not in ids


def tapped_alice_and_bob(pages: Callable[..., ChatPage], url: str) -> tuple[ChatPage, SocketTap, ChatPage]:
    """Alice starts a room at ``url`` with her socket tapped, and Bob joins it."""
    alice = pages()
    tap = SocketTap(alice)
    alice.open(url, name="Alice")
    bob = pages().open(alice.join_link(), name="Bob")
    alice.wait_until_in_room()
    bob.wait_until_in_room()
    return alice, tap, bob


def test_a_talk_stored_but_not_echoed_is_recognised_in_the_replay_and_not_sent_again(
    e2e_server: LiveServer, pages: Callable[..., ChatPage]
) -> None:
    alice, tap, bob = tapped_alice_and_bob(pages, e2e_server.http_url)
    alice.send_with_enter("first")
    alice.wait_for_messages(1)

    tap.drop_next_echo()  # the server stores the next talk; the page never sees it, and its link is cut
    alice.send_with_enter("lost echo")
    assert alice.wait_for_messages(2) == ["Alice: first", "Alice: lost echo"]  # it comes by the replay
    assert [event["payload"] for event in tap.dropped] == ["lost echo"]
    assert tap.opened == 2
    alice.wait_until_nothing_pending()
    reconnect_init = tap.sent_of("init")[-1]
    assert reconnect_init["after"] == 1
    assert "token" in reconnect_init
    lost_id = tap.dropped[0]["id"]
    assert [frame["id"] for frame in tap.sent_of("talk")].count(lost_id) == 1  # not resent: the replay had it
    alice.send_with_enter("later")
    expected = ["Alice: first", "Alice: lost echo", "Alice: later"]
    assert bob.wait_for_messages(3) == expected
    assert alice.wait_for_messages(3) == expected
    assert alice.user_id() == "1"


def test_a_resent_talk_is_answered_with_the_original_and_shown_once(
    start_server: Callable[..., LiveServer], pages: Callable[..., ChatPage]
) -> None:
    """A talk the replay cannot show (history limit 1) is sent again; the server answers with the original.

    Then the page fetches older talks, which hold that one again: shown once, in its place by offset.
    """
    server = start_server(host=HOST, core_limits=CoreLimits(history_limit=1))
    alice, tap, bob = tapped_alice_and_bob(pages, server.http_url)

    tap.drop_next_echo(then_refuse=True)
    alice.send_with_enter("x")
    assert bob.wait_for_messages(1) == ["Alice: x"]
    pump_until(alice, lambda: len(tap.dropped) == 1)
    bob.send_with_enter("y")
    bob.wait_for_messages(2)
    assert alice.pending() == ["Alice: x"]
    tap.restore()

    assert alice.wait_for_messages(2) == ["Alice: x", "Bob: y"]
    alice.wait_until_nothing_pending()
    x_id = tap.dropped[0]["id"]
    assert [frame["id"] for frame in tap.sent_of("talk")] == [x_id, x_id]  # sent, then sent again
    assert [event["before"] for event in tap.sent_of("history")] == [2]  # which brings offset 1 again
    alice.page.wait_for_timeout(300)
    assert alice.messages() == ["Alice: x", "Bob: y"]
    assert bob.messages() == ["Alice: x", "Bob: y"]


def test_a_message_typed_while_disconnected_is_pending_and_arrives_once(
    start_server: Callable[..., LiveServer], pages: Callable[..., ChatPage]
) -> None:
    with cut_off_after_talking(start_server, pages) as (proxy, alice, bob, _):
        alice.send_with_enter("typed offline")
        alice.send_with_enter("and another")
        assert alice.pending() == ["Alice: typed offline", "Alice: and another"]
        assert alice.page.locator("#message-wrapper p.message.pending .state").first.inner_text() != ""
        assert alice.talk_frames()[-1]["payload"] == "one"  # nothing sent into a dead socket
        assert alice.messages() == ["Alice: one", "Bob: two"]
        proxy.restore()

        expected = ["Alice: one", "Bob: two", "Alice: typed offline", "Alice: and another"]
        for page in (alice, bob):
            assert page.wait_for_messages(4) == expected
        alice.wait_until_nothing_pending()
        alice.page.wait_for_timeout(300)  # (a duplicate would come right after)
        for page in (alice, bob):
            assert page.messages() == expected
        sent = [frame["payload"] for frame in alice.talk_frames()]
        assert sent == ["one", "typed offline", "and another"]  # each sent once, after the replay
        init = alice.sent_events("init")[-1]
        assert init["after"] == 2
        assert init["token"]
        assert init["name"] == "Alice"
        assert alice.user_id() == "1"
        bob.wait_for_members(["Alice", "Bob (you)"])


def test_a_dropped_connection_reconnects_to_the_same_room_without_duplicates(
    start_server: Callable[..., LiveServer], pages: Callable[..., ChatPage], artifacts: Path, transport: Transport
) -> None:
    with cut_off_after_talking(start_server, pages) as (proxy, alice, bob, link):
        for page in (alice, bob):
            assert "connection lost" in page.status()
        time.sleep(3)  # let the pages retry against the dead link a few times
        assert 2 <= proxy.refused <= 10  # backing off, not hammering
        proxy.restore()

        for page in (alice, bob):
            wait_for_status(page, "s === 'reconnected'")
        assert alice.page.url == link
        alice.send_with_enter("three")
        expected = ["Alice: one", "Bob: two", "Alice: three"]
        assert alice.wait_for_messages(3) == expected
        assert bob.wait_for_messages(3) == expected
        assert (alice.user_id(), bob.user_id()) == ("1", "2")  # the same users, by their tokens
        assert alice.page.locator("#message-wrapper a.join-link").count() == 1
        assert alice.script_errors == []
        alice.page.screenshot(path=artifacts / f"reconnected-{transport.value}.png")


def test_a_long_disconnection_fetches_what_the_replay_left_out(
    start_server: Callable[..., LiveServer], pages: Callable[..., ChatPage]
) -> None:
    """The replay holds the latest ``history_limit`` talks; the page asks for the ones between."""
    server = start_server(host=HOST, core_limits=CoreLimits(history_limit=3))
    alice, tap, bob = tapped_alice_and_bob(pages, server.http_url)
    bob.send_with_enter("b0")
    alice.wait_for_messages(1)

    tap.cut()
    alice.page.wait_for_function("document.body.dataset.state === 'offline'")
    for i in range(1, 9):
        bob.send_with_enter(f"b{i}")
    bob.wait_for_messages(9)
    tap.restore()
    expected = [f"Bob: b{i}" for i in range(9)]
    assert alice.wait_for_messages(9) == expected
    assert tap.sent_of("init")[-1]["after"] == 1
    histories = tap.sent_of("history")
    assert histories
    assert histories[0]["before"] == 7
    assert alice.script_errors == []


LINKS = {
    "see https://example.com/a?b=1&c=2.": ["https://example.com/a?b=1&c=2"],
    "two: http://a.example and HTTPS://B.EXAMPLE/x, then": ["http://a.example/", "https://b.example/x"],
    "(https://en.wikipedia.org/wiki/Set_(mathematics))": ["https://en.wikipedia.org/wiki/Set_(mathematics)"],
    'https://example.com/"onmouseover="window.__pwned=3': ["https://example.com/"],
    "https://例え.jp/パス": ["https://xn--r8jz45g.jp/%E3%83%91%E3%82%B9"],
    "javascript:alert(1)": [],
    "JaVaScRiPt:window.__pwned=4": [],
    "javascript://example.com/%0Awindow.__pwned=5": [],
    "data:text/html,<script>window.__pwned=6</script>": [],
    "vbscript:msgbox(1)": [],
    "\uff48\uff54\uff54\uff50\uff53://example.com (fullwidth letters)": [],
    "xhttps://example.com": [],
    "http:// and https:/// and http://?": [],
    '<a href="javascript:window.__pwned=7">click</a>': [],
}
"""Messages, and the links the page makes of them: http and https URLs only, as URL() reads them."""


def test_http_and_https_urls_are_links_and_nothing_else_is(
    e2e_server: LiveServer, pages: Callable[..., ChatPage]
) -> None:
    alice = pages().open(e2e_server.http_url, name="Alice")
    alice.wait_until_in_room()
    for text in LINKS:
        alice.send_with_enter(text)
    alice.wait_for_messages(len(LINKS))
    lines = alice.page.eval_on_selector_all(
        "#message-wrapper p.message:not(.pending) .text",
        """spans => spans.map(span => ({
            text: span.textContent,
            links: [...span.querySelectorAll("a")].map(a => ({
                href: a.href, text: a.textContent, rel: a.rel, target: a.target, attributes: a.attributes.length,
            })),
            elements: [...span.querySelectorAll("*")].map(e => e.tagName),
        }))""",
    )
    assert [line["text"] for line in lines] == list(LINKS)  # (every character shown, as text)
    for line, hrefs in zip(lines, LINKS.values(), strict=True):
        assert [link["href"] for link in line["links"]] == hrefs, line
        assert set(line["elements"]) <= {"A"}, line
        for link in line["links"]:
            assert (link["rel"], link["target"], link["attributes"]) == ("noopener noreferrer", "_blank", 3), link
            assert link["text"] in line["text"]
    link = alice.page.locator("#message-wrapper .text a").first
    link.hover()
    with alice.context.expect_page() as opened:
        link.click()
    opened.value.close()
    assert alice.page.url.startswith(e2e_server.http_url)  # (the link opened a tab of its own)
    assert alice.page.evaluate("window.__pwned") is None
    assert alice.script_errors == []


def test_older_messages_refused_for_the_rate_are_asked_again_later(
    start_server: Callable[..., LiveServer], pages: Callable[..., ChatPage]
) -> None:
    # A connection's init and one more message fit the burst; then one every 4 s. The page's init and its first page
    # of older messages (50) go through; its second page is refused for the rate, and asked again until it is not.
    limits = CoreLimits(history_limit=3, message_burst=2, messages_per_second=0.25)
    server = start_server(host=HOST, core_limits=limits)
    with ChatClient(server.ws_url) as starter:
        join_key = starter.init()["joinKey"]
        starter.talk("talk 1")
        assert starter.recv()["payload"] == "talk 1"
    for n in range(2, 61):  # (a connection each: its init and its talk within the burst)
        with ChatClient(server.ws_url) as other:
            other.init(join_key)
            other.talk(f"talk {n}")
            while other.recv()["payload"] != f"talk {n}":
                pass
    reader = pages().open(f"{server.http_url}?join={join_key}", name="Reader")
    reader.wait_until_in_room()
    for _ in range(100):  # (older messages load as the reader scrolls up)
        if len(reader.messages()) >= 60:
            break
        reader.page.evaluate("document.getElementById('message-wrapper').scrollTop = 0")
        reader.page.wait_for_timeout(200)
    assert [text.split(": ", 1)[1] for text in reader.messages()] == [f"talk {n}" for n in range(1, 61)]
    refusals = reader.received_events("error")
    assert refusals
    assert {(event["request"], event["code"]) for event in refusals} == {("history", "rate-limited")}
    assert len(reader.sent_events("history")) == len(refusals) + 2
    assert reader.script_errors == []


def without_the_limit(ws: WebSocketRoute) -> None:
    """Routes a page's socket without the init reply's limit on a talk's length."""
    server = ws.connect_to_server()

    def to_page(message: str | bytes) -> None:
        event = json.loads(message)
        event.pop("maxPayloadChars", None)
        ws.send(json.dumps(event))

    server.on_message(to_page)


def test_a_refused_message_stays_with_its_reason_and_can_be_retried(
    start_server: Callable[..., LiveServer], pages: Callable[..., ChatPage]
) -> None:
    # The init takes one message of the burst, the too long talk another, "a" the third; "b" is one too many
    # (Alice joins last, and sends at once: the burst has not refilled).
    limits = CoreLimits(max_payload_chars=20, message_burst=3, messages_per_second=0.4)
    server = start_server(host=HOST, core_limits=limits)
    bob = pages().open(server.http_url, name="Bob")
    link = bob.join_link()
    alice = pages()
    # The page knows the limit from the init reply and sends nothing longer: that is taken off on the way, for
    # the server to refuse one.
    alice.page.route_web_socket(re.compile(r"^wss?://"), without_the_limit)
    alice.open(link, name="Alice")
    alice.wait_until_in_room()
    bob.wait_until_in_room()

    alice.send_with_enter("x" * 21)
    failed = alice.page.locator("#message-wrapper p.message.failed")
    failed.wait_for()
    assert failed.locator(".reason").inner_text() == problems.TOO_LONG.format(limit=20).text
    assert failed.locator(".sender").inner_text() == "Alice"
    assert failed.locator(".text").inner_text() == "x" * 21
    assert failed.locator("button.retry").is_hidden()  # it would be refused again: no Retry
    assert failed.locator("button.discard").is_visible()

    alice.send_with_enter("a")
    alice.send_with_enter("b")  # refused: too many
    too_many = alice.page.locator("#message-wrapper p.message.failed", has_text="b")
    too_many.locator(".reason").wait_for()
    assert too_many.locator(".reason").inner_text() == problems.RATE_LIMITED.text
    assert too_many.locator("button.retry").is_visible()  # it may go through after a pause
    assert bob.wait_for_messages(1) == ["Alice: a"]

    alice.page.wait_for_timeout(3000)  # the rate limit refills: one message every 2.5 seconds
    too_many.locator("button.retry").click()
    assert bob.wait_for_messages(2) == ["Alice: a", "Alice: b"]
    assert alice.wait_for_messages(2) == ["Alice: a", "Alice: b"]
    b_frames = [frame for frame in alice.talk_frames() if frame["payload"] == "b"]
    assert len(b_frames) == 2
    assert b_frames[0]["id"] == b_frames[1]["id"]
    # The too long one is still there, with its reason, and never reached Bob.
    assert alice.page.locator("#message-wrapper p.message.failed").count() == 1
    assert failed.locator(".reason").inner_text() == problems.TOO_LONG.format(limit=20).text
    assert bob.messages() == ["Alice: a", "Alice: b"]
    assert alice.script_errors == []


def test_scrolling_to_the_top_loads_older_messages(
    start_server: Callable[..., LiveServer], pages: Callable[..., ChatPage]
) -> None:
    server = start_server(host=HOST, core_limits=CoreLimits(history_limit=5))
    alice = pages().open(server.http_url, name="Alice")
    link = alice.join_link()
    alice.wait_until_in_room()
    for i in range(1, 13):
        alice.send_with_enter(f"message {i}\n.\n.\n.")  # four lines each: five of them overflow the list
    alice.wait_for_messages(12)
    everything = [f"Alice: message {i}\n.\n.\n." for i in range(1, 13)]

    bob = pages(viewport=PHONE).open(link, name="Bob")
    bob.wait_until_in_room()
    assert bob.wait_for_messages(5) == everything[7:]
    wrapper = bob.page.locator("#message-wrapper")
    assert wrapper.evaluate("w => w.scrollHeight > w.clientHeight")
    assert bob.page.locator("#load-older").is_visible()
    assert bob.sent_events("history") == []  # not before the reader goes up

    scroll_list(bob, "top")
    assert bob.wait_for_messages(12) == everything
    assert bob.sent_events("history") == [{"type": "history", "before": 8, "limit": 50}]
    assert wrapper.evaluate("w => w.scrollTop") > 0  # the reader's place is kept: still at message 8
    assert not bob.page.locator("#load-older").is_visible()
    scroll_list(bob, "top")
    bob.page.wait_for_timeout(300)
    assert len(bob.sent_events("history")) == 1  # nothing older: no more asking

    # A list too short to scroll: the init reply's "older" is enough to fetch them.
    carol = pages(viewport={"width": 1280, "height": 1600}).open(link, name="Carol")
    assert carol.wait_for_messages(12) == everything
    assert [event["before"] for event in carol.sent_events("history")] == [8]


def test_unread_messages_show_in_the_title(e2e_server: LiveServer, pages: Callable[..., ChatPage]) -> None:
    alice, bob, _ = two_talking(pages, e2e_server.http_url)
    for i in range(15):
        alice.send_with_enter(f"filler {i}\n.")
    bob.wait_for_messages(17)
    assert bob.title() == "Chat"
    assert alice.title() == "Chat"  # one's own messages are not unread

    scroll_list(bob, "top")
    bob.page.wait_for_function("document.getElementById('message-wrapper').scrollTop < 40")
    alice.wait_until_nothing_pending()
    for text in ("u1", "u2", "u3"):
        alice.send_with_enter(text)
    bob.wait_for_messages(20)
    bob.page.wait_for_function("document.title === '(3) Chat'")
    scroll_list(bob, "bottom")
    bob.page.wait_for_function("document.title === 'Chat'")

    # A hidden tab counts too, and is cleared when it shows again.
    bob.page.evaluate(
        "() => { Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    alice.send_with_enter("while hidden")
    bob.wait_for_messages(21)
    bob.page.wait_for_function("document.title === '(1) Chat'")
    bob.page.evaluate(
        "() => { Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'});"
        " document.dispatchEvent(new Event('visibilitychange')); }"
    )
    bob.page.wait_for_function("document.title === 'Chat'")


def test_the_seed_page_and_ours_share_a_room(
    start_server: Callable[..., LiveServer], pages: Callable[..., ChatPage], tmp_path: Path
) -> None:
    """The seed's page (default ports, localhost, innerHTML, throws on unknown events) beside ours in one room."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "web", site)
    shutil.copytree(SEED_CLIENT, site / "seed")
    start_server(host="127.0.0.1", http_port=8000, ws_port=8001, web_dir=site)

    def seed_page() -> ChatPage:
        page = pages()
        page.context.route("https://**/*", lambda route: route.abort())  # its Bulma CDN: no internet here
        return page

    alice = seed_page().open("http://localhost:8000/seed/")
    link = alice.page.locator("#message-wrapper a").get_attribute("href")
    assert link is not None
    assert link.startswith("http://localhost:8000/seed/?join=")
    join_key = link.split("?join=", 1)[1]
    bob = pages().open(f"http://localhost:8000/?join={join_key}", name="Bob")
    bob.wait_until_in_room()
    assert bob.wait_for_members(["user 1", "Bob (you)"])
    alice.send_with_enter("hello from the seed page")
    assert bob.wait_for_messages(1) == ["user 1: hello from the seed page"]
    bob.send_with_enter("hi back <b>bold</b>")
    bob.rename("Robert")
    bob.send_with_enter("renamed")
    assert bob.wait_for_messages(3) == [
        "user 1: hello from the seed page", "Bob: hi back <b>bold</b>", "Robert: renamed"
    ]
    carol = seed_page().open(link)
    bob.wait_for_notice("user 3 joined")
    alice.page.wait_for_function("document.querySelectorAll('#message-wrapper p').length >= 4")
    lines = alice.page.locator("#message-wrapper p").all_inner_texts()
    assert lines[1:] == ["User 1: hello from the seed page", "User 2: hi back <b>bold</b>", "User 2: renamed"]
    assert alice.page.locator("#message-wrapper b").count() == 0  # escaped for the seed page
    carol.page.wait_for_function("document.querySelectorAll('#message-wrapper p').length >= 4")
    bob.close()
    carol.send_with_enter("after bob left")
    for page in (alice, carol):
        page.page.wait_for_function(
            "Array.from(document.querySelectorAll('#message-wrapper p'))"
            ".some(p => p.innerText === 'User 3: after bob left')"
        )
        assert page.script_errors == []
        received = {json.loads(frame)["type"] for frame in page.received_frames}
        assert received <= {"init", "talk"}
        assert all(set(json.loads(frame)) <= {"type", "joinKey", "userId", "payload", "time"}
                   for frame in page.received_frames)


def test_the_unchanged_seed_page_works_in_a_browser(
    start_server: Callable[..., LiveServer], pages: Callable[..., ChatPage]
) -> None:
    """The seed's page hard-codes ws://localhost:8001/ and renders with innerHTML; default ports.

    It works whichever name of this machine it was loaded from: bob opens it at 127.0.0.1, the
    address the log prints, and its socket still goes to localhost.
    """
    start_server(host="127.0.0.1", http_port=8000, ws_port=8001, web_dir=SEED_CLIENT)

    def seed_page() -> ChatPage:
        page = pages()
        page.context.route("https://**/*", lambda route: route.abort())  # its Bulma CDN: no internet here
        return page

    alice = seed_page().open("http://localhost:8000/")
    link_element = alice.page.locator("#message-wrapper a")
    link = link_element.get_attribute("href")
    assert link is not None
    assert link.startswith("http://localhost:8000/?join=")
    bob = seed_page().open(link.replace("//localhost:", "//127.0.0.1:"))
    bob.page.locator("#message-wrapper a").wait_for()
    alice.send_with_enter("hello from the seed page")
    bob.page.wait_for_function("document.querySelectorAll('#message-wrapper p').length >= 2")
    bob.send_with_enter("hi back")
    for page in (alice, bob):
        page.page.wait_for_function("document.querySelectorAll('#message-wrapper p').length >= 3")
        lines = page.page.locator("#message-wrapper p").all_inner_texts()
        assert lines[1:] == ["User 1: hello from the seed page", "User 2: hi back"]
        assert page.script_errors == []
    assert (alice.page.locator("#name-span").inner_text(), bob.page.locator("#name-span").inner_text()) == ("1", "2")


def test_two_processes_sharing_redis_show_names_and_presence(
    pages: Callable[..., ChatPage], redis_pair: tuple[ServerProcess, ServerProcess]
) -> None:
    """Alice's page on one process, Bob's on another, the room in one Redis."""
    first, second = redis_pair
    alice = pages().open(f"http://{HOST}:{first.http_port}/", name="Alice")
    link = alice.join_link()
    bob = pages().open(link.replace(f":{first.http_port}/", f":{second.http_port}/"), name="Bob")
    bob.wait_until_in_room()
    assert bob.sockets == [f"ws://{HOST}:{second.http_port}/ws"]  # each on its page's own origin
    assert alice.sockets == [f"ws://{HOST}:{first.http_port}/ws"]
    assert bob.wait_for_members(["Alice", "Bob (you)"])
    alice.wait_for_members(["Alice (you)", "Bob"])
    alice.wait_for_notice("Bob joined")
    alice.send_with_enter("hello from the first")
    assert bob.wait_for_messages(1) == ["Alice: hello from the first"]  # (else the two may cross)
    bob.send_with_enter("hello from the second")
    expected = ["Alice: hello from the first", "Bob: hello from the second"]
    assert alice.wait_for_messages(2) == expected
    assert bob.wait_for_messages(2) == expected
    bob.rename("Robert")
    alice.wait_for_members(["Alice (you)", "Robert"])
    bob.close()
    alice.wait_for_members(["Alice (you)"])
    alice.wait_for_notice("Robert left")
    assert alice.script_errors == []


def test_pages_on_workers_that_die_reconnect_to_another_and_keep_the_room(
    pages: Callable[..., ChatPage], artifacts: Path, transport: Transport, tmp_path: Path
) -> None:
    """``--workers 2`` with Redis: each worker is killed in turn; every page comes back, history whole, no doubles."""
    with redis_server(tmp_path) as redis, server_process(
        "--transport", transport.value, "--host", HOST, "--http-port", "0", "--ws-port", "0",
        "--redis", redis.url, "--workers", "2",
    ) as pair:
        wait_until(lambda: len(children(pair.process.pid)) == 2)
        alice, bob, _ = two_talking(pages, f"http://{HOST}:{pair.http_port}/")

        for victim in children(pair.process.pid):  # each page sits on one of the two: both die in turn
            os.kill(victim, signal.SIGKILL)

            def replaced(victim: int = victim) -> bool:
                workers = children(pair.process.pid)
                return victim not in workers and len(workers) == 2

            wait_until(replaced)
        deadline = time.monotonic() + 20
        while len(alice.sockets) < 2 or len(bob.sockets) < 2:  # each page cut once at least, and opened another
            assert time.monotonic() < deadline, (alice.sockets, bob.sockets)
            alice.page.wait_for_timeout(100)  # (Playwright hands over its events while one of its calls runs)
        for page in (alice, bob):  # and connected again, to the other worker or a new one
            wait_for_status(page, "['reconnected', ''].includes(s)")
            page.wait_until_in_room()
        alice.send_with_enter("three")
        bob.wait_for_messages(3)  # (sent at once, either could come first)
        bob.send_with_enter("four")
        for page in (alice, bob):
            shown = page.wait_for_messages(4)
            assert shown == ["Alice: one", "Bob: two", "Alice: three", "Bob: four"]
        assert (alice.user_id(), bob.user_id()) == ("1", "2")
        alice.wait_for_members(["Alice (you)", "Bob"])
        assert alice.script_errors == bob.script_errors == []
        alice.page.screenshot(path=artifacts / f"workers-{transport.value}.png")
