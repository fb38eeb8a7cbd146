"""The page in a real browser (Debian's Chromium via Playwright), served from 127.0.0.2 on non-default ports."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser

from chat_page import ChatPage
from live import SEED_CLIENT, LiveServer, wait_until
from processes import children, server_process
from redis_server import redis_server
from tcp_proxy import TcpProxy
from transports.config import Transport

HOST = "127.0.0.2"  # on loopback, but not localhost: the page must not assume either
MARKUP = '<img src=x onerror="window.__pwned=1"><b>bold</b><script>window.__pwned=2</script>'


@pytest.fixture
def e2e_server(start_server: Callable[..., LiveServer]) -> LiveServer:
    return start_server(host=HOST)


@pytest.fixture
def pages(browser: Browser) -> Iterator[Callable[..., ChatPage]]:
    opened: list[ChatPage] = []

    def new_page(**options: Any) -> ChatPage:
        page = ChatPage(browser, permissions=["clipboard-read", "clipboard-write"], **options)
        opened.append(page)
        return page

    yield new_page
    for page in opened:
        page.close()


def two_talking(pages: Callable[..., ChatPage], url: str) -> tuple[ChatPage, ChatPage, str]:
    """Alice starts a room at ``url``, Bob joins by her link, and each says one thing; and the link."""
    alice = pages().open(url)
    link = alice.join_link()
    bob = pages().open(link)
    bob.wait_until_in_room()
    alice.send_with_enter("one")
    bob.send_with_enter("two")
    assert alice.wait_for_messages(2) == ["User 1: one", "User 2: two"]
    return alice, bob, link


def test_a_whole_conversation(
    e2e_server: LiveServer, pages: Callable[..., ChatPage], transport: Transport, artifacts: Path
) -> None:
    assert e2e_server.running.http_port not in (8000, 8001)
    alice = pages().open(e2e_server.http_url)
    link = alice.join_link()
    assert link.startswith(f"http://{HOST}:{e2e_server.running.http_port}/?join=")

    bob = pages().open(link)
    bob.wait_until_in_room()
    alice.send_with_button("hello from alice")
    bob.send_with_enter("hello from bob")
    expected = ["User 1: hello from alice", "User 2: hello from bob"]
    assert alice.wait_for_messages(2) == expected
    assert bob.wait_for_messages(2) == expected

    bob.send_with_enter(MARKUP)
    expected.append(f"User 2: {MARKUP}")
    for page in (alice, bob):
        assert page.wait_for_messages(3) == expected
        assert page.page.locator("#message-wrapper img, #message-wrapper b, #message-wrapper script").count() == 0
        assert page.page.evaluate("window.__pwned") is None

    carol = pages().open(link)
    assert carol.wait_for_messages(3) == expected  # the history, for a late joiner
    assert sorted({alice.name(), bob.name(), carol.name()}) == ["1", "2", "3"]
    assert alice.page.locator("#name-span").evaluate("e => getComputedStyle(e, '::before').content") == '"user "'

    carol.send_with_button("hi, I was late")
    expected.append("User 3: hi, I was late")
    for page in (alice, bob, carol):
        assert page.wait_for_messages(4) == expected
        page.assert_stayed_on(HOST)
        assert page.console_errors == []
    alice.page.screenshot(path=artifacts / f"conversation-{transport.value}.png")
    carol.page.screenshot(path=artifacts / f"late-joiner-{transport.value}.png")


def test_the_join_link_can_be_copied(e2e_server: LiveServer, pages: Callable[..., ChatPage]) -> None:
    alice = pages().open(e2e_server.http_url)
    link = alice.join_link()
    button = alice.page.locator("#message-wrapper button.copy-link")
    button.click()
    assert alice.page.evaluate("navigator.clipboard.readText()") == link
    assert button.inner_text() == "Copied"


def test_a_reload_stays_in_the_room(e2e_server: LiveServer, pages: Callable[..., ChatPage]) -> None:
    alice = pages().open(e2e_server.http_url)
    link = alice.join_link()
    assert alice.page.url == link
    alice.send_with_enter("before reload")
    alice.wait_for_messages(1)
    alice.page.reload()
    assert alice.wait_for_messages(1) == ["User 1: before reload"]
    assert alice.name() == "2"


def test_messages_show_their_time_in_the_readers_zone(
    e2e_server: LiveServer, pages: Callable[..., ChatPage]
) -> None:
    alice = pages(locale="en-GB", timezone_id="Asia/Tokyo").open(e2e_server.http_url)
    alice.wait_until_in_room()
    alice.send_with_enter("what time is it")
    alice.wait_for_messages(1)
    stamp = alice.page.locator("#message-wrapper p.message time")
    shown = datetime.fromisoformat(stamp.get_attribute("datetime") or "")
    assert abs((shown - datetime.now(UTC)).total_seconds()) < 120
    assert stamp.inner_text() == shown.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%H:%M")


def test_the_list_follows_the_newest_message(e2e_server: LiveServer, pages: Callable[..., ChatPage]) -> None:
    alice = pages().open(e2e_server.http_url)
    alice.wait_until_in_room()
    for i in range(25):  # within the default burst of the rate limit
        alice.send_with_enter(f"line {i}")
    alice.wait_for_messages(25)
    wrapper = alice.page.locator("#message-wrapper")
    assert wrapper.evaluate("w => w.scrollHeight > w.clientHeight")  # it does overflow
    assert wrapper.evaluate("w => w.scrollHeight - w.scrollTop - w.clientHeight") < 2
    assert alice.page.locator("#message-wrapper p.message").last.is_visible()


def test_empty_messages_are_not_sent(e2e_server: LiveServer, pages: Callable[..., ChatPage]) -> None:
    alice = pages().open(e2e_server.http_url)
    alice.wait_until_in_room()
    alice.send_with_button("")
    alice.send_with_enter("   \t ")
    alice.send_with_enter("real one")
    assert alice.wait_for_messages(1) == ["User 1: real one"]
    assert [frame["payload"] for frame in alice.talk_frames()] == ["real one"]


def test_server_errors_are_shown_readably(e2e_server: LiveServer, pages: Callable[..., ChatPage]) -> None:
    lost = pages().open(e2e_server.http_url + "?join=no-such-room")
    error = lost.page.locator("#message-wrapper p.error")
    error.wait_for()
    assert error.inner_text() == "chat not found."
    start_over = lost.page.locator("#message-wrapper a", has_text="start a new chat")
    start_over.click()
    assert lost.join_link().startswith(e2e_server.http_url + "?join=")
    assert lost.script_errors == []


def test_a_dropped_connection_reconnects_to_the_same_room_without_duplicates(
    start_server: Callable[..., LiveServer], pages: Callable[..., ChatPage], artifacts: Path, transport: Transport
) -> None:
    # The page's socket goes through a proxy the test can cut, like a flaky network.
    proxy = TcpProxy(HOST)
    try:
        server = start_server(host=HOST, public_ws_port=proxy.port)
        proxy.target = (HOST, server.running.ws_port)
        alice, bob, link = two_talking(pages, server.http_url)

        proxy.sever(refuse_new=True)
        for page in (alice, bob):
            page.page.wait_for_function("document.getElementById('status').textContent.includes('reconnecting')")
            assert "connection lost" in page.status()
        time.sleep(3)  # let the pages retry against the dead link a few times
        assert 2 <= proxy.refused <= 10  # backing off, not hammering
        proxy.restore()

        for page in (alice, bob):
            page.page.wait_for_function("document.getElementById('status').textContent === 'reconnected'")
        assert alice.page.url == link
        alice.send_with_enter("three")
        expected = ["User 1: one", "User 2: two", f"User {alice.name()}: three"]
        assert alice.wait_for_messages(3) == expected
        assert bob.wait_for_messages(3) == expected
        assert alice.page.locator("#message-wrapper a.join-link").count() == 1
        assert alice.script_errors == []
        alice.page.screenshot(path=artifacts / f"reconnected-{transport.value}.png")
    finally:
        proxy.close()



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
    bob.send_with_enter("hi back")
    for page in (alice, bob):
        page.page.wait_for_function("document.querySelectorAll('#message-wrapper p').length >= 3")
        lines = page.page.locator("#message-wrapper p").all_inner_texts()
        assert lines[1:] == ["User 1: hello from the seed page", "User 2: hi back"]
        assert page.script_errors == []
    assert (alice.page.locator("#name-span").inner_text(), bob.page.locator("#name-span").inner_text()) == ("1", "2")


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
            page.page.wait_for_function("['reconnected', ''].includes(document.getElementById('status').textContent)")
        alice.send_with_enter("three")
        bob.send_with_enter("four")
        for page in (alice, bob):
            shown = page.wait_for_messages(4)
            assert [line.split(": ", 1)[1] for line in shown] == ["one", "two", "three", "four"]
        assert alice.script_errors == bob.script_errors == []
        alice.page.screenshot(path=artifacts / f"workers-{transport.value}.png")
