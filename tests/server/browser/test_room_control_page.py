"""Rooms a teacher controls, in a real browser: a teacher's page (the room's owner) and a student's.

Edit and delete from each message's menu, the title and the lock in the header, the staff's panel
(roles, remove, remove and ban, end), and what a removed or ended page says. Each test runs on both
transports; the last one on two processes sharing Redis.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Locator

from chat_page import DELIVERED, HOST, ChatPage, Cutter
from chatcore import CoreLimits, problems
from live import LiveServer
from processes import ServerProcess
from transports.config import Transport

SHOWN = (
    "ps => ps.map(p => p.classList.contains('deleted') ? p.querySelector('.text').textContent"
    " : p.querySelector('.sender').textContent + ': ' + p.querySelector('.text').textContent"
    " + (p.querySelector('.edited') ? ' (edited)' : ''))"
)
"""Each delivered message as shown, "Name: text", "Name: text (edited)" or "message deleted"."""
REMOVED = "You were removed from this chat."
ENDED = "This chat was ended."


def shown(page: ChatPage) -> list[str]:
    return list(page.page.eval_on_selector_all(DELIVERED, SHOWN))


def wait_for_shown(page: ChatPage, expected: list[str]) -> None:
    page.page.wait_for_function(
        f"([selector, want]) => JSON.stringify(({SHOWN})(Array.from(document.querySelectorAll(selector))))"
        " === JSON.stringify(want)",
        arg=[DELIVERED, expected],
    )


def line(page: ChatPage, n: int) -> Locator:
    return page.page.locator(DELIVERED).nth(n)


def menus(page: ChatPage) -> list[bool]:
    """Which delivered messages have their menu button."""
    return list(page.page.eval_on_selector_all(f"{DELIVERED} .menu-button", "bs => bs.map(b => !b.hidden)"))


def choose(page: ChatPage, n: int, item: str) -> None:
    """Open the menu of message ``n`` with the mouse, and click ``item``."""
    line(page, n).locator(".menu-button").click()
    page.page.locator(".message-menu [role=menuitem]", has_text=item).click()


def focused(page: ChatPage) -> str:
    return str(page.page.evaluate("document.activeElement.textContent"))


def open_controls(page: ChatPage) -> None:
    page.page.locator("#room-controls").wait_for()
    if page.page.locator("#room-controls[open]").count() == 0:
        page.page.click("#room-controls summary")


def member_button(page: ChatPage, user_id: str, kind: str) -> Locator:
    """A button of the staff's member list: ``kind`` is role, remove or ban."""
    return page.page.locator(f"#room-members li[data-user-id='{user_id}'] .{kind}-button")


def wait_for_status(page: ChatPage, text: str) -> None:
    page.page.wait_for_function("t => document.getElementById('status').textContent === t", arg=text)


def teacher_and_student(pages: Callable[..., ChatPage], url: str) -> tuple[ChatPage, ChatPage, str]:
    """The teacher starts a room at ``url`` (its owner), the student joins by the link; and the link."""
    teacher = pages().open(url, name="Teacher")
    link = teacher.join_link()
    student = pages().open(link, name="Student")
    student.wait_until_in_room()
    teacher.wait_until_in_room()
    teacher.wait_for_members(["Teacher (you)", "Student"])
    return teacher, student, link


def stays_away(page: ChatPage, state: str) -> None:
    """The page is out for good: in ``state``, the composer off, and no new socket after a while."""
    page.page.wait_for_function("s => document.body.dataset.state === s", arg=state)
    sockets = len(page.sockets)
    page.page.wait_for_timeout(1500)  # longer than the first reconnection delays
    assert len(page.sockets) == sockets
    assert page.page.locator("#message-input").is_disabled()
    assert page.page.locator("#send-button").is_disabled()
    assert page.page.locator("#room-controls").is_hidden()
    assert page.script_errors == []


