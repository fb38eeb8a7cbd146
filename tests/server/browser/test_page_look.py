"""How the page looks, at a desktop's size and a phone's, light and dark: the conversation fills the window (only it
scrolls), the composer stays at the bottom (above a phone's keyboard too), a sender's messages in a row are grouped,
each day has a separator, a button offers the messages that came below, the theme follows the system or the header's
toggle; and axe-core (axe-playwright-python) finds no serious or critical problem in any state the tests reach.

The look does not depend on the transport: these tests run on the default one only (``transport`` below).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, ViewportSize, expect

from chat_client import V2Client
from chat_page import DELIVERED, HOST, ChatPage, Cutter
from live import LiveServer, live_server
from transports.config import ServerConfig, Transport

SIZES: dict[str, ViewportSize] = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
DAY = 86400.0
AXE = Axe()
SERIOUS = ("serious", "critical")
TITLE = "Math 7B"

YESTERDAY = ["Did everyone read chapter 3?", "We talk about it tomorrow."]
TODAY_ALICE = ["Good morning!", "The plan for today: https://example.org/plan", "Questions welcome."]


@pytest.fixture
def transport() -> Transport:
    return Transport.TRIO_WEBSOCKET


def options(size: str, theme: str) -> dict[str, Any]:
    """A browser context's options: the size, the system's theme, and the reader's zone (UTC: days of 24 hours)."""
    chosen: dict[str, Any] = {"viewport": SIZES[size], "color_scheme": theme, "timezone_id": "UTC", "locale": "en-US"}
    if size == "phone":
        chosen.update(is_mobile=True, has_touch=True, device_scale_factor=2)
    return chosen


def accessibility_problems(page: Page) -> list[str]:
    """The serious and critical violations axe-core finds on the page as it is now."""
    violations = AXE.run(page).response["violations"]
    return [
        f"{violation['id']} ({violation['impact']}): {[node['target'] for node in violation['nodes']]}"
        for violation in violations if violation["impact"] in SERIOUS
    ]


def assert_accessible(page: ChatPage) -> None:
    assert accessibility_problems(page.page) == []


@pytest.fixture
def room_since_yesterday(server_config: ServerConfig) -> Iterator[tuple[LiveServer, str]]:
    """A room titled `TITLE` where Carol talked yesterday: she talks, the server stops, her talks' stored times
    are moved back a day in its SQLite file, and the server starts again on it; and the room's join key."""
    database_file = server_config.database
    assert database_file is not None
    server_config = replace(server_config, host=HOST)
    with live_server(server_config) as first, V2Client(first.ws_url) as carol:
        join_key = carol.join(name="Carol")["joinKey"]
        carol.send({"type": "room", "title": TITLE})
        carol.wait_for("room", title=TITLE)
        for text in YESTERDAY:
            carol.talk(text)
            carol.wait_for("talk", payload=text)
    with sqlite3.connect(database_file) as database:
        assert database.execute("UPDATE talks SET time = time - ?", (DAY,)).rowcount == len(YESTERDAY)
    database.close()
    with live_server(server_config) as second:
        yield second, join_key


def layout(page: Page) -> dict[str, float]:
    """Where the parts are, in CSS pixels of the viewport."""
    return dict(page.evaluate("""() => {
        const box = id => document.getElementById(id).getBoundingClientRect();
        const list = box("message-wrapper"), form = box("form"), header = document.querySelector(".chat-header")
            .getBoundingClientRect();
        return {
            viewportHeight: window.innerHeight, viewportWidth: window.innerWidth,
            scrollHeight: document.scrollingElement.scrollHeight, scrollWidth: document.scrollingElement.scrollWidth,
            headerTop: header.top, listTop: list.top, listBottom: list.bottom, listHeight: list.height,
            formTop: form.top, formBottom: form.bottom,
        };
    }"""))


