"""Limits: payload size, JSON depth and message rate, each answered as documented."""

from __future__ import annotations

import pytest

from chatcore import Broadcast, Close, CoreLimits, problems
from corekit import FakeClock, LocalChat, assert_error, decoded, join_room, keys, send, start_room


@pytest.mark.parametrize(
    "bad",
    [{"history_limit": -1}, {"max_payload_chars": 0}, {"max_json_depth": 0}, {"messages_per_second": 0},
     {"message_burst": 0}, {"max_rate_strikes": 0}],
)
def test_nonsense_limits_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        CoreLimits(**bad)  # type: ignore[arg-type]


def test_a_payload_up_to_the_limit_is_accepted_and_a_longer_one_refused() -> None:
    core = LocalChat(clock=FakeClock(), new_join_key=keys().__next__, limits=CoreLimits(max_payload_chars=10))
    start_room(core, 1)
    assert isinstance(send(core, 1, {"type": "talk", "payload": "x" * 10})[0], Broadcast)
    assert_error(send(core, 1, {"type": "talk", "payload": "x" * 11}), 1, problems.TOO_LONG.format(limit=10))


def test_nesting_up_to_the_limit_is_accepted() -> None:
    core = LocalChat(clock=FakeClock(), new_join_key=keys().__next__, limits=CoreLimits(max_json_depth=4))
    start_room(core, 1)
    # The event object itself is level 1.
    assert isinstance(send(core, 1, {"type": "talk", "payload": "x", "extra": [[[1]]]})[0], Broadcast)
    deep = {"type": "talk", "payload": "x", "extra": [[[[1]]]]}
    assert_error(send(core, 1, deep), 1, problems.TOO_DEEP.format(depth=4))


def test_brackets_inside_strings_are_not_nesting() -> None:
    core = LocalChat(clock=FakeClock(), new_join_key=keys().__next__, limits=CoreLimits(max_json_depth=4))
    start_room(core, 1, render="text")
    payload = '[{[{"\\"[[[[[[' * 10
    assert decoded(send(core, 1, {"type": "talk", "payload": payload})[0])["payload"] == payload


def test_the_rate_limit_answers_errors_then_closes_with_1008(clock: FakeClock) -> None:
    limits = CoreLimits(messages_per_second=2, message_burst=3, max_rate_strikes=2)
    core = LocalChat(clock=clock, new_join_key=keys().__next__, limits=limits)
    start_room(core, 1)  # the init took one token
    for _ in range(2):
        assert isinstance(send(core, 1, {"type": "talk", "payload": "x"})[0], Broadcast)
    assert_error(send(core, 1, {"type": "talk", "payload": "x"}), 1, problems.RATE_LIMITED)
    clock.now += 0.5  # one token back
    assert isinstance(send(core, 1, {"type": "talk", "payload": "x"})[0], Broadcast)
    assert_error(send(core, 1, {"type": "talk", "payload": "x"}), 1, problems.RATE_LIMITED)
    assert_error(core.receive_text(1, "garbage counts too"), 1, problems.RATE_LIMITED)
    assert core.receive_binary(1, b"x") == [Close(1, 1008, "message rate limit exceeded")]


def test_the_rate_limit_is_per_connection(clock: FakeClock) -> None:
    core = LocalChat(clock=clock, new_join_key=keys().__next__, limits=CoreLimits(message_burst=2))
    join_key = start_room(core, 1)
    send(core, 1, {"type": "talk", "payload": "x"})
    assert_error(send(core, 1, {"type": "talk", "payload": "x"}), 1, problems.RATE_LIMITED)
    join_room(core, 2, join_key)
    assert isinstance(send(core, 2, {"type": "talk", "payload": "x"})[0], Broadcast)


def test_a_backwards_clock_neither_refills_nor_breaks_the_bucket(clock: FakeClock) -> None:
    core = LocalChat(clock=clock, new_join_key=keys().__next__, limits=CoreLimits(message_burst=2))
    start_room(core, 1)
    send(core, 1, {"type": "talk", "payload": "x"})
    clock.now -= 3600
    assert_error(send(core, 1, {"type": "talk", "payload": "x"}), 1, problems.RATE_LIMITED)
    clock.now += 1
    assert isinstance(send(core, 1, {"type": "talk", "payload": "x"})[0], Broadcast)