def test_everyone_edits_and_deletes_their_own_and_staff_delete_anyones(
    e2e_server: LiveServer, pages: Callable[..., ChatPage]
) -> None:
    teacher, student, link = teacher_and_student(pages, e2e_server.http_url)
    teacher.send_with_enter("welcome")
    student.wait_for_messages(1)
    student.send_with_enter("helo")
    student.send_with_enter("oops")
    for page in (teacher, student):
        wait_for_shown(page, ["Teacher: welcome", "Student: helo", "Student: oops"])
    assert menus(student) == [False, True, True]  # only on my own
    assert menus(teacher) == [True, True, True]  # the owner deletes anyone's

    # The keyboard: Tab to the menu, Enter opens it, Escape closes it; Space opens it, Enter edits.
    button = line(student, 1).locator(".menu-button")
    button.focus()
    student.page.keyboard.press("Enter")
    assert student.page.locator(".message-menu [role=menuitem]").all_inner_texts() == ["Edit", "Delete"]
    assert focused(student) == "Edit"
    assert button.get_attribute("aria-expanded") == "true"
    student.page.keyboard.press("Escape")
    assert student.page.locator(".message-menu").count() == 0
    assert button.evaluate("b => b === document.activeElement")
    student.page.keyboard.press("Space")
    student.page.locator(".message-menu").wait_for()
    student.page.keyboard.press("Enter")
    editor = line(student, 1).locator(".edit-input")
    assert editor.evaluate("e => e === document.activeElement")
    assert editor.input_value() == "helo"
    student.page.keyboard.type(" there")
    student.page.keyboard.press("Escape")  # cancelled: nothing sent, the line as it was
    assert editor.count() == 0
    assert shown(student)[1] == "Student: helo"
    button.focus()
    student.page.keyboard.press("Enter")
    student.page.keyboard.press("Enter")
    editor.fill("hello")
    editor.press("Enter")
    for page in (teacher, student):
        wait_for_shown(page, ["Teacher: welcome", "Student: hello (edited)", "Student: oops"])
    assert student.sent_events("edit") == [{"type": "edit", "offset": 2, "payload": "hello"}]

    choose(student, 2, "Delete")
    for page in (teacher, student):
        wait_for_shown(page, ["Teacher: welcome", "Student: hello (edited)", "message deleted"])
        assert line(page, 2).locator(".sender").count() == 0  # no name either
    choose(teacher, 1, "Delete")  # staff: someone else's
    everything = ["Teacher: welcome", "message deleted", "message deleted"]
    for page in (teacher, student):
        wait_for_shown(page, everything)
        assert menus(page)[1:] == [False, False]
    assert teacher.sent_events("delete") == [{"type": "delete", "offset": 2}]

    choose(teacher, 0, "Edit")
    line(teacher, 0).locator(".edit-input").fill("welcome, all")
    line(teacher, 0).locator(".edit-input").press("Enter")
    everything[0] = "Teacher: welcome, all (edited)"
    wait_for_shown(student, everything)
    # A reload and a late joiner see the same: the replay carries "edited" and "deleted".
    student.page.reload()
    student.wait_until_in_room()
    wait_for_shown(student, everything)
    late = pages().open(link, name="Late")
    late.wait_until_in_room()
    wait_for_shown(late, everything)
    assert menus(late) == [False, False, False]
    for page in (teacher, student, late):
        assert page.page.locator("#message-wrapper p.message.failed").count() == 0
        assert page.script_errors == []


def test_edits_and_deletions_made_while_a_page_was_away_are_shown_when_it_is_back(
    e2e_server: LiveServer, pages: Callable[..., ChatPage]
) -> None:
    teacher = pages().open(e2e_server.http_url, name="Teacher")
    student = pages()
    cutter = Cutter(student)
    student.open(teacher.join_link(), name="Student")
    student.wait_until_in_room()
    teacher.send_with_enter("first")
    student.wait_for_messages(1)
    student.send_with_enter("second")
    for page in (teacher, student):
        wait_for_shown(page, ["Teacher: first", "Student: second"])

    cutter.cut()
    student.page.wait_for_function("document.body.dataset.state === 'offline'")
    choose(teacher, 0, "Edit")
    line(teacher, 0).locator(".edit-input").fill("first, edited")
    line(teacher, 0).locator(".edit-input").press("Enter")
    choose(teacher, 1, "Delete")
    teacher.send_with_enter("third")
    wait_for_shown(teacher, ["Teacher: first, edited (edited)", "message deleted", "Teacher: third"])
    assert shown(student) == ["Teacher: first", "Student: second"]
    cutter.restore()
    wait_for_shown(student, ["Teacher: first, edited (edited)", "message deleted", "Teacher: third"])
    assert student.sent_events("init")[-1]["after"] == 2
    assert student.script_errors == []


