"""How the page behaves for the person using it, in a real browser: the length limit said before sending,
refusals that cannot succeed offering no Retry, a page in no room offering a new chat, "… is typing", the online
list greyed while reconnecting, opt-in desktop notifications, the unread count and mentions of one's name.
(That a refusal which cannot succeed again offers no Retry is in test_browser.py, with the refusals.)

What is tested here is the page's, not the transport's: each test runs on one transport (the others in
tests/server/browser run on both). The key ones run at a desktop's size and at a phone's (390 by 844).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from playwright.sync_api import Page

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

RECORD_NOTIFICATIONS = """(() => {
  // Headless Chromium shows no notification: the page's calls are recorded instead. The permission is the
  // browser's (the context's grant), except that before the page first asks, it is "default", as in a browser
  // that has never asked this site.
  const Real = window.Notification;
  window.__notifications = [];
  window.__asked = () => Number(localStorage.getItem("test.asked") || "0");
  class Recorded {
    constructor(title, options) { window.__notifications.push({title: title, body: options && options.body}); }
    close() {}
    static get permission() { return window.__asked() > 0 ? Real.permission : "default"; }
    static requestPermission(callback) {
      localStorage.setItem("test.asked", String(window.__asked() + 1));
      return Real.requestPermission(callback);
    }
  }
  window.Notification = Recorded;
})();"""

VISIBILITY = """(() => {
  // The tab's visibility, set by the test (kept across a reload, like a tab left in the background).
  const hidden = () => sessionStorage.getItem("test.hidden") === "1";
  Object.defineProperty(document, "visibilityState", {configurable: true, get: () => hidden() ? "hidden" : "visible"});
  Object.defineProperty(document, "hidden", {configurable: true, get: hidden});
  window.__setHidden = h => {
    sessionStorage.setItem("test.hidden", h ? "1" : "0");
    document.dispatchEvent(new Event("visibilitychange"));
  };
})();"""


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


def set_hidden(page: ChatPage, hidden: bool) -> None:
    page.page.evaluate("h => window.__setHidden(h)", hidden)


def notifications(page: ChatPage) -> list[dict[str, str]]:
    return list(page.page.evaluate("window.__notifications"))


def tab_to(page: ChatPage, selector: str, start: str = "#message-input") -> None:
    """Reach ``selector`` with the Tab key from ``start``: it is in the keyboard's order."""
    page.page.focus(start)
    for _ in range(12):
        if page.page.evaluate("s => document.activeElement === document.querySelector(s)", selector):
            return
        page.page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}")


def relative_luminance(rgb: str) -> float:
    channels = [int(c) / 255 for c in re.findall(r"\d+", rgb)[:3]]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(page: Page, selector: str) -> tuple[float, float]:
    """The contrast ratio of an element's text on its own background, and the background's luminance."""
    colors = page.locator(selector).first.evaluate(
        "e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]"
    )
    text, background = (relative_luminance(c) for c in colors)
    assert "rgba" not in colors[1] or colors[1].endswith(", 1)"), colors  # a background of its own, opaque
    lighter, darker = max(text, background), min(text, background)
    return (lighter + 0.05) / (darker + 0.05), background


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

    # Alice's page: only spaces are not typing; another "typing" once 2.5 s have passed (the server's 2 s, with a
    # margin for the network), and one only.
    alice.page.clock.fast_forward(2000)
    alice.page.locator("#message-input").press_sequentially("z")
    alice.page.evaluate("0")
    assert len(alice.sent_events("typing")) == 1  # 2 s is not enough
    alice.page.locator("#message-input").press("Backspace")
    alice.page.clock.fast_forward(600)
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
    assert alice.page.locator("#members").evaluate("m => getComputedStyle(m).filter") == "grayscale(1)"
    assert alice.page.locator("#members").get_attribute("aria-describedby") == "presence-note"

    proxy.restore()
    alice.page.wait_for_function("document.getElementById('status').textContent === 'reconnected'")
    assert alice.page.locator("#presence.stale").count() == 0
    assert note.is_hidden()
    assert alice.page.locator("#members").evaluate("m => getComputedStyle(m).filter") == "none"
    assert alice.script_errors == []


# ---- notifications, the unread count, mentions -------------------------------------------------------------


