"""The flag reference of the documentation site, written from `chat-server`'s own parser so it cannot drift.

`reference` makes the Markdown the site's Configuration page shows where it
says `MARKER` (the site's build hook, ``docs/hooks/flags.py``, puts it there).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import settings
from .config import bundled_web_dir

MARKER = "<!-- the flag reference, written from the parser -->"
"""Where the Configuration page takes the reference."""

_GROUP_TITLES = {"options": "Serving", "optional arguments": "Serving"}
"""argparse's name for the flags outside any group, and what the reference calls them."""


def reference(parser: argparse.ArgumentParser) -> str:
    """A table per group of ``parser``'s flags: each flag, its variable, its default and what it does."""
    sections = []
    for group in parser._action_groups:  # (argparse has no public way to walk its groups)
        rows = [_row(parser, action) for action in group._group_actions if settings.env_name(action) is not None]
        if rows:
            title = _GROUP_TITLES.get(group.title or "", group.title or "")
            sections.append(
                f"### {title[:1].upper()}{title[1:]}\n\n| flag | variable | default | what it does |\n"
                "|---|---|---|---|\n" + "\n".join(rows)
            )
    return "\n\n".join(sections) + "\n"


def _row(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    flag = max(action.option_strings, key=len)
    if action.choices is not None:
        flag += " {" + ",".join(str(choice) for choice in action.choices) + "}"
    elif action.nargs != 0:
        flag += f" {action.metavar or action.dest.upper()}"
    text = (action.help or "") % {**vars(action), "prog": parser.prog}
    shown = settings.has_default(action) and "(default:" not in text  # (else the text says it)
    default = f"`{_shown(action.default)}`" if shown else ""
    return f"| `{flag}` | `{settings.env_name(action)}` | {default} | {_cell(text)} |"


def _shown(value: object) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(getattr(value, "value", value))


def _cell(text: str) -> str:
    # (the paths the help names are this machine's: said the way they read on any)
    text = text.replace(str(bundled_web_dir()), "the installed package's web folder").replace(str(Path.home()), "~")
    return text.replace("|", "\\|").replace("\n", " ")