def test_a_refused_edit_is_told_beside_the_message_not_as_a_failed_talk(
    start_server: Callable[..., LiveServer], pages: Callable[..., ChatPage]
) -> None:
    server = start_server(host=HOST, core_limits=CoreLimits(max_payload_chars=20))
    teacher, student, _ = teacher_and_student(pages, server.http_url)
    student.send_with_enter("short")
    wait_for_shown(teacher, ["Student: short"])
    choose(student, 0, "Edit")
    editor = line(student, 0).locator(".edit-input")
    editor.fill("x" * 21)
    editor.press("Enter")
    student.page.wait_for_function("document.querySelector('.edit-problem').textContent !== ''")
    assert "20 characters" in line(student, 0).locator(".edit-problem").inner_text()
    assert "20 characters" in student.status()
    assert student.sent_events("edit") == [{"type": "edit", "offset": 1, "payload": "x" * 21}]
    assert student.page.locator("#message-wrapper p.message.failed, #message-wrapper p.error").count() == 0
    editor.fill("shorter")  # the editor stays open, for another try
    editor.press("Enter")
    for page in (teacher, student):
        wait_for_shown(page, ["Student: shorter (edited)"])
    wait_for_status(student, "")  # the refusal is gone from the status line once a request goes through


def test_the_title_and_the_lock(e2e_server: LiveServer, pages: Callable[..., ChatPage]) -> None:
    teacher, student, link = teacher_and_student(pages, e2e_server.http_url)
    assert student.page.locator("#room-controls").is_hidden()  # the student has no controls
    assert teacher.page.locator("#room-title").inner_text() == "Chat"

    open_controls(teacher)
    teacher.page.fill("#title-input", "  Math 7B  ")
    teacher.page.press("#title-input", "Enter")
    for page in (teacher, student):
        page.page.wait_for_function("document.getElementById('room-title').textContent === 'Math 7B'")
        assert page.title() == "Math 7B \u2013 Chat"
    student.wait_for_notice("Teacher set the title: Math 7B")
    teacher.wait_for_notice("You set the title: Math 7B")
    assert teacher.sent_events("room") == [{"type": "room", "title": "Math 7B"}]

    assert teacher.page.locator("#locked-badge").is_hidden()
    teacher.page.click("#lock-button")
    for page in (teacher, student):
        page.page.locator("#locked-badge").wait_for()
        assert page.page.locator("#locked-badge").inner_text() == "Locked"
    student.wait_for_notice("Teacher locked the chat")
    assert teacher.page.locator("#lock-button").inner_text() == "Unlock the chat"

    # Someone new cannot join: told why, and not trying again and again.
    stranger = pages().open(link, name="Stranger")
    stranger.page.locator("#message-wrapper p.error").wait_for()
    refusal = stranger.page.locator("#message-wrapper p.error").inner_text()
    assert "locked" in refusal
    assert stranger.status() == refusal
    stays_away(stranger, "refused")
    assert len(stranger.sent_events("init")) == 1
    # The student, who was in, comes back.
    student.page.reload()
    student.wait_until_in_room()
    assert student.page.locator("#room-title").inner_text() == "Math 7B"
    assert student.page.locator("#locked-badge").is_visible()
    teacher.wait_for_members(["Teacher (you)", "Student"])

    teacher.page.click("#lock-button")
    teacher.page.click("#title-clear")
    for page in (teacher, student):
        page.page.wait_for_function("document.getElementById('room-title').textContent === 'Chat'")
        page.page.locator("#locked-badge").wait_for(state="hidden")
        assert page.title() == "Chat"
    student.wait_for_notice("Teacher cleared the title")
    assert teacher.sent_events("lock") == [{"type": "lock", "locked": True}, {"type": "lock", "locked": False}]
    again = pages().open(link, name="Stranger")  # open again
    again.wait_until_in_room()
    assert teacher.script_errors == student.script_errors == []