def test_desktop_notifications_are_opt_in_and_only_for_others_live_messages_while_hidden(
    e2e_server: LiveServer, pages: Callable[..., ChatPage]
) -> None:
    alice = pages().open(e2e_server.http_url, name="Alice")
    link = alice.join_link()
    bob = pages(permissions=["notifications"])
    for script in (RECORD_NOTIFICATIONS, VISIBILITY):
        bob.page.add_init_script(script)
    bob.open(link, name="Bob").wait_until_in_room()
    switch = bob.page.get_by_role("switch", name="Desktop notifications of new messages")
    assert not switch.is_checked()  # off by default, and the browser not asked
    assert bob.page.evaluate("window.__asked()") == 0

    tab_to(bob, "#notify-switch")
    bob.page.keyboard.press(" ")
    bob.page.wait_for_function("localStorage.getItem('chat.notify') === '1'")  # once the browser allowed them
    assert switch.is_checked()
    assert bob.page.evaluate("window.__asked()") == 1  # asked when switched on

    alice.send_with_enter("while Bob looks")
    bob.wait_for_messages(1)
    set_hidden(bob, True)
    alice.send_with_enter("while Bob is away")
    bob.wait_for_messages(2)
    bob.page.wait_for_function("document.title === '(1) Chat'")
    bob.send_with_enter("my own")
    bob.wait_until_nothing_pending()
    alice.send_with_enter("and again")
    bob.wait_for_messages(4)
    bob.page.wait_for_function("document.title === '(2) Chat'")
    assert notifications(bob) == [
        {"title": "Alice", "body": "while Bob is away"}, {"title": "Alice", "body": "and again"}
    ]
    set_hidden(bob, False)
    bob.page.wait_for_function("document.title === 'Chat'")

    # Reloaded in the background: the choice is remembered; what the replay brings back is not notified.
    set_hidden(bob, True)
    bob.page.reload()
    bob.wait_until_in_room()
    assert bob.wait_for_messages(4)
    assert switch.is_checked()
    alice.send_with_enter("after the reload")
    bob.wait_for_messages(5)
    assert notifications(bob) == [{"title": "Alice", "body": "after the reload"}]
    assert bob.page.evaluate("window.__asked()") == 1  # not asked again

    switch.press("Enter")  # off (Enter works as well as Space)
    bob.page.wait_for_function("!document.getElementById('notify-switch').checked")
    assert bob.page.evaluate("localStorage.getItem('chat.notify')") == "0"
    alice.send_with_enter("switched off")
    bob.wait_for_messages(6)
    assert len(notifications(bob)) == 1
    assert bob.script_errors == []

    # A browser that denies them: said so, and the switch stays off.
    carol = pages(viewport=PHONE)
    carol.page.add_init_script(RECORD_NOTIFICATIONS)
    carol.open(link, name="Carol").wait_until_in_room()
    carol.page.get_by_role("switch", name="Desktop notifications of new messages").click()
    problem = carol.page.locator("#notify-problem")
    problem.filter(has_text="blocked").wait_for()
    assert problem.get_attribute("role") == "status"
    assert not carol.page.locator("#notify-switch").is_checked()
    assert carol.page.evaluate("localStorage.getItem('chat.notify')") == "0"
    assert carol.page.evaluate("window.__asked()") == 1


def test_a_mention_of_my_name_is_highlighted_in_light_and_dark(
    e2e_server: LiveServer, pages: Callable[..., ChatPage]
) -> None:
    alice = pages().open(e2e_server.http_url, name="Alice")
    link = alice.join_link()
    bob = pages(color_scheme="light").open(link, name="Bob Stone")
    carol = pages(color_scheme="dark", viewport=PHONE).open(link, name="Carol")
    for page in (alice, bob, carol):
        page.wait_until_in_room()
    texts = [
        "@bob stone, @Carol: see https://example.com/@Carol",
        "not @Bob Stoner nor mail@Bob Stone nor @carolyn",
        "@BOB STONE!",
    ]
    for text in texts:
        alice.send_with_enter(text)
    for page in (bob, carol):
        assert page.wait_for_messages(3) == [f"Alice: {text}" for text in texts]  # the text unchanged

    def marks(page: ChatPage) -> list[list[str]]:
        return list(page.page.eval_on_selector_all(
            "#message-wrapper p.message[data-offset]",
            "ps => ps.map(p => Array.from(p.querySelectorAll('.text mark.mention'), m => m.textContent))",
        ))

    assert marks(bob) == [["@bob stone"], [], ["@BOB STONE"]]
    assert marks(carol) == [["@Carol"], [], []]  # (not the one inside the link: links stay whole)
    assert carol.page.locator("#message-wrapper .text a").first.inner_text() == "https://example.com/@Carol"
    assert marks(alice) == [[], [], []]  # her own messages
    mentioned = "#message-wrapper p.message.mentions-me"
    assert bob.page.locator(mentioned).count() == 2
    assert carol.page.locator(mentioned).count() == 1

    light, light_background = contrast(bob.page, "mark.mention")
    dark, dark_background = contrast(carol.page, "mark.mention")
    assert light >= 4.5
    assert dark >= 4.5
    assert light_background > 0.4 > dark_background  # a light mark on the light theme, a dark one on the dark
