"""The core stays sans-IO: no event loop, sockets, clock or randomness of its own."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import chatcore

FORBIDDEN = {
    "trio", "anyio", "asyncio", "wsproto", "trio_websocket", "socket", "selectors",
    "time", "random", "secrets", "threading", "os", "transports",
}


def imported_modules(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_core_module_imports_io_loops_clocks_or_randomness() -> None:
    package = Path(chatcore.__file__).parent
    files = sorted(package.glob("*.py"))
    assert len(files) >= 4
    for file in files:
        assert not imported_modules(file.read_text()) & FORBIDDEN, file.name


def test_the_scan_would_catch_a_forbidden_import() -> None:
    assert imported_modules("import time\nfrom trio import run\n") & FORBIDDEN == {"time", "trio"}


def test_importing_the_core_loads_no_networking_or_event_loop() -> None:
    code = "import sys, chatcore; print(' '.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = set(result.stdout.split())
    assert "chatcore" in loaded
    assert not loaded & {"trio", "anyio", "asyncio", "wsproto", "trio_websocket", "socket", "secrets", "random"}
