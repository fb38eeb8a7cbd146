"""The per-connection outbox: bounded, never blocking, telling its consumer when there is work."""

from __future__ import annotations

from transports.websocket.outbox import CloseRequest, Outbox


class Recorder(Outbox):
    """An outbox whose consumer counts how often it is told there is work."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.calls = 0

    def _notify(self) -> None:
        self.calls += 1


def test_frames_come_out_in_order_and_all_at_once() -> None:
    outbox = Recorder(100)
    assert not outbox.queued
    assert outbox.put(b"a")
    assert outbox.put(b"bc")
    assert outbox.queued
    assert outbox.take() == [b"a", b"bc"]
    assert not outbox.queued
    assert outbox.take() == []


def test_the_consumer_is_told_only_when_the_queue_stops_being_empty() -> None:
    outbox = notify = Recorder(100)
    outbox.put(b"a")
    outbox.put(b"b")
    assert notify.calls == 1
    outbox.take()
    outbox.put(b"c")
    assert notify.calls == 2


def test_the_bound_refuses_what_does_not_fit_and_frees_on_take() -> None:
    outbox = Recorder(10)
    assert outbox.put(b"x" * 6)
    assert not outbox.put(b"y" * 5)  # 11 > 10
    assert outbox.put(b"z" * 4)  # exactly 10
    assert outbox.take() == [b"x" * 6, b"z" * 4]
    assert outbox.put(b"y" * 5)


def test_one_frame_larger_than_the_bound_still_goes_through_an_empty_queue() -> None:
    outbox = Recorder(10)
    assert outbox.put(b"x" * 50)
    assert not outbox.put(b"y")


def test_a_close_keeps_what_is_queued_and_refuses_more() -> None:
    outbox = notify = Recorder(100)
    outbox.put(b"a")
    assert outbox.request_close(1000, "bye")
    assert notify.calls == 2
    assert outbox.closing == CloseRequest(1000, "bye")
    assert not outbox.put(b"late")
    assert outbox.take() == [b"a"]


def test_a_discarding_close_drops_the_queue_and_only_the_first_close_counts() -> None:
    outbox = Recorder(100)
    outbox.put(b"a")
    assert outbox.request_close(1008, "slow", discard=True)
    assert outbox.take() == []
    assert not outbox.request_close(1000, "later")
    assert outbox.closing == CloseRequest(1008, "slow")
