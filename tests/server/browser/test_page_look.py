"""How the page looks, at a desktop's size and a phone's, light and dark: the conversation fills the window (only it
scrolls), the composer stays at the bottom (above a phone's keyboard too), a sender's messages in a row are grouped,
each day has a separator, a button offers the messages that came below, the theme follows the system or the header's
toggle; and axe-core (axe-playwright-python) finds no serious or critical problem in any state the tests reach.

The look does not depend on the transport: these tests run on the default one only (``transport`` below).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from chat_client import V2Client
from chat_page import DELIVERED, ChatPage
from live import LiveServer, live_server
from test_room_control_page import Cutter, open_controls, teacher_and_student
from transports.config import ServerConfig, Transport

SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
DAY = 86400.0
AXE = Axe()
SERIOUS = ("serious", "critical")
YESTERDAY = ["Did everyone read chapter 3?", "We talk about it tomorrow."]
TODAY_ALICE = ["Good morning!", "The plan for today: https://example.org/plan", "Questions welcome."]


@pytest.fixture
def transport() -> Transport:
    return Transport.TRIO_WEBSOCKET


def options(size: str, theme: str) -> dict[str, Any]:
    """A browser context's options: the size, the system's theme, and the reader's zone (UTC: days of 24 hours)."""
    chosen: dict[str, Any] = {"viewport": SIZES[size], "color_scheme": theme, "timezone_id": "UTC"}
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
    """A room where Carol talked yesterday: she talks, the server stops, her talks' stored times are moved back a
    day in its SQLite file, and the server starts again on it; and the room's join key."""
    assert server_config.database is not None
    with live_server(server_config) as first, V2Client(first.ws_url) as carol:
        join_key = carol.join(name="Carol")["joinKey"]
        for text in YESTERDAY:
            carol.talk(text)
            carol.wait_for("talk", payload=text)
    with sqlite3.connect(server_config.database) as database:
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
    text = luminance(alice.page, "getComputedStyle(document.body).color")
    assert alice.page.evaluate("document.documentElement.dataset.theme") == theme
    if theme == "dark":
        assert background < 0.02 < 0.6 < text
    else:
        assert text < 0.05 < 0.8 < background
    assert_accessible(alice)  # in a room: own and others' messages, grouped, separators, a link

    # The menu of a grouped message of mine works and is accessible.
    alice.page.locator(DELIVERED).nth(4).locator(".menu-button").click()
    menu = alice.page.locator(".message-menu")
    expect(menu.locator("[role=menuitem]")).to_have_text(["Edit", "Delete"])
    expect(menu.locator(".edit-item")).to_be_focused()
    assert_accessible(alice)
    alice.page.keyboard.press("Escape")
    expect(menu).to_have_count(0)

    alice.page.screenshot(path=artifacts / f"page-{size}-{theme}.png")
    assert alice.script_errors == [] and bob.script_errors == []
