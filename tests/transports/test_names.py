"""The server's name key (ICU's confusables skeleton), through the core and its memory log."""

from __future__ import annotations

import pytest

from chatcore.identity import Identity, SignIn
from chatcore.problems import SIGN_IN_REFUSED, TAKEN, Problem
from corekit import FakeClock, LocalChat, keys
from transports.names import name_key
from v2kit import Net

TOKENS = {"teacher": Identity("t-1", "Ms. Lovelace", create=True), "student": Identity("s-1", "Ada")}


def verify(token: str) -> Identity | Problem:
    return TOKENS.get(token, SIGN_IN_REFUSED)


@pytest.mark.parametrize(("one", "other"), [
    ("Ada", "ada"),
    ("Ada", "\uff21\uff24\uff21"),  # fullwidth
    ("Ada", "\u0391da"),  # a Greek capital alpha
    ("Ada", "\u03b1da"),  # a Greek small alpha
    ("Ada", "\u0410d\u0430"),  # Cyrillic a's
    ("Bob", "\ua4d0ob"),  # a Lisu letter whose prototype is a capital B
    ("Ms. Lovelace", "Ms. Lovel\u0430c\u0435"),  # Cyrillic a and e
    ("Tim", "Tirn"),
])
def test_look_alike_names_share_a_key(one: str, other: str) -> None:
    assert name_key(one) == name_key(other)


@pytest.mark.parametrize(("one", "other"), [("Ada", "Adam"), ("Ada", "Ana"), ("Bo", "Bob")])
def test_different_names_do_not(one: str, other: str) -> None:
    assert name_key(one) != name_key(other)


@pytest.mark.parametrize("name", ["ada", "\uff21\uff24\uff21", "\u0391da", "\u0410d\u0430"])
def test_an_unsigned_user_cannot_take_a_look_alike_of_a_signed_in_members_name(name: str) -> None:
    net = Net(LocalChat(clock=FakeClock(), new_join_key=keys().__next__, sign_in=SignIn(verify), name_key=name_key))
    room = net.join(1, auth="teacher")["joinKey"]
    net.join(2, joinKey=room, auth="student")
    net.connect(3)
    net.send(3, {"type": "init", "v": 2, "joinKey": room, "name": name})
    assert [event["message"] for event in net.take(3)] == [TAKEN.text]
    anon = net.join(4, joinKey=room, name="Anon")
    net.send(4, {"type": "name", "name": name})
    assert [event["message"] for event in net.take(4)] == [TAKEN.text]
    assert anon["name"] == "Anon"
