"""Debian's nginx for tests: run in a folder of its own with a configuration the test writes, stopped by its PID."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

NGINX = "/usr/sbin/nginx"
STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


@contextmanager
def nginx(folder: Path, body: str, listening: list[tuple[str, int]]) -> Iterator[subprocess.Popen[bytes]]:
    """nginx with ``body`` (http/stream blocks) as its configuration, once it accepts on every address given."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "nginx.conf"
    config.write_text(
        f"load_module {STREAM_MODULE};\n"
        f"daemon off;\nmaster_process off;\npid {folder}/nginx.pid;\nerror_log {folder}/error.log info;\n"
        f"events {{ worker_connections 1024; }}\n{body}\n"
    )
    process = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(config)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        for address in listening:
            while True:
                try:
                    socket.create_connection(address, timeout=1).close()
                    break
                except OSError:
                    assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
                    assert time.monotonic() < deadline, f"nginx does not accept on {address}"
                    time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
