"""The documents: each page is reachable from the README, and names what it holds, not how it came to be."""

from __future__ import annotations

import re

from live import ROOT

DOCS = sorted((ROOT / "docs").glob("*.md"))


def test_every_page_of_the_docs_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    assert DOCS
    for page in DOCS:
        assert f"](docs/{page.name}" in readme, f"{page.name} is not linked from the README"


def test_every_link_into_the_docs_leads_to_a_page() -> None:
    for source in [ROOT / "README.md", *DOCS]:
        for target in re.findall(r"\]\((?:\.\./)?(docs/[^)#]+)", source.read_text()):
            assert (ROOT / target).is_file(), f"{source.name} links to {target}, which is not there"


def test_no_file_or_title_is_named_for_an_issue_or_a_work_session() -> None:
    history = re.compile(r"(?i)\b(issue|session)[- ]?\d+")
    for path in ROOT.glob("[!.]*/**/*"):
        if ".venv" in path.parts or "__pycache__" in path.parts:
            continue
        assert not history.search(path.name), path
    for page in [ROOT / "README.md", *DOCS]:
        titles = [line for line in page.read_text().splitlines() if line.startswith("#")]
        assert not [title for title in titles if history.search(title)], page.name
