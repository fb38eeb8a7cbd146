"""The event loop's watchdog: a loop held by a blocking call is logged once, with the stack of what held it,
and counted in ``/metrics``, on every event loop the server runs on; its thread ends with the server."""

from __future__ import annotations

import re
import signal
import sys
import threading

import pytest

from live import live_server
from probes import scrape, value, wait_for
from processes import server_process
from transports.config import ServerConfig
from transports.ops.watchdog import THRESHOLD

HOLD = 2.5 * THRESHOLD
"""How long the loop is held: over twice the threshold, so that a warning per second would show twice."""

HOLDING_SERVER = f"""
import signal, sys, time
from transports.cli import main

def hold_the_loop(signum, frame):
    time.sleep({HOLD})  # a blocking call on the event loop's thread, as a bug would make

signal.signal(signal.SIGUSR1, hold_the_loop)
main(sys.argv[1:])
"""
"""``chat-server`` itself, whose event loop's thread blocks in `hold_the_loop` on SIGUSR1 (Python runs signal
handlers in the main thread: the loop's)."""


@pytest.mark.parametrize(("transport", "loop"), [("trio-websocket", "trio"), ("wsproto", "asyncio"),
                                                 ("wsproto", "uvloop")])
def test_a_stalled_event_loop_is_logged_once_with_what_held_it_and_counted(transport: str, loop: str) -> None:
    args = ("--transport", transport, "--event-loop", loop, "--http-port", "0", "--ws-port", "0", "--db", ":memory:")
    with server_process(*args, command=[sys.executable, "-c", HOLDING_SERVER]) as server:
        assert value(scrape(server.http_port)[1], "chat_event_loop_stalls_total") == 0
        server.process.send_signal(signal.SIGUSR1)
        wait_for(lambda: any("the event loop runs again" in line for line in server.log), timeout=HOLD + 10)
        assert value(scrape(server.http_port)[1], "chat_event_loop_stalls_total") == 1
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=15) == 0
        lines = server.whole_log().splitlines()
    warnings = [index for index, line in enumerate(lines) if " WARNING " in line]
    assert len(warnings) == 1, lines
    assert "the event loop has not run for" in lines[warnings[0]]
    stack = []
    for line in lines[warnings[0] + 1:]:
        if not line.startswith("  "):
            break
        stack.append(line)
    assert stack[0].startswith('  File "<string>"'), stack  # from the top: the script's call of main
    assert any(line.endswith(", in main") for line in stack), stack
    assert re.fullmatch(r'  File "<string>", line \d+, in hold_the_loop', stack[-1]), stack  # what held it


def test_the_watchdog_thread_runs_with_the_server_and_ends_with_it() -> None:
    def watchdogs() -> set[threading.Thread]:
        return {thread for thread in threading.enumerate() if thread.name == "event-loop-watchdog"}

    before = watchdogs()  # (other tests' servers may be running in this process)
    with live_server(ServerConfig(http_port=0, ws_port=0)):
        [thread] = watchdogs() - before
        assert thread.daemon  # never what keeps the process alive
    assert not thread.is_alive()  # over by the time `run` returns