def luminance(page: Page, script: str) -> float:
    """The relative luminance (WCAG) of the colour ``script`` computes, e.g. "rgb(15, 17, 21)"."""
    color = str(page.evaluate(script))
    red, green, blue = (int(part) / 255 for part in re.findall(r"\d+", color)[:3])
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (red, green, blue)]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def groups(page: ChatPage) -> list[tuple[str, bool, bool]]:
    """Each delivered message: its text, whether it continues a group, whether its sender's name is visible."""
    return [
        (str(row[0]), bool(row[1]), bool(row[2]))
        for row in page.page.eval_on_selector_all(
            DELIVERED,
            "ps => ps.map(p => [p.querySelector('.text').textContent, p.classList.contains('continued'),"
            " p.querySelector('.sender').getBoundingClientRect().width > 2])",
        )
    ]


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_a_room_fills_the_window_groups_by_sender_and_day_and_passes_axe(
    room_since_yesterday: tuple[LiveServer, str], pages: Callable[..., ChatPage], artifacts: Path,
    size: str, theme: str,
) -> None:
    server, join_key = room_since_yesterday
    link = f"{server.http_url}?join={join_key}"
    alice = pages(**options(size, theme)).open(link)
    assert alice.asks_for_name()
    assert_accessible(alice)  # joining: the name dialog
    alice.give_name("Alice")
    bob = pages(**options(size, theme)).open(link, name="Bob")
    alice.wait_until_in_room()
    bob.wait_until_in_room()
    alice.wait_for_members(["Alice (you)", "Bob"])
    for text in TODAY_ALICE:
        alice.send_with_enter(text)
    bob.wait_for_messages(len(YESTERDAY) + len(TODAY_ALICE))
    bob.send_with_enter("Thanks, Alice!")
    alice.wait_for_messages(len(YESTERDAY) + len(TODAY_ALICE) + 1)
    alice.wait_until_nothing_pending()

    # The header and the document say the room's title; the bare user number is no longer shown once named.
    assert alice.page.locator("#room-title").inner_text() == TITLE
    assert alice.title() == f"{TITLE} \u2013 Chat"
    assert alice.page.locator("#name-span").evaluate("e => e.getBoundingClientRect().width") <= 1

    # Grouped by sender (a name line each), and a separator at each day.
    expected = [
        (YESTERDAY[0], False, True), (YESTERDAY[1], True, False),
        (TODAY_ALICE[0], False, True), (TODAY_ALICE[1], True, False), (TODAY_ALICE[2], True, False),
        ("Thanks, Alice!", False, True),
    ]
    assert groups(alice) == expected
    assert alice.messages()[1] == f"Carol: {YESTERDAY[1]}"  # the name is still there, for screen readers
    separators = alice.page.locator("#message-wrapper .day-separator")
    assert separators.all_inner_texts() == ["Yesterday", "Today"]
    assert alice.page.evaluate(
        "() => { const [y, t] = document.querySelectorAll('#message-wrapper .day-separator');"
        " const first = l => l.nextElementSibling.querySelector('.text').textContent;"
        " return [first(y), first(t)]; }"
    ) == [YESTERDAY[0], TODAY_ALICE[0]]
    mine = alice.page.locator(f"{DELIVERED}.mine")
    assert mine.count() == len(TODAY_ALICE)
    assert mine.nth(1).evaluate("p => getComputedStyle(p).backgroundColor") != alice.page.locator(
        DELIVERED).last.evaluate("p => getComputedStyle(p).backgroundColor")  # my own tint, in a group too
    grouped = alice.page.locator(DELIVERED).nth(3)
    assert grouped.locator("a").get_attribute("href") == "https://example.org/plan"

    # The conversation fills the window: only it scrolls; the composer is at the bottom, in view.
    for page in (alice, bob):
        where = layout(page.page)
        assert where["scrollHeight"] <= where["viewportHeight"]  # the page itself does not scroll
        assert where["scrollWidth"] <= where["viewportWidth"]
        assert where["headerTop"] >= 0
        assert where["viewportHeight"] - 40 <= where["formBottom"] <= where["viewportHeight"]
        assert where["formTop"] - where["listBottom"] < 60  # the list reaches down to the composer
        assert where["listHeight"] >= 0.5 * where["viewportHeight"]
        assert page.page.evaluate("getComputedStyle(document.getElementById('message-wrapper')).overflowY") == "auto"

    # The theme: the system's, and really dark (or light).
    background = luminance(alice.page, "getComputedStyle(document.documentElement).backgroundColor")
    foreground = luminance(alice.page, "getComputedStyle(document.body).color")
    assert alice.page.evaluate("document.documentElement.dataset.theme") == theme
    if theme == "dark":
        assert background < 0.02 < 0.6 < foreground
    else:
        assert foreground < 0.05 < 0.8 < background
    assert_accessible(alice)  # in a room: own and others' messages, grouped, separators, a link

    # The menu of a grouped message of mine works and is accessible.
    alice.page.locator(DELIVERED).nth(4).locator(".menu-button").click()
    menu = alice.page.locator(".message-menu")
    expect(menu.locator("[role=menuitem]")).to_have_text(["Edit", "Delete"])
    expect(menu.locator(".edit-item")).to_be_focused()
    assert_accessible(alice)
    alice.page.keyboard.press("Escape")
    expect(menu).to_have_count(0)

    alice.page.evaluate("document.activeElement.blur()")  # (the pictures in the docs show no focus ring)
    alice.page.mouse.move(0, 0)
    alice.page.screenshot(path=artifacts / f"page-{size}-{theme}.png")  # scripts/screenshots.sh: the docs' pictures

    # Three days later (the reader's clock), older days are named by their dates, once the list changes.
    later = time.time() + 3 * DAY
    bob.page.clock.set_fixed_time(later)
    alice.send_with_enter("Still there?")
    bob.wait_for_messages(len(expected) + 1)

    def date(seconds: float) -> str:
        day, today = datetime.fromtimestamp(seconds, UTC), datetime.fromtimestamp(later, UTC)
        return f"{day:%A}, {day:%B} {day.day}" + (f", {day.year}" if day.year != today.year else "")

    stamps = bob.page.eval_on_selector_all(f"{DELIVERED} time", "ts => ts.map(t => Date.parse(t.dateTime) / 1000)")
    bob.page.wait_for_function(
        "want => JSON.stringify([...document.querySelectorAll('#message-wrapper .day-separator')]"
        ".map(s => s.textContent)) === JSON.stringify(want)",
        arg=[date(stamps[0]), date(stamps[-1])],
    )
    assert alice.script_errors == []
    assert bob.script_errors == []


