"""chatclient's connectors (trio, asyncio) against real servers on loopback, both transports: joining, sending,
news, a server restart, a removal."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

import chatclient.asyncio
import chatclient.trio
from certificates import make_certificate
from chatclient import Ended, MemberJoined, Talk
from chatclient.session import Chat, SessionEnded
from event_loops import run
from live import TEST_LIMITS, LiveServer, live_server
from transports.config import ServerConfig, Transport

TIMEOUT = 20.0


@pytest.fixture(params=[t.value for t in Transport])
def config(request: pytest.FixtureRequest, tmp_path: Path) -> ServerConfig:
    return ServerConfig(transport=Transport(request.param), http_port=0, ws_port=free_port(), limits=TEST_LIMITS,
                        shutdown_grace=2.0, database=tmp_path / "chat.db")


Connect = Callable[..., AbstractAsyncContextManager[Chat]]


@pytest.fixture(params=["trio", "asyncio"])
def loop(request: pytest.FixtureRequest) -> tuple[str, Connect]:
    """The event loop and its connector."""
    connector = chatclient.trio.connect if request.param == "trio" else chatclient.asyncio.connect
    return request.param, connector


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running(config: ServerConfig) -> Iterator[LiveServer]:
    with live_server(config) as live:
        yield live


async def talks(chat: Chat, count: int) -> list[Talk]:
    got: list[Talk] = []
    async for news in chat:
        if isinstance(news, Talk):
            got.append(news)
            if len(got) == count:
                return got
    raise AssertionError(f"the session ended after {got}")


def test_start_join_send_and_hear(config: ServerConfig, loop: tuple[str, Connect]) -> None:
    backend, connect = loop
    with running(config) as live:
        async def main() -> None:
            with anyio.fail_after(TIMEOUT):
                async with connect(live.ws_url, name="Ada") as ada:
                    assert ada.join_key is not None
                    assert ada.user_id == 1
                    async with connect(live.ws_url, ada.join_key, name="Bob") as bob:
                        assert bob.user_id == 2
                        assert bob.joined is not None
                        assert [m.name for m in bob.joined.members] == ["Ada", "Bob"]
                        sent = await bob.send("hello")
                        assert (sent.offset, sent.user_id, sent.payload, sent.name) == (1, 2, "hello", "Bob")
                        assert sent.id is not None
                        news = [n async for n in _until_talk(ada)]
                        assert MemberJoined(2, "Bob") in news
                        assert news[-1] == sent

        run(main, backend)


async def _until_talk(chat: Chat) -> AsyncIterator[object]:
    async for news in chat:
        yield news
        if isinstance(news, Talk):
            return


def test_an_unknown_room_ends_the_session_at_once(config: ServerConfig, loop: tuple[str, Connect]) -> None:
    backend, connect = loop
    with running(config) as live:
        async def main() -> None:
            with anyio.fail_after(TIMEOUT), pytest.raises(SessionEnded, match="There is no chat at this link"):
                async with connect(live.ws_url, "no-such-room"):
                    raise AssertionError("joined a room that does not exist")

        run(main, backend)


def test_every_talk_once_in_order_across_a_server_restart(config: ServerConfig, loop: tuple[str, Connect]) -> None:
    """Talks sent while the server is down are stored once it is back; each member sees each talk once."""
    backend, connect = loop
    with ExitStack() as stack:
        first = stack.enter_context(running(config))
        url = first.ws_url

        async def main() -> None:
            with anyio.fail_after(TIMEOUT * 2):
                async with connect(url, name="Ada") as ada:
                    assert ada.join_key is not None
                    await ada.send("before")
                    await anyio.to_thread.run_sync(stack.close)  # the server stops
                    async with anyio.create_task_group() as tasks:
                        for text in ("while down 1", "while down 2"):
                            tasks.start_soon(ada.send, text)
                            await anyio.sleep(0.05)
                        await anyio.sleep(0.5)
                        await anyio.to_thread.run_sync(lambda: stack.enter_context(running(config)))
                    await ada.sent()
                    after = await ada.send("after")
                    assert after.offset == 4
                    heard = await talks(ada, 4)
                    assert [t.payload for t in heard] == ["before", "while down 1", "while down 2", "after"]
                    assert [t.offset for t in heard] == [1, 2, 3, 4]
                    async with connect(url, ada.join_key, name="Bob") as bob:
                        replay = await talks(bob, 4)
                        assert [t.payload for t in replay] == [t.payload for t in heard]

        run(main, backend)


def test_a_removed_member_is_told_and_its_session_ends(config: ServerConfig, loop: tuple[str, Connect]) -> None:
    backend, connect = loop
    with running(config) as live:
        async def main() -> None:
            with anyio.fail_after(TIMEOUT):
                async with (
                    connect(live.ws_url, name="Owner") as owner,
                    connect(live.ws_url, owner.join_key, name="Guest") as guest,
                ):
                    await owner.request("remove", userId=guest.user_id, ban=True)
                    news = [n async for n in guest]
                    assert isinstance(news[-1], Ended)
                    assert news[-1].code == 4403
                    with pytest.raises(SessionEnded):
                        await guest.send("still here?")

        run(main, backend)




def test_over_tls_with_the_servers_own_certificate(config: ServerConfig, loop: tuple[str, Connect],
                                                    tmp_path: Path) -> None:
    backend, connect = loop
    certificate = make_certificate(tmp_path / "tls")
    with running(replace(config, tls=certificate.files)) as live:
        url = f"wss://127.0.0.1:{live.running.ws_port}/"

        async def main() -> None:
            with anyio.fail_after(TIMEOUT):
                async with connect(url, name="Ada", ssl_context=certificate.client_context()) as ada:
                    talk = await ada.send("over TLS")
                    assert talk.payload == "over TLS"
                    assert talk.offset == 1

        run(main, backend)


def test_history_pages_back_and_leaving_ends_the_session(config: ServerConfig, loop: tuple[str, Connect]) -> None:
    backend, connect = loop
    with running(config) as live:
        async def main() -> None:
            with anyio.fail_after(TIMEOUT):
                async with connect(live.ws_url, name="Ada") as ada:
                    for number in range(1, 6):
                        await ada.send(f"talk {number}")
                    page = await ada.history(before=4, limit=2)
                    assert [t.payload for t in page.talks] == ["talk 2", "talk 3"]
                    assert page.older
                    first = await ada.history(before=2, limit=50)
                    assert [t.offset for t in first.talks] == [1]
                    assert not first.older
                    await ada.leave()
                    with pytest.raises(SessionEnded, match="left"):
                        await ada.send("after leaving")
                    heard = [n.offset async for n in ada if isinstance(n, Talk)]  # (ends: it does not hang)
                    assert heard == [1, 2, 3, 4, 5]

        run(main, backend)
