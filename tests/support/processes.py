"""``chat-server`` as a user runs it: a real process, its ports read from its log."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHAT_SERVER = Path(sys.executable).parent / "chat-server"


@dataclass
class ServerProcess:
    process: subprocess.Popen[str]
    http_port: int
    ws_port: int
    log: list[str]
    """Its stderr, line by line, as it comes (a thread reads it)."""
    reader: threading.Thread

    def whole_log(self) -> str:
        """Everything it wrote to stderr, once it has exited."""
        self.process.wait(timeout=30)
        self.reader.join(timeout=10)
        return "".join(self.log)


@contextmanager
def server_process(
    *args: str, command: list[str] | None = None, data_home: Path | None = None, **options: Any
) -> Iterator[ServerProcess]:
    """``chat-server`` in a process of its own; its default database goes under ``data_home`` (or a temp folder);
    ``--presence-grace`` 0 unless given."""
    argv = (command or [sys.executable, "-m", "transports"]) + list(args)
    with ExitStack() as stack:
        if data_home is None:
            data_home = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        env = {**os.environ, "XDG_DATA_HOME": str(data_home)}
        # A user who leaves is announced at once, as before there was a grace: the tests about the grace give
        # --presence-grace (the command line wins over the variable).
        env.setdefault("CHAT_SERVER_PRESENCE_GRACE", "0")
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, **options
        )
        yield from _follow(process)


def _follow(process: subprocess.Popen[str]) -> Iterator[ServerProcess]:
    watchdog = threading.Timer(30, _kill, args=(process,))
    watchdog.start()
    reader = threading.Thread()
    try:
        log: list[str] = []
        ports: dict[str, int] = {}
        assert process.stderr is not None
        while len(ports) < 2:
            line = process.stderr.readline()
            assert line, "server exited early:\n" + "".join(log)
            log.append(line)
            if match := re.search(r" on (ws|http)s?://[^ ]+:(\d+)/", line):
                ports[match.group(1)] = int(match.group(2))
        watchdog.cancel()  # (it guards the start; once serving, the server lives as long as its test needs it)
        # Keep reading, so that a chatty server never blocks on a full pipe, and tests can see its later lines.
        reader = threading.Thread(target=_read_rest, args=(process.stderr, log), daemon=True)
        reader.start()
        yield ServerProcess(process, ports["http"], ports["ws"], log, reader)
    finally:
        if process.poll() is None:
            _kill(process)
        process.wait()
        watchdog.cancel()
        if process.stderr is not None and not reader.is_alive():
            process.stderr.close()


def _kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL the server and its workers (a killed supervisor cannot stop them: they would live on)."""
    for child in children(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    process.kill()


def _read_rest(stream: Any, log: list[str]) -> None:
    for line in stream:
        log.append(line)
    stream.close()


def children(pid: int) -> list[int]:
    """The PIDs of a process's children (the workers of a supervisor)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(status.parent.name))
    return sorted(found)


class RestartableServer:
    """``chat-server`` on ports it keeps across restarts (its rooms in whatever file ``args`` names)."""

    def __init__(self, host: str, *args: str) -> None:
        with socket.socket() as page, socket.socket() as chat:
            page.bind((host, 0))
            chat.bind((host, 0))
            self.http_port: int = page.getsockname()[1]
            self.ws_port: int = chat.getsockname()[1]
        self.args = ("--host", host, "--http-port", str(self.http_port), "--ws-port", str(self.ws_port), *args)
        self.host = host
        self.process: ServerProcess | None = None
        self._running = ExitStack()

    @property
    def url(self) -> str:
        """The page."""
        return f"http://{self.host}:{self.http_port}/"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.ws_port}/"

    def start(self) -> None:
        self.process = self._running.enter_context(server_process(*self.args))

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it: it drains (its clients told to reconnect, 1012) and exits 0."""
        assert self.process is not None
        self.process.process.send_signal(signal.SIGTERM)
        assert self.process.process.wait(timeout=10) == 0, self.process.whole_log()
        self.close()

    def close(self) -> None:
        """Stop it (killed, if still running)."""
        self._running.close()
        self.process = None
