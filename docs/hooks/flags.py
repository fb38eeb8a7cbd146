"""MkDocs hook: the Configuration page's flag reference, written from chat-server's parser at every build."""

from __future__ import annotations

from typing import Any

from transports.cli import build_parser
from transports.flagdocs import MARKER, reference


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return markdown.replace(MARKER, reference(build_parser())) if MARKER in markdown else markdown
