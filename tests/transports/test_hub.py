"""The hub without sockets: admission of handshakes, and every action dispatched (or refused)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
import trio
from trio.testing import MockClock

from chatcore import AddUser, Append, Broadcast, Close, ConnectionId, Load, LogResult, Send, Wake
from transports.config import Limits
from transports.http.answers import Refusal
from transports.http.origin import OriginPolicy
from transports.runtime.hub import Hub, HubAction, SendBinary
from transports.websocket.framing import Outgoing
from transports.websocket.handshake import Handshake
from transports.websocket.peer import Peer


class ScriptedApp:
    """Answers every event with the actions it was given."""

    def __init__(self) -> None:
        self.actions: list[HubAction] = []

    def connect(self, connection: ConnectionId) -> Iterable[HubAction]:
        return []

    def disconnect(self, connection: ConnectionId) -> Iterable[HubAction]:
        return []

    def receive_text(self, connection: ConnectionId, text: str) -> Iterable[HubAction]:
        return self.actions

    def receive_binary(self, connection: ConnectionId, data: bytes) -> Iterable[HubAction]:
        return self.actions

    def log_result(self, result: LogResult) -> Iterable[HubAction]:
        return self.actions

    def settle(self) -> Iterable[HubAction]:
        return []


class RecordingPeer(Peer):
    """A peer whose writes stay in its outbox, for the test to look at."""

    pings = 0
    unread = False
    """Whether the kernel holds bytes from the client that nobody has read."""

    async def read_loop(self, connection: ConnectionId) -> None:
        pass

    def _notify(self) -> None:
        pass

    def data_waiting(self) -> bool:
        return self.unread

    def _send_ping(self) -> None:
        self.pings += 1


def handshake(origin: str | None = None, host: str = "127.0.0.1") -> Handshake:
    return Handshake(b"", b"", "/", host, origin, b"k" * 24)


def make_hub(**limits: int) -> tuple[Hub, ScriptedApp]:
    app = ScriptedApp()
    origins = OriginPolicy(frozenset({"https://allowed.example"}))
    origins.page_ports.add(8000)
    return Hub(app, Limits(**limits), origins), app


def refused(hub: Hub, address: str) -> int | None:
    try:
        hub.admit(address)
    except Refusal as refusal:
        return refusal.status
    return None


def test_admission_counts_per_address_and_in_total_and_release_gives_back() -> None:
    hub, _ = make_hub(max_connections=3, max_connections_per_address=2)
    assert refused(hub, "10.0.0.1") is None
    assert refused(hub, "10.0.0.1") is None
    assert refused(hub, "10.0.0.1") == 429
    assert refused(hub, "10.0.0.2") is None
    assert refused(hub, "10.0.0.3") == 503
    hub.release("10.0.0.1")
    assert refused(hub, "10.0.0.3") is None
    assert refused(hub, "10.0.0.1") == 503


def test_the_origin_check() -> None:
    hub, _ = make_hub()
    for shake in [handshake(), handshake("https://allowed.example"), handshake("http://localhost:8000", "::1"),
                  handshake("http://10.1.2.3:8000", "10.1.2.3")]:
        hub.check_origin(shake)
    for shake in [handshake("http://evil.example"), handshake("http://localhost:8001"), handshake("null")]:
        with pytest.raises(Refusal) as refusal:
            hub.check_origin(shake)
        assert refusal.value.status == 403


@pytest.mark.trio
async def test_every_action_reaches_its_peer() -> None:
    hub, app = make_hub()
    peers = [RecordingPeer(Limits(), "127.0.0.1", port) for port in (1, 2, 3)]
    ids = [hub.open(peer) for peer in peers]
    app.actions = [
        Broadcast("room", (ids[0], ids[1]), "to both"),
        Send(ids[2], "to three"),
        SendBinary(ids[2], b"\x00\x01"),
        Close(ids[1], 1008, "policy"),
    ]
    hub.receive_text(ids[0], "anything")
    first, second, third = (peer.take() for peer in peers)
    assert first == [Outgoing("to both").frame()]
    assert first[0] is second[0]  # a broadcast is framed once and shared
    assert third == [Outgoing("to three").frame(), Outgoing(b"\x00\x01").frame()]
    assert peers[1].closing is not None
    assert peers[1].closing.code == 1008
    assert peers[0].closing is None


@pytest.mark.trio
async def test_storage_actions_without_storage_are_a_bug_not_silence() -> None:
    hub, app = make_hub()
    connection = hub.open(RecordingPeer(Limits(), "127.0.0.1", 1))
    for action in (AddUser(1, "key", None), Append(2, "key", 1, 0.0, "x"), Load(3, "key", 10)):
        app.actions = [action]
        with pytest.raises(RuntimeError, match="storage"):
            hub.receive_text(connection, "x")


@pytest.mark.trio
async def test_an_action_the_hub_does_not_know_is_refused() -> None:
    hub, app = make_hub()
    connection = hub.open(RecordingPeer(Limits(), "127.0.0.1", 1))
    app.actions = ["not an action"]  # type: ignore[list-item]
    with pytest.raises(AssertionError):
        hub.receive_text(connection, "x")


@pytest.mark.trio
async def test_a_connection_whose_opening_fails_is_not_left_behind() -> None:
    hub, _ = make_hub()

    class FailingApp(ScriptedApp):
        def connect(self, connection: ConnectionId) -> Iterable[HubAction]:
            raise RuntimeError("bug")

    hub.app = FailingApp()
    with pytest.raises(RuntimeError):
        hub.open(RecordingPeer(Limits(), "127.0.0.1", 1))
    assert hub.connection_count == 0


@pytest.mark.trio
async def test_keepalive_judges_a_client_by_what_it_sent_not_by_when_we_read_it(autojump_clock: MockClock) -> None:
    hub, _ = make_hub(ping_interval=10, ping_timeout=5)
    silent, talking, unread = (RecordingPeer(Limits(), "127.0.0.1", port) for port in (1, 2, 3))
    for peer in (silent, talking, unread):
        hub.open(peer)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.keepalive)
        await trio.sleep(10.5)  # the first pings are out
        assert (silent.pings, talking.pings, unread.pings) == (1, 1, 1)
        talking.heard = True  # it sent something, a pong or a message: read by us
        unread.unread = True  # its pong arrived, but an overloaded server has not read it yet
        await trio.sleep(6)
        assert silent.ended_gracefully is False  # nothing in 5 s: dropped
        assert talking.ended_gracefully
        assert unread.ended_gracefully
        assert talking.ping_sent_at is None  # answered
        await trio.sleep(10)
        assert talking.pings == 2  # pinged again an interval later
        nursery.cancel_scope.cancel()


class SettledApp(ScriptedApp):
    """Records when it is settled, and answers each time with the next actions of ``answers``."""

    def __init__(self) -> None:
        super().__init__()
        self.settled: list[float] = []
        self.answers: list[list[HubAction]] = []

    def settle(self) -> Iterable[HubAction]:
        self.settled.append(trio.current_time())
        return self.answers.pop(0) if self.answers else []


@pytest.mark.trio
async def test_the_app_is_settled_when_the_soonest_wake_says_and_again_as_it_asks(autojump_clock: MockClock) -> None:
    hub, _ = make_hub()
    app = hub.app = SettledApp()
    app.answers = [[Wake(0.0)], [Wake(3.0)], []]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.settling)
        await trio.sleep(1)
        start = trio.current_time()
        hub.perform([Wake(10.0)])
        hub.perform([Wake(4.0)])  # sooner: this one counts (a later one is asked again by the settle it waits for)
        await trio.sleep(30)
        assert [when - start for when in app.settled] == [4.0, 4.0, 7.0]
        hub.perform([Wake(2.0)])  # (once idle, a new one still wakes it)
        await trio.sleep(5)
        assert len(app.settled) == 4
        nursery.cancel_scope.cancel()