def test_a_removed_student_is_told_and_stays_away_until_it_reloads(
    e2e_server: LiveServer, pages: Callable[..., ChatPage]
) -> None:
    teacher, student, _ = teacher_and_student(pages, e2e_server.http_url)
    open_controls(teacher)
    assert member_button(teacher, "1", "remove").count() == 0  # not myself
    member_button(teacher, "2", "remove").click()
    wait_for_status(student, REMOVED)
    stays_away(student, "removed")
    assert student.page.locator("#message-wrapper p.stopped").inner_text().startswith(REMOVED)
    teacher.wait_for_members(["Teacher (you)"])
    teacher.wait_for_notice("Student was removed")
    assert teacher.sent_events("remove") == [{"type": "remove", "userId": 2}]

    # Not banned: a reload comes back, the same user.
    student.page.reload()
    student.wait_until_in_room()
    assert student.user_id() == "2"
    assert student.page.locator("#message-input").is_enabled()
    teacher.wait_for_members(["Teacher (you)", "Student"])


def test_a_banned_student_cannot_come_back(e2e_server: LiveServer, pages: Callable[..., ChatPage]) -> None:
    teacher, student, _ = teacher_and_student(pages, e2e_server.http_url)
    open_controls(teacher)
    member_button(teacher, "2", "ban").click()
    wait_for_status(student, REMOVED)
    stays_away(student, "removed")
    teacher.wait_for_notice("Student was removed and banned")
    assert teacher.sent_events("remove") == [{"type": "remove", "userId": 2, "ban": True}]

    student.page.reload()
    student.page.locator("#message-wrapper p.error").wait_for()
    refusal = student.page.locator("#message-wrapper p.error").inner_text()
    assert "removed" in refusal
    assert student.status() == refusal
    stays_away(student, "refused")
    assert len(student.sent_events("init")) == 2  # the first visit's and the reload's: no more
    teacher.page.wait_for_timeout(300)
    assert teacher.members() == ["Teacher (you)"]


def test_the_owner_makes_a_moderator_who_gets_the_staffs_controls(
    e2e_server: LiveServer, pages: Callable[..., ChatPage]
) -> None:
    teacher, student, link = teacher_and_student(pages, e2e_server.http_url)
    third = pages().open(link, name="Third")
    third.wait_until_in_room()
    teacher.send_with_enter("from the teacher")
    third.send_with_enter("from the third")
    teacher.wait_for_messages(2)
    student.wait_for_messages(2)
    role_tag = "m => getComputedStyle(m.firstElementChild, '::after').content"
    assert teacher.page.locator("#members .member").first.evaluate(role_tag) == '"owner"'
    assert student.page.locator("#room-controls").is_hidden()
    assert menus(student) == [False, False]

    open_controls(teacher)
    button = member_button(teacher, "2", "role")
    assert button.inner_text() == "Make moderator"
    button.click()
    student.wait_for_notice("You are now a moderator")
    teacher.wait_for_notice("Student is now a moderator")
    assert teacher.sent_events("role") == [{"type": "role", "userId": 2, "role": "moderator"}]
    for page in (teacher, student, third):
        page.page.wait_for_function(
            "document.querySelector('#members .member[data-user-id=\"2\"]').dataset.role === 'moderator'"
        )
    assert teacher.wait_for_members(["Teacher (you)", "Student", "Third"])  # the names alone: the role is a tag
    assert member_button(teacher, "2", "role").inner_text() == "Make member"

    # The moderator: the panel, no End, nothing to do to the owner; remove the others; delete anyone's message.
    open_controls(student)
    assert student.page.locator("#end-control").is_hidden()
    rows = student.page.locator("#room-members li")
    assert rows.count() == 3
    assert rows.nth(0).locator(".role-tag").inner_text() == "owner"
    assert rows.nth(1).locator(".role-tag").inner_text() == "moderator"
    assert rows.nth(0).locator("button").count() == rows.nth(1).locator("button").count() == 0
    assert member_button(student, "3", "role").count() == 0  # owner only
    assert member_button(student, "3", "remove").count() == 1
    assert menus(student) == [True, True]
    choose(student, 0, "Delete")
    for page in (teacher, student, third):
        wait_for_shown(page, ["message deleted", "Third: from the third"])
    student.page.fill("#title-input", "Moderated")
    student.page.press("#title-input", "Enter")
    teacher.page.wait_for_function("document.getElementById('room-title').textContent === 'Moderated'")

    member_button(teacher, "2", "role").click()
    student.wait_for_notice("You are no longer a moderator")
    student.page.locator("#room-controls").wait_for(state="hidden")
    assert menus(student) == [False, False]
    assert teacher.script_errors == student.script_errors == third.script_errors == []


