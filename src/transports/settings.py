"""Every flag of ``chat-server`` also from the environment, as ``CHAT_SERVER_<FLAG>``.

One place derives each flag's variable from its long option string
(``--ws-port`` → ``CHAT_SERVER_WS_PORT``), reads it, and shows it in
``--help`` (`HelpFormatter`), so a flag added to the parser has its variable
with nothing else to do. The rules:

- a flag given on the command line wins over its variable;
- a value is checked as the flag's would be (its type, its choices); one the
  flag would refuse stops the program with one line naming the variable,
  exit status 2;
- repeatable flags (``--allow-origin``) take a list separated by commas or
  whitespace: ``CHAT_SERVER_ALLOW_ORIGIN="https://a.example,https://b.example"``;
  the flag given on the command line replaces that list (it does not add to it);
- on/off flags take ``1``, ``true``, ``yes``, ``on`` or ``0``, ``false``,
  ``no``, ``off`` (any case);
- an empty variable counts as unset; hidden flags (``--worker-id``) have none;
- a ``CHAT_SERVER_`` variable no flag has is ignored, and `parse_args`
  returns its name so that the caller can warn about it (a misspelt
  setting must not pass unnoticed), except Kubernetes' service links
  (``CHAT_SERVER_SERVICE_HOST``, ``CHAT_SERVER_PORT_8000_TCP`` …), which a
  Service named ``chat-server`` puts in every pod.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence

PREFIX = "CHAT_SERVER_"
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})
_SERVICE_LINK = re.compile(r"CHAT_SERVER_(SERVICE_\w+|PORT(_\d+_(TCP|UDP|SCTP)\w*)?)\Z")
_ACCUMULATING = (argparse._AppendAction, argparse._AppendConstAction, argparse._CountAction)
"""Actions that add to what the namespace holds: from the environment only when the command line has none."""


def env_name(action: argparse.Action) -> str | None:
    """The variable that sets ``action``'s flag, or None (positional, hidden, ``--help``, ``--version``)."""
    if isinstance(action, argparse._HelpAction | argparse._VersionAction) or argparse.SUPPRESS in (
        action.dest, action.help
    ):
        return None
    flag = next((option for option in action.option_strings if option.startswith("--")), None)
    if flag is None:
        return None
    return PREFIX + flag[2:].upper().replace("-", "_")


class InvalidSetting(Exception):
    """A variable's value that its flag would refuse."""


def parse_args(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, environ: Mapping[str, str]
) -> tuple[argparse.Namespace, list[str]]:
    """``parser.parse_args(argv)`` with the environment under the command line; also the unknown variables."""
    preset = argparse.Namespace()
    accumulated: list[tuple[argparse.Action, object]] = []
    known: set[str] = set()
    for action in parser._actions:
        name = env_name(action)
        if name is None:
            continue
        known.add(name)
        text = environ.get(name, "")
        if not text:
            continue
        try:
            value = _value(action, text)
        except InvalidSetting as error:
            flag = next(option for option in action.option_strings if option.startswith("--"))
            parser.exit(2, f"{parser.prog}: error: environment variable {name} ({flag}): {error}\n")
        action.required = False  # (the environment gave it)
        if isinstance(action, _ACCUMULATING):
            accumulated.append((action, value))
        else:
            setattr(preset, action.dest, value)  # argparse keeps it unless the command line gives the flag
    args = parser.parse_args(argv, namespace=preset)
    for action, value in accumulated:
        if getattr(args, action.dest) is action.default:  # (adding copies the default: it was not given)
            setattr(args, action.dest, value)
    unknown = sorted(name for name in environ if name.startswith(PREFIX) and name not in known
                     and not _SERVICE_LINK.match(name))
    return args, unknown


def _value(action: argparse.Action, text: str) -> object:
    """What the flag would have set for ``text``; raises `InvalidSetting`."""
    if action.nargs == 0:  # on/off: store_true, store_false, store_const, BooleanOptionalAction ...
        word = text.strip().lower()
        if word not in TRUE | FALSE:
            raise InvalidSetting(f"must be 1, true, yes or on (or 0, false, no, off), not {text!r}")
        on = word in TRUE
        if isinstance(action, argparse.BooleanOptionalAction):
            return on
        if isinstance(action, argparse._CountAction):
            return 1 if on else action.default
        if isinstance(action, argparse._AppendConstAction):
            return [*(action.default or []), action.const] if on else action.default
        return action.const if on else action.default
    if isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+") or isinstance(action.nargs, int):
        items = [_item(action, item) for item in re.split(r"[,\s]+", text) if item]
        if isinstance(action, argparse._AppendAction):
            return [*(action.default or []), *items]
        return items
    return _item(action, text)


def _item(action: argparse.Action, text: str) -> object:
    """One value as the flag's type and choices take it."""
    if action.type is None:
        value: object = text
    elif callable(action.type):
        try:
            value = action.type(text)
        except argparse.ArgumentTypeError as error:
            raise InvalidSetting(str(error)) from None  # (argparse shows the message alone too: it may hide a secret)
        except (TypeError, ValueError):
            raise InvalidSetting(f"invalid value: {text!r}") from None
    else:
        raise InvalidSetting(f"the flag's type {action.type!r} cannot be read from the environment")
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(repr(choice) for choice in action.choices)
        raise InvalidSetting(f"invalid choice: {text!r} (choose from {choices})")
    return value


class HelpFormatter(argparse.HelpFormatter):
    """Each flag's help ends with its default (unless it states its own, or has none) and its variable."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        notes = []
        if "(default:" not in text and "%(default)" not in text and has_default(action):
            notes.append("default: %(default)s")
        name = env_name(action)
        if name is not None:
            notes.append(f"env {name}")
        return f"{text} [{'; '.join(notes)}]".strip() if notes else text


def has_default(action: argparse.Action) -> bool:
    """Whether `action` has a default worth showing (not None, not empty, not a switch's)."""
    default = action.default
    if action.nargs == 0 or default is None or default is argparse.SUPPRESS:
        return False
    return not (isinstance(default, list | tuple | set | frozenset | str) and not default)


EPILOG = (
    "Every flag can also be set in the environment, as shown by its [env ...]: CHAT_SERVER_ and the flag's "
    "name in capitals, dashes as underscores (--ws-port: CHAT_SERVER_WS_PORT=8001). A flag on the command line "
    "wins over its variable. Repeatable flags take a list separated by commas or spaces "
    "(CHAT_SERVER_ALLOW_ORIGIN=https://a.example,https://b.example); the flag replaces that list. "
    "On/off flags take 1, true, yes, on or 0, false, no, off. An empty variable counts as unset."
)
