"""The page's files without sockets: read once at start, looked up from memory, nothing outside the folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from transports.config import StartupError
from transports.http import static as static_http
from transports.http.static import StaticSite


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "web"
    (root / "sub").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "index.html").write_text("<p>home</p>")
    (root / "app.js").write_text("let x = 1;")
    (root / "sub" / "index.html").write_text("<p>sub</p>")
    (root / "sub" / "data.bin").write_bytes(b"\x00\x01")
    (root / ".env").write_text("SECRET=1")
    (root / ".git" / "config").write_text("[core]")
    (tmp_path / "outside.txt").write_text("outside")
    (root / "inside-link.js").symlink_to(root / "app.js")
    (root / "outside-link.txt").symlink_to(tmp_path / "outside.txt")
    return root


def test_files_are_served_from_memory_once_loaded(folder: Path) -> None:
    site = StaticSite.load(folder, 8001)
    shutil.rmtree(folder)  # nothing is read from disk after the start
    for target, body, kind in [
        ("/", b"<p>home</p>", "text/html; charset=utf-8"),
        ("/index.html?join=abc", b"<p>home</p>", "text/html; charset=utf-8"),
        ("/app.js", b"let x = 1;", "text/javascript; charset=utf-8"),
        ("/inside-link.js", b"let x = 1;", "text/javascript; charset=utf-8"),
        ("/sub", b"<p>sub</p>", "text/html; charset=utf-8"),
        ("/sub/", b"<p>sub</p>", "text/html; charset=utf-8"),
        ("/sub/data.bin", b"\x00\x01", "application/octet-stream"),
        ("/config.js", b'window.CHAT_CONFIG = {"wsPort": 8001};\n', "text/javascript; charset=utf-8"),
    ]:
        response = site.respond(target)
        assert (response.status, response.body, response.content_type) == (200, body, kind), target


@pytest.mark.parametrize(
    "target",
    ["/.env", "/.git/config", "/outside-link.txt", "/../outside.txt", "/sub/../../outside.txt", "/%2e%2e/outside.txt",
     "/missing", "/%00", "/" + "a" * 5000, "//etc/passwd", "/%ff%fe"],
)
def test_hidden_files_links_out_and_anything_else_are_not_found(folder: Path, target: str) -> None:
    assert StaticSite.load(folder, 8001).respond(target).status == 404


def test_an_unchanged_file_is_answered_304(folder: Path) -> None:
    site = StaticSite.load(folder, 8001)
    first = site.respond("/app.js")
    assert first.etag is not None
    again = site.respond("/app.js", f'"other", {first.etag}')
    assert (again.status, again.body, again.etag) == (304, b"", first.etag)
    assert site.respond("/app.js", '"stale"').status == 200
    assert site.respond("/", first.etag).status == 200  # another file's tag


def test_a_folder_too_large_to_keep_in_memory_stops_the_start(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(static_http, "MAX_SITE_FILES", 3)
    with pytest.raises(StartupError, match="more than 3 files"):
        StaticSite.load(folder, 8001)


def test_links_to_folders_are_walked_once_and_never_outside(folder: Path, tmp_path: Path) -> None:
    (folder / "sub" / "loop").symlink_to(folder)  # a cycle: walked as it comes, it never ends
    (folder / "again").symlink_to(folder / "sub")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "back").symlink_to(folder)  # outside, and back in from there
    (outside / "page.html").write_text("outside")
    (folder / "out").symlink_to(outside)
    site = StaticSite.load(folder, 8001)
    assert site.respond("/sub/index.html").status == 200
    for target in ["/sub/loop/index.html", "/out/page.html", "/out/back/index.html", "/sub/loop/sub/data.bin"]:
        assert site.respond(target).status == 404, target
