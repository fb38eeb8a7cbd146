"""The documents: a site whose every page is in its navigation, a short README linking into it, a flag
reference written from the server's own parser, and names that say what a page holds, not how it came to be.

`mkdocs build --strict` (the test command) checks every link and anchor of the site; these check what it cannot.
"""

from __future__ import annotations

import re

from live import ROOT
from transports.cli import build_parser
from transports.flagdocs import MARKER, reference
from transports.settings import env_name

DOCS = sorted((ROOT / "docs").glob("*.md"))
README_MOST_LINES = 200


def test_every_page_of_the_docs_is_in_the_sites_navigation() -> None:
    navigation = set(re.findall(r"^\s+- [^:]+: (\S+\.md)$", (ROOT / "mkdocs.yml").read_text(), re.MULTILINE))
    assert DOCS
    assert {page.name for page in DOCS} == navigation


def test_the_readme_is_short_and_links_into_the_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_MOST_LINES
    linked = set(re.findall(r"\]\(docs/([^)#]+\.md)", readme))
    for page in linked:
        assert (ROOT / "docs" / page).is_file(), f"the README links to docs/{page}, which is not there"
    for page in ("index.md", "getting-started.md", "deploying.md", "configuration.md", "protocol.md"):
        assert page in linked, f"the README does not link to docs/{page}"


def test_the_flag_reference_has_every_flag_and_its_variable() -> None:
    parser = build_parser()
    written = reference(parser)
    assert MARKER in (ROOT / "docs" / "configuration.md").read_text()
    flags = [action for action in parser._actions if env_name(action) is not None]
    assert len(flags) > 30
    for action in flags:
        flag = max(action.option_strings, key=len)
        assert re.search(rf"^\| `{re.escape(flag)}[ `].*\| `{env_name(action)}` \|", written, re.MULTILINE), flag
    assert "--worker-id" not in written  # (hidden: the supervisor's)
    assert str(ROOT) not in written  # (this machine's paths are not the reader's)


def test_no_file_or_title_is_named_for_an_issue_or_a_work_session() -> None:
    history = re.compile(r"(?i)\b(issue|session)[- ]?\d+")
    for path in ROOT.glob("[!.]*/**/*"):
        if ".venv" in path.parts or "__pycache__" in path.parts:
            continue
        assert not history.search(path.name), path
    for page in [ROOT / "README.md", *DOCS]:
        titles = [line for line in page.read_text().splitlines() if line.startswith("#")]
        assert not [title for title in titles if history.search(title)], page.name