def at_bottom(page: ChatPage) -> bool:
    return bool(page.page.evaluate(
        "() => { const w = document.getElementById('message-wrapper');"
        " return w.scrollHeight - w.scrollTop - w.clientHeight < 2; }"
    ))


def fill_the_list(page: ChatPage, count: int) -> None:
    for i in range(count):  # within the default burst of the rate limit
        page.send_with_enter(f"line {i}\n.")
    page.wait_for_messages(count)
    page.wait_until_nothing_pending()


def test_the_composer_stays_above_a_phone_keyboard(e2e_server: LiveServer, pages: Callable[..., ChatPage]) -> None:
    alice = pages(**options("phone", "light")).open(e2e_server.http_url, name="Alice")
    alice.wait_until_in_room()
    fill_the_list(alice, 15)
    assert alice.page.evaluate("() => { const w = document.getElementById('message-wrapper');"
                               " return w.scrollHeight > w.clientHeight; }")
    alice.page.focus("#message-input")
    # The on-screen keyboard takes the lower 330 pixels: the visible viewport shrinks, the composer stays in it, the
    # newest message above it.
    alice.page.set_viewport_size({"width": 390, "height": 844 - 330})
    alice.page.wait_for_function("""() => {
        const form = document.getElementById('form').getBoundingClientRect();
        const list = document.getElementById('message-wrapper').getBoundingClientRect();
        const last = [...document.querySelectorAll('#message-wrapper p.message')].pop().getBoundingClientRect();
        const height = window.visualViewport.height;
        return height === 514 && form.bottom <= height && form.bottom > height - 40
            && last.bottom <= list.bottom + 1 && last.top >= list.top;
    }""")
    where = layout(alice.page)
    assert where["scrollHeight"] <= where["viewportHeight"] == 514
    assert alice.page.evaluate("window.scrollY") == 0
    assert alice.page.evaluate("document.activeElement.id") == "message-input"
    alice.send_with_enter("typed with the keyboard up")
    alice.wait_for_messages(16)
    alice.page.wait_for_function("() => { const w = document.getElementById('message-wrapper');"
                                 " return w.scrollHeight - w.scrollTop - w.clientHeight < 2; }")
    # The keyboard goes away: the composer goes back to the bottom, the list still shows the newest.
    alice.page.set_viewport_size(SIZES["phone"])
    alice.page.wait_for_function("() => document.getElementById('form').getBoundingClientRect().bottom > 800")
    alice.page.wait_for_function("() => { const w = document.getElementById('message-wrapper');"
                                 " return w.scrollHeight - w.scrollTop - w.clientHeight < 2; }")
    assert layout(alice.page)["formBottom"] <= 844


