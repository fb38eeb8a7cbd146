"""Signing in from the embedding site, in a real browser: a token (RS256, a key made at test time) handed to the page
as a ``#auth=`` fragment or by ``postMessage`` from the parent window.

The fragment leaves the address bar at once and the token is never stored; a signed-in page asks no name and its
name has a mark; a reload without the token rejoins as the same user by its resume token; a refused sign-in (a
forged token, or a server that needs one) is said plainly and the page stays away.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chat_page import HOST, ChatPage
from chatcore import problems
from chatcore.problems import SIGN_IN_NEEDED
from live import LiveServer
from transports.config import AuthMode, AuthSettings, bundled_web_dir


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def sign(key: rsa.RSAPrivateKey, sub: str, name: str, **claims: object) -> str:
    return jwt.encode({"sub": sub, "name": name, "exp": int(time.time()) + 600, **claims}, key, algorithm="RS256")


def signing_server(start_server: Callable[..., LiveServer], folder: Path, key: rsa.RSAPrivateKey,
                   mode: AuthMode = AuthMode.OPTIONAL, auth_origins: str | None = None) -> LiveServer:
    """A server verifying tokens with ``key``; with ``auth_origins``, its page lists them in ``data-auth-origins``."""
    pem = folder / "auth.pem"
    pem.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    web = bundled_web_dir()
    if auth_origins is not None:
        web = shutil.copytree(web, folder / "web")
        index = web / "index.html"
        page = index.read_text()
        assert 'data-auth-origins=""' in page
        index.write_text(page.replace('data-auth-origins=""', f'data-auth-origins="{auth_origins}"'))
    return start_server(host=HOST, auth=AuthSettings(keys=(pem,), mode=mode), web_dir=web)


def verified_mark(page: ChatPage) -> bool:
    return page.page.locator("#my-name[data-verified]").count() == 1


def stays_refused(page: ChatPage, text: str) -> None:
    """The page says ``text``, is out of the room for good, and opens no new socket."""
    page.page.wait_for_function("t => document.getElementById('status').textContent === t", arg=text)
    assert page.page.evaluate("document.body.dataset.state") == "refused"
    sockets = len(page.sockets)
    page.page.wait_for_timeout(1500)  # longer than the first reconnection delays
    assert len(page.sockets) == sockets
    assert page.page.locator("#message-input").is_disabled()
    assert page.script_errors == []


def test_a_token_in_the_fragment_signs_in_leaves_the_address_bar_and_a_reload_resumes(
    tmp_path: Path, key: rsa.RSAPrivateKey, start_server: Callable[..., LiveServer], pages: Callable[..., ChatPage]
) -> None:
    server = signing_server(start_server, tmp_path, key)
    teacher_token = sign(key, "t-1", "Ms. Lovelace", create=True)
    teacher = pages().open(f"{server.http_url}#auth={teacher_token}")
    teacher.wait_until_in_room()
    assert not teacher.asks_for_name()
    assert teacher.my_name() == "Ms. Lovelace"
    assert verified_mark(teacher)
    link = teacher.join_link()
    assert teacher.page.url == link  # the fragment went at once, and the join link took its place
    assert teacher.sent_events("init")[0]["auth"] == teacher_token
    stored = teacher.page.evaluate("JSON.stringify(Object.assign({}, localStorage))")
    assert teacher_token not in stored
    assert teacher_token.split(".")[1] not in stored

    # A join link with a token: the fragment goes, the join query stays.
    student_token = sign(key, "s-7", "Grace")
    student = pages().open(f"{link}#auth={student_token}")
    student.wait_until_in_room()
    assert student.page.url == link
    assert not student.asks_for_name()
    assert verified_mark(student)
    teacher.wait_for_members(["Ms. Lovelace (you)", "Grace"])

    # Clicking a signed-in name offers no dialog: the name is the token's.
    student.page.click("#my-name")
    assert not student.asks_for_name()

    # A reload has no token any more (it was in memory only): the resume token brings back the same user.
    user_id = student.user_id()
    student.page.reload()
    student.wait_until_in_room()
    assert not student.asks_for_name()
    assert student.user_id() == user_id
    assert student.my_name() == "Grace"
    assert "auth" not in student.sent_events("init")[-1]
    assert verified_mark(student)
    student.page.click("#my-name")  # still signed in: still no dialog (the server would refuse a rename)
    assert not student.asks_for_name()
    teacher.wait_for_members(["Ms. Lovelace (you)", "Grace"])
    assert teacher.script_errors == []
    assert student.script_errors == []


def test_a_forged_token_is_refused_plainly_and_the_page_stays_away(
    tmp_path: Path, key: rsa.RSAPrivateKey, start_server: Callable[..., LiveServer], pages: Callable[..., ChatPage]
) -> None:
    server = signing_server(start_server, tmp_path, key)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    page = pages().open(f"{server.http_url}#auth={sign(forger, 't-1', 'Ms. Lovelace', create=True)}")
    stays_refused(page, problems.SIGN_IN_REFUSED.text)
    assert "#" not in page.page.url
    assert not page.asks_for_name()


def test_a_server_that_needs_a_sign_in_says_so_to_a_page_without_a_token(
    tmp_path: Path, key: rsa.RSAPrivateKey, start_server: Callable[..., LiveServer], pages: Callable[..., ChatPage]
) -> None:
    server = signing_server(start_server, tmp_path, key, AuthMode.REQUIRED)
    page = pages().open(server.http_url, name="Ada")
    stays_refused(page, SIGN_IN_NEEDED.text)


@contextmanager
def site(body: Callable[[], str]) -> Iterator[str]:
    """An embedding site on loopback serving ``body()`` at ``/`` (Chromium keeps a public site's frame from opening
    sockets to a local address, and a page the test answers itself counts as public): its origin."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body().encode())

        def log_message(self, format: str, *args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            httpd.shutdown()


def parent_page(chat: str, token: str) -> str:
    """A site's page framing the chat, answering the frame's "chat-ready" with ``token``."""
    return (
        f'<!DOCTYPE html><iframe src="{chat}" width="800" height="600"></iframe><script>'
        'addEventListener("message", e => { if (e.data && e.data.type === "chat-ready")'
        f' e.source.postMessage({{type: "chat-auth", token: "{token}"}}, "{chat.rstrip("/")}"); }});'
        "</script>"
    )


def test_the_parent_window_signs_the_frame_in_from_a_listed_origin_only(
    tmp_path: Path, key: rsa.RSAPrivateKey, start_server: Callable[..., LiveServer], pages: Callable[..., ChatPage]
) -> None:
    token = sign(key, "t-1", "Ms. Lovelace", create=True)
    chat: list[str] = []  # the chat's address: known once the server runs, which is after the sites start
    with site(lambda: parent_page(chat[0], token)) as school, site(lambda: parent_page(chat[0], token)) as other_site:
        server = signing_server(start_server, tmp_path, key, auth_origins=school)
        chat.append(server.http_url)
        page = pages()
        page.page.goto(school)
        frame = page.page.frame_locator("iframe")
        frame.locator("body[data-state='live']").wait_for()
        assert frame.locator("#my-name").inner_text() == "Ms. Lovelace"
        assert frame.locator("#my-name[data-verified]").count() == 1
        assert frame.locator("#name-modal.is-active").count() == 0
        assert page.sent_events("init")[0]["auth"] == token

        # Another site's message is ignored: no token comes, so the frame asks a name after a while.
        other = pages()
        other.page.goto(other_site)
        other.page.frame_locator("iframe").locator("#name-modal.is-active").wait_for()
        assert other.sent_events("init") == []
    assert page.script_errors == []
    assert other.script_errors == []
