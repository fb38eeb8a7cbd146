"""How the page behaves for the person using it, in a real browser: the length limit said before sending,
refusals that cannot succeed offering no Retry, a page in no room offering a new chat, "… is typing", the online
list greyed while reconnecting, opt-in desktop notifications, the unread count and mentions of one's name.
(That a refusal which cannot succeed again offers no Retry is in test_browser.py, with the refusals.)

What is tested here is the page's, not the transport's: each test runs on one transport (the others in
tests/server/browser run on both). The key ones run at a desktop's size and at a phone's (390 by 844).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest

from chat_page import HOST, ChatPage
from chatcore import CoreLimits
from live import LiveServer
from tcp_proxy import TcpProxy
from transports.config import Transport

pytestmark = pytest.mark.parametrize("transport", [Transport.WSPROTO])

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SIZES = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
ELLIPSIS = "\u2026"

def in_a_room(pages: Callable[..., ChatPage], url: str, *names: str, **options: object) -> list[ChatPage]:
    """The first name starts a room at ``url``, the others join by its link; each page opened with ``options``."""
    first = pages(**options).open(url, name=names[0])
    link = first.join_link()
    joined = [first] + [pages(**options).open(link, name=name) for name in names[1:]]
    for page in joined:
        page.wait_until_in_room()
    for page in joined:
        page.wait_for_members([n + (" (you)" if p is page else "") for n, p in zip(names, joined, strict=True)])
    return joined


def counter(page: ChatPage) -> str:
    return page.page.locator("#char-count").inner_text() if page.page.locator("#char-count").is_visible() else ""


def fill(page: ChatPage, text: str) -> None:
    page.page.fill("#message-input", text)


def tab_to(page: ChatPage, selector: str, start: str = "#message-input") -> None:
    """Reach ``selector`` with the Tab key from ``start``: it is in the keyboard's order."""
    page.page.focus(start)
    for _ in range(12):
        if page.page.evaluate("s => document.activeElement === document.querySelector(s)", selector):
            return
        page.page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


# ---- the length limit ----------------------------------------------------------------------------------------


@SIZES
def test_the_length_limit_is_counted_as_the_server_counts_and_never_exceeded(
    start_server: Callable[..., LiveServer], pages: Callable[..., ChatPage], viewport: dict[str, int]
) -> None:
    server = start_server(host=HOST, core_limits=CoreLimits(max_payload_chars=20))
    alice, bob = in_a_room(pages, server.http_url, "Alice", "Bob", viewport=viewport)
    assert alice.received_events("init")[-1]["maxPayloadChars"] == 20  # the server tells the page its limit

    fill(alice, "short")
    assert counter(alice) == ""  # far from the limit: no counter
    fill(alice, "x" * 12)
    assert counter(alice) == "8 characters left"
    # An emoji is one character for the server (one code point), though two UTF-16 units for JavaScript.
    smileys = "\U0001f600" * 20
    fill(alice, smileys)
    assert counter(alice) == "0 characters left"
    assert alice.page.locator("#send-button").is_enabled()
    alice.page.press("#message-input", "Enter")
    assert bob.wait_for_messages(1) == [f"Alice: {smileys}"]  # the server took it: the page counted as it does
    assert counter(alice) == ""  # (the input is empty again)

    fill(alice, "\U0001f600" * 19 + "xy")  # 21
    assert counter(alice) == "1 character too long: the limit is 20; shorten it to send"
    assert alice.page.locator("#send-button").is_disabled()
    assert alice.page.locator("#message-input").get_attribute("aria-invalid") == "true"
    assert alice.page.locator("#char-count").is_visible()
    alice.page.press("#message-input", "Enter")  # does nothing: the text stays, nothing is sent
    fill(alice, "y" * 25)
    assert counter(alice) == "5 characters too long: the limit is 20; shorten it to send"
    alice.page.press("#message-input", "Enter")
    assert alice.page.input_value("#message-input") == "y" * 25
    assert [frame["payload"] for frame in alice.talk_frames()] == [smileys]
    assert alice.pending() == []

    fill(alice, "   " + "z" * 20 + "\n  ")  # the spaces around are not sent, so not counted
    assert counter(alice) == "0 characters left"
    assert alice.page.locator("#message-input").get_attribute("aria-invalid") is None
    alice.page.click("#send-button")
    assert bob.wait_for_messages(2) == [f"Alice: {smileys}", "Alice: " + "z" * 20]
    assert alice.script_errors == []


# ---- a page in no room -----------------------------------------------------------------------------------------