def test_messages_that_come_below_the_readers_view_offer_a_way_down(
    e2e_server: LiveServer, pages: Callable[..., ChatPage]
) -> None:
    alice = pages(**options("desktop", "light")).open(e2e_server.http_url, name="Alice")
    link = alice.join_link()
    bob = pages(**options("desktop", "dark")).open(link, name="Bob")
    bob.wait_until_in_room()
    alice.wait_until_in_room()
    fill_the_list(alice, 20)
    bob.wait_for_messages(20)
    button = bob.page.locator("#new-messages")
    expect(button).to_be_hidden()  # at the bottom, nothing is below
    bob.page.locator("#message-wrapper").evaluate("w => { w.scrollTop = 0; }")
    bob.page.wait_for_function("document.getElementById('message-wrapper').scrollTop === 0")

    alice.send_with_enter("while bob reads up there")
    bob.wait_for_messages(21)
    expect(button).to_be_visible()
    expect(button).to_have_text("1 new message\u00a0\u2193")
    assert not at_bottom(bob)  # the reader's place is kept
    assert_accessible(bob)  # (dark, with the button)
    # By the keyboard: it is the control just before the composer.
    bob.page.focus("#message-input")
    bob.page.keyboard.press("Shift+Tab")
    expect(button).to_be_focused()
    assert button.evaluate("b => getComputedStyle(b).outlineStyle") == "solid"  # the focus shows
    bob.page.keyboard.press("Enter")
    expect(button).to_be_hidden()
    bob.page.wait_for_function("() => { const w = document.getElementById('message-wrapper');"
                               " return w.scrollHeight - w.scrollTop - w.clientHeight < 2; }")
    expect(bob.page.locator("#message-input")).to_be_focused()

    # Scrolling down by oneself takes it away too; and it counts.
    bob.page.locator("#message-wrapper").evaluate("w => { w.scrollTop = 0; }")
    bob.page.wait_for_function("document.getElementById('message-wrapper').scrollTop === 0")
    alice.send_with_enter("one")
    alice.send_with_enter("two")
    bob.wait_for_messages(23)
    expect(button).to_have_text("2 new messages\u00a0\u2193")
    bob.page.locator("#message-wrapper").evaluate("w => { w.scrollTop = w.scrollHeight; }")
    expect(button).to_be_hidden()
    # A click (or a tap) takes the reader down too, and leaves the focus where it was: no phone keyboard pops up.
    bob.page.locator("#message-wrapper").evaluate("w => { w.scrollTop = 0; }")
    bob.page.wait_for_function("document.getElementById('message-wrapper').scrollTop === 0")
    alice.send_with_enter("four")
    bob.wait_for_messages(24)
    bob.page.locator("#message-wrapper").focus()
    button.click()
    expect(button).to_be_hidden()
    bob.page.wait_for_function("() => { const w = document.getElementById('message-wrapper');"
                               " return w.scrollHeight - w.scrollTop - w.clientHeight < 2; }")
    expect(bob.page.locator("#message-input")).not_to_be_focused()
    # A message while at the bottom keeps the view there, with no button.
    alice.send_with_enter("three")
    bob.wait_for_messages(25)
    bob.page.wait_for_function("() => { const w = document.getElementById('message-wrapper');"
                               " return w.scrollHeight - w.scrollTop - w.clientHeight < 2; }")
    expect(button).to_be_hidden()


def test_the_theme_follows_the_system_until_the_toggle_chooses_and_is_remembered(
    e2e_server: LiveServer, pages: Callable[..., ChatPage]
) -> None:
    alice = pages(**options("desktop", "dark")).open(e2e_server.http_url, name="Alice")
    alice.wait_until_in_room()
    page = alice.page
    toggle = page.locator("#theme-toggle")
    theme = "document.documentElement.dataset.theme"
    background = "getComputedStyle(document.documentElement).backgroundColor"
    assert page.evaluate(theme) == "dark"
    expect(toggle).to_have_attribute("aria-pressed", "true")
    expect(toggle).to_have_accessible_name("Dark theme")
    dark_background = luminance(page, background)

    # By the keyboard: the toggle is reached with Tab, shows its focus, and Space flips it.
    page.focus("#my-name")
    page.keyboard.press("Tab")
    expect(toggle).to_be_focused()
    assert toggle.evaluate("b => getComputedStyle(b).outlineStyle") == "solid"
    page.keyboard.press("Space")
    page.wait_for_function(f"{theme} === 'light'")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    assert luminance(page, background) > 0.8 > 0.02 > dark_background
    assert toggle.evaluate("b => getComputedStyle(b).outlineStyle") == "solid"
    assert page.evaluate("localStorage.getItem('chat.theme')") == "light"
    assert_accessible(alice)  # light, on a system that prefers dark

    # Remembered: a reload (and the system changing its mind) keeps light.
    page.reload()
    alice.wait_until_in_room()
    assert page.evaluate(theme) == "light"
    page.emulate_media(color_scheme="light")
    page.emulate_media(color_scheme="dark")
    assert page.evaluate(theme) == "light"

    # Choosing the system's own theme forgets the choice: the page follows the system again.
    toggle.click()
    page.wait_for_function(f"{theme} === 'dark'")
    assert page.evaluate("localStorage.getItem('chat.theme')") is None
    page.emulate_media(color_scheme="light")
    page.wait_for_function(f"{theme} === 'light'")
    expect(toggle).to_have_attribute("aria-pressed", "false")


