"""Every text the chat says to a person instead of doing what was asked (`chatcore.problems`), read together: each
is sentences a user understands, names no field, type or part of the server, says what to do, and has a code a
program can act on. Every error the core sends, for whatever a client throws at it, is one of them."""

from __future__ import annotations

import json
import re
import string

from hypothesis import given, settings
from hypothesis import strategies as st

from chatcore import Send, problems
from chatcore.problems import RETRYABLE, Problem
from corekit import FakeClock, LocalChat, keys

CATALOGUE = {name: value for name, value in vars(problems).items() if isinstance(value, Problem)}
SAMPLES = {"limit": 64, "depth": 32, "versions": "the original, 2", "doing": "end it"}
"""A value for each ``{placeholder}`` a text has."""
INTERNAL = re.compile(
    r"(?i:\b(payload|init|joinKey|userId|null|integer|string|boolean|storage|dialect|token|offset|websocket|"
    r"exception|traceback|true|false|redis|sqlite|database)\b)|[\"_{}<>]|[a-z][A-Z]"
)
"""What a text for people never holds: words of the protocol or the server, quotes, braces, identifiers."""


def said(problem: Problem) -> str:
    fields = [name for _, name, _, _ in string.Formatter().parse(problem.text) if name]
    return problem.format(**{name: SAMPLES[name] for name in fields}).text


def test_the_catalogue_holds_every_problem_and_each_code_is_documented() -> None:
    assert len(CATALOGUE) >= 60
    documented = set(re.findall(r"^([a-z-]+)\s{2,}", problems.__doc__ or "", re.M)) - {"code"}
    assert {problem.code for problem in CATALOGUE.values()} == documented
    assert documented >= RETRYABLE


def test_every_text_is_sentences_for_people_that_say_what_to_do() -> None:
    for name, problem in CATALOGUE.items():
        text = said(problem)
        assert text[0].isupper() and text.endswith("."), name  # noqa: PT018
        assert not INTERNAL.search(text), (name, INTERNAL.search(text))
        assert re.search(r"[.:;] [A-Za-z]", text), f"{name}: what happened, then what to do"
        assert len(text) <= 200, name


def test_the_one_text_of_the_original_demo_is_kept_for_its_clients() -> None:
    assert [problem.seed_text for problem in CATALOGUE.values() if problem.seed_text] == ["chat not found."]


def _template(problem: Problem) -> re.Pattern[str]:
    parts = string.Formatter().parse(problem.text)
    return re.compile("".join(re.escape(literal) + (".+?" if name else "") for literal, name, _, _ in parts) + "$")


TEMPLATES = [(_template(problem), problem) for problem in CATALOGUE.values()]

_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 300) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
    max_leaves=4,
)
_kinds = st.sampled_from(["init", "talk", "name", "history", "edit", "delete", "room", "lock", "remove", "role",
                          "end", "dance", ""])
_fields = st.sampled_from(["v", "joinKey", "payload", "id", "name", "token", "after", "auth", "before", "limit",
                           "offset", "title", "locked", "userId", "ban", "role"])
_events = st.one_of(
    st.fixed_dictionaries({"type": _kinds}, optional={"v": st.sampled_from([2, 2, 3, "2"])})
    .flatmap(lambda event: st.dictionaries(_fields, _values, max_size=3).map(lambda extra: {**extra, **event})),
    _values,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_events.map(json.dumps), st.text(max_size=8)), min_size=1, max_size=12))
def test_every_error_the_core_sends_is_one_of_the_catalogue(texts: list[str]) -> None:
    core = LocalChat(clock=FakeClock(), new_join_key=keys().__next__)
    core.connect(1)
    joined: bool | None = None  # (None: in no room yet; else whether it joined in version 2)
    for text in texts:
        try:
            sent = json.loads(text)
        except ValueError:
            sent = None
        # An error carries a code once the connection joined in version 2, and before it joined a room, for an init
        # asking for a version.
        asks = isinstance(sent, dict) and sent.get("type") == "init" and "v" in sent
        versioned = joined is True or (joined is None and asks)
        for action in core.receive_text(1, text):
            if isinstance(action, Send) and (event := json.loads(action.message))["type"] == "init":
                joined = "v" in event
            elif isinstance(action, Send) and event["type"] == "error":
                matches = [problem for pattern, problem in TEMPLATES if pattern.match(event["message"])]
                assert matches or event["message"] == "chat not found.", event
                assert "code" in event or not versioned, (sent, event)
                if "code" in event:
                    assert event["code"] in {problem.code for problem in matches}, event