@SIZES
def test_a_page_in_no_room_disables_the_composer_and_offers_a_new_chat(
    e2e_server: LiveServer, pages: Callable[..., ChatPage], viewport: dict[str, int]
) -> None:
    lost = pages(viewport=viewport).open(e2e_server.http_url + "?join=no-such-room", name="Alice")
    lost.page.wait_for_function("document.body.dataset.state === 'not-found'")
    assert lost.page.locator("#message-input").is_disabled()
    assert lost.page.locator("#send-button").is_disabled()
    new_chat = lost.page.get_by_role("button", name="Start a new chat")
    assert new_chat.is_visible()
    assert lost.page.evaluate("document.activeElement.id") == "new-chat"  # the keyboard is on it
    lost.page.keyboard.press("Enter")
    link = lost.join_link()
    assert link.startswith(e2e_server.http_url + "?join=")
    lost.wait_until_in_room()
    assert lost.page.locator("#message-input").is_enabled()
    assert lost.page.locator("#start-over").is_hidden()

    # A chat its owner ends: every page in it says so, and offers a new one (Space works as well as Enter).
    bob = pages(viewport=viewport).open(link, name="Bob")
    bob.wait_until_in_room()
    lost.page.click("#room-controls summary")
    lost.page.click("#end-button")
    lost.page.click("#end-confirm")
    for page in (lost, bob):
        page.page.wait_for_function("document.body.dataset.state === 'ended'")
        assert page.page.locator("#message-input").is_disabled()
        assert page.page.locator("#send-button").is_disabled()
        assert page.page.locator("#new-chat").is_visible()
    tab_to(bob, "#new-chat", start="#my-name")
    with bob.page.expect_navigation():
        bob.page.keyboard.press(" ")
    assert bob.join_link() != link
    bob.wait_until_in_room()
    assert bob.page.locator("#new-chat").is_hidden()
    assert bob.user_id() == "1"  # a new room, of which Bob is the first user
    assert bob.script_errors == []
    assert lost.script_errors == []


# ---- who is typing -----------------------------------------------------------------------------------------------


def test_typing_is_sent_sparingly_and_shown_to_the_others_for_a_while(
    e2e_server: LiveServer, pages: Callable[..., ChatPage]
) -> None:
    alice, bob, carol, dan = in_a_room(pages, e2e_server.http_url, "Alice", "Bob", "Carol", "Dan")
    typing = bob.page.locator("#typing")
    assert typing.get_attribute("aria-live") == "polite"

    def shows(text: str) -> None:
        bob.page.wait_for_function("t => document.getElementById('typing').textContent === t", arg=text)

    # Bob's timers are the test's: "is typing" lasts 5 s of his clock. Alice's clock stands still while she types.
    later = datetime.now() + timedelta(minutes=1)
    for page in (alice, bob):
        page.page.clock.install()
        page.page.clock.pause_at(later)

    alice.page.locator("#message-input").press_sequentially("hel")
    shows(f"Alice is typing{ELLIPSIS}")
    assert alice.sent_events("typing") == [{"type": "typing"}]  # three keys within 2 s: one event
    assert alice.page.locator("#typing").inner_text() == ""  # never for oneself
    bob.page.clock.run_for(4000)
    assert typing.inner_text() == f"Alice is typing{ELLIPSIS}"
    carol.page.locator("#message-input").press_sequentially("x")
    shows(f"Alice and Carol are typing{ELLIPSIS}")
    dan.page.locator("#message-input").press_sequentially("y")
    shows(f"Several people are typing{ELLIPSIS}")
    alice.page.press("#message-input", "Enter")  # her message comes: she is no longer typing it
    shows(f"Carol and Dan are typing{ELLIPSIS}")
    dan.close()  # Dan leaves
    shows(f"Carol is typing{ELLIPSIS}")
    bob.page.clock.run_for(4800)
    assert typing.inner_text() == f"Carol is typing{ELLIPSIS}"
    bob.page.clock.run_for(300)
    shows("")  # 5 s after her last one

    # Alice's page: only spaces are not typing; another "typing" once 2 s have passed, and one only.
    alice.page.clock.fast_forward(2100)
    alice.page.locator("#message-input").press_sequentially("  ")
    alice.page.evaluate("0")  # (a round trip: what the keys sent is recorded by now)
    assert len(alice.sent_events("typing")) == 1
    alice.page.locator("#message-input").press_sequentially("ok")
    alice.page.evaluate("0")
    assert len(alice.sent_events("typing")) == 2
    assert bob.sent_events("typing") == []
    assert bob.script_errors == []
    assert alice.script_errors == []


# ---- who is online, while reconnecting ---------------------------------------------------------------------


@pytest.fixture
def behind_a_proxy(start_server: Callable[..., LiveServer]) -> Iterator[tuple[TcpProxy, LiveServer]]:
    proxy = TcpProxy(HOST)
    try:
        server = start_server(host=HOST, public_ws_port=proxy.port)
        proxy.target = (HOST, server.running.ws_port)
        yield proxy, server
    finally:
        proxy.close()


@SIZES
def test_the_online_list_is_greyed_and_said_out_of_date_while_reconnecting(
    behind_a_proxy: tuple[TcpProxy, LiveServer], pages: Callable[..., ChatPage], viewport: dict[str, int]
) -> None:
    proxy, server = behind_a_proxy
    alice, _ = in_a_room(pages, server.http_url, "Alice", "Bob", viewport=viewport)
    note = alice.page.locator("#presence-note")
    assert note.is_hidden()
    assert alice.page.locator("#presence.stale").count() == 0

    proxy.sever(refuse_new=True)
    alice.page.locator("#presence.stale").wait_for()
    assert note.is_visible()
    assert note.inner_text() == f"Reconnecting{ELLIPSIS} the list of who is online may be out of date"
    assert alice.members() == ["Alice (you)", "Bob"]  # still shown, as it was
    assert alice.page.locator("#members").evaluate("m => Number(getComputedStyle(m).opacity)") < 1
    assert alice.page.locator("#members").get_attribute("aria-describedby") == "presence-note"

    proxy.restore()
    alice.page.wait_for_function("document.getElementById('status').textContent === 'reconnected'")
    assert alice.page.locator("#presence.stale").count() == 0
    assert note.is_hidden()
    assert alice.page.locator("#members").evaluate("m => Number(getComputedStyle(m).opacity)") == 1
    assert alice.script_errors == []