def open_controls(page: ChatPage) -> None:
    page.page.locator("#room-controls").wait_for()
    if page.page.locator("#room-controls[open]").count() == 0:
        page.page.click("#room-controls summary")


FOCUSABLE_BY_TAB = {
    "my-name", "theme-toggle", "room-controls summary", "title-input", "title-clear", "lock-button", "role-button",
    "remove-button", "ban-button", "end-button", "message-wrapper", "join-link", "copy-link", "menu-button",
    "message-input", "send-button",
}


def tab_through(page: Page, steps: int) -> list[list[str]]:
    """Press Tab ``steps`` times from the top: what each press focused (its id or class) and its outline's style."""
    page.evaluate("document.activeElement && document.activeElement.blur(); window.getSelection().removeAllRanges()")
    page.focus("#room-title")  # (not focusable: Tab starts from there)
    reached: list[list[str]] = []
    for _ in range(steps):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("""() => {
            const e = document.activeElement;
            const known = ['room-controls', 'title-input', 'title-clear', 'lock-button', 'end-button', 'my-name',
                'theme-toggle', 'message-wrapper', 'message-input', 'send-button'];
            const name = e.tagName === 'SUMMARY' ? 'room-controls summary'
                : known.includes(e.id) ? e.id
                : [...e.classList].find(c => /-(button|link)$/.test(c)) || e.id || e.tagName;
            return [name, getComputedStyle(e).outlineStyle];
        }"""))
    return reached


def test_every_state_passes_axe_and_every_control_takes_the_keyboard(
    e2e_server: LiveServer, pages: Callable[..., ChatPage], artifacts: Path
) -> None:
    teacher = pages(**options("desktop", "light")).open(e2e_server.http_url, name="Teacher")
    link = teacher.join_link()
    student = pages(**options("phone", "dark"))
    cutter = Cutter(student)
    student.open(link, name="Student")
    student.wait_until_in_room()
    teacher.wait_until_in_room()
    teacher.wait_for_members(["Teacher (you)", "Student"])
    teacher.send_with_enter("welcome")
    student.send_with_enter("hello")
    teacher.wait_for_messages(2)

    # The staff's panel open: everything is reached by Tab, each with its focus ring.
    open_controls(teacher)
    assert_accessible(teacher)
    reached = tab_through(teacher.page, 24)
    assert {name for name, _ in reached} >= FOCUSABLE_BY_TAB, reached
    assert [name for name, outline in reached if outline == "none" and name != "BODY"] == []  # (BODY: Tab went round)
    teacher.page.screenshot(path=artifacts / "page-controls-desktop-light.png")
    teacher.page.keyboard.press("Escape")

    # Cut off: the status says so, a message waits for the connection.
    cutter.cut()
    student.page.wait_for_function("document.getElementById('status').textContent.includes('reconnecting')")
    student.send_with_enter("are you there?")
    student.page.locator("#message-wrapper p.message.pending .state", has_text="waiting").wait_for()
    assert_accessible(student)
    student.page.screenshot(path=artifacts / "page-disconnected-phone-dark.png")
    cutter.restore()
    teacher.wait_for_messages(3)

    # The end: a dialog asks first; then both pages say the chat is over.
    open_controls(teacher)
    teacher.page.click("#end-button")
    expect(teacher.page.locator("#end-modal")).to_have_class(re.compile("is-active"))
    assert_accessible(teacher)
    teacher.page.click("#end-confirm")
    for page in (teacher, student):
        page.page.locator("#message-wrapper p.stopped").wait_for()
        assert_accessible(page)
    student.page.screenshot(path=artifacts / "page-ended-phone-dark.png")