def test_the_owner_ends_the_chat_after_a_confirmation(
    e2e_server: LiveServer, pages: Callable[..., ChatPage], artifacts: Path, transport: Transport
) -> None:
    teacher, student, link = teacher_and_student(pages, e2e_server.http_url)
    teacher.send_with_enter("last words")
    student.wait_for_messages(1)
    open_controls(teacher)
    teacher.page.click("#end-button")
    dialog = teacher.page.locator("#end-modal.is-active")
    dialog.wait_for()
    assert dialog.get_attribute("role") == "alertdialog"
    assert teacher.page.evaluate("document.activeElement.id") == "end-cancel"  # the safe choice first
    teacher.page.screenshot(path=artifacts / f"end-chat-{transport.value}.png")
    teacher.page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    assert teacher.sent_events("end") == []
    assert teacher.page.evaluate("document.activeElement.id") == "end-button"

    teacher.page.click("#end-button")
    teacher.page.click("#end-confirm")
    for page in (teacher, student):
        wait_for_status(page, ENDED)
        stays_away(page, "ended")
        assert page.page.locator("#message-wrapper p.stopped").inner_text().startswith(ENDED)
    assert teacher.sent_events("end") == [{"type": "end"}]
    student.page.screenshot(path=artifacts / f"ended-{transport.value}.png")

    # The room is gone: its link says so.
    student.page.reload()
    error = student.page.locator("#message-wrapper p.error")
    error.wait_for()
    assert error.inner_text() == problems.NOT_FOUND.text
    late = pages().open(link, name="Late")
    late.page.locator("#message-wrapper p.error").wait_for()
    assert late.page.locator("#message-wrapper p.error").inner_text() == problems.NOT_FOUND.text


def test_two_processes_sharing_redis_apply_room_control_alike(
    pages: Callable[..., ChatPage], redis_pair: tuple[ServerProcess, ServerProcess]
) -> None:
    """The teacher's page on one process, the student's on another, the room in one Redis."""
    first, second = redis_pair
    teacher = pages().open(f"http://{HOST}:{first.http_port}/", name="Teacher")
    link = teacher.join_link()
    student = pages().open(link.replace(f":{first.http_port}/", f":{second.http_port}/"), name="Student")
    student.wait_until_in_room()
    assert student.sockets == [f"ws://{HOST}:{second.http_port}/ws"]
    teacher.wait_for_members(["Teacher (you)", "Student"])
    student.send_with_enter("helo")
    student.wait_for_messages(1)
    student.send_with_enter("oops")
    teacher.wait_for_messages(2)

    choose(student, 0, "Edit")
    line(student, 0).locator(".edit-input").fill("hello")
    line(student, 0).locator(".edit-input").press("Enter")
    choose(teacher, 1, "Delete")
    for page in (teacher, student):
        wait_for_shown(page, ["Student: hello (edited)", "message deleted"])

    open_controls(teacher)
    teacher.page.fill("#title-input", "Math 7B")
    teacher.page.press("#title-input", "Enter")
    teacher.page.click("#lock-button")
    student.page.locator("#locked-badge").wait_for()
    student.page.wait_for_function("document.getElementById('room-title').textContent === 'Math 7B'")

    member_button(teacher, "2", "role").click()
    student.wait_for_notice("You are now a moderator")
    student.page.locator("#room-controls").wait_for()
    member_button(teacher, "2", "remove").click()
    wait_for_status(student, REMOVED)
    stays_away(student, "removed")
    teacher.wait_for_members(["Teacher (you)"])
    assert teacher.script_errors == []
