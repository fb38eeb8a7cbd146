"""The core stays sans-IO: no event loop, sockets, clock or randomness of its own."""

from __future__ import annotations

import ast
import os
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
    files = sorted(package.rglob("*.py"))
    assert len(files) >= 10
    assert any(file.parent != package for file in files), "the scan looks into sub-packages"
    for file in files:
        assert not imported_modules(file.read_text()) & FORBIDDEN, file.relative_to(package)


def test_the_scan_would_catch_a_forbidden_import() -> None:
    assert imported_modules("import time\nfrom trio import run\n") & FORBIDDEN == {"time", "trio"}


def test_importing_the_core_loads_no_networking_or_event_loop() -> None:
    code = "import sys, chatcore; print(' '.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = set(result.stdout.split())
    assert "chatcore" in loaded
    assert not loaded & {"trio", "anyio", "asyncio", "wsproto", "trio_websocket", "socket", "secrets", "random"}


BLOCKED_IN_CORE_TESTS = (
    "trio", "anyio", "asyncio", "wsproto", "trio_websocket", "h11", "websockets", "playwright", "pytest_trio",
    "sniffio", "transports",
)

RUN_WITHOUT = """
import importlib.abc, sys
import pytest

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed here")
        return None

sys.meta_path.insert(0, Refuse())
ARGS = ["-q", "-p", "no:cacheprovider", "-p", "hypothesis.extra.pytestplugin"]
sys.exit(pytest.main([*ARGS, "-k", "not run_with_only_pytest_and_hypothesis", FOLDER]))
"""


def test_the_core_tests_run_with_only_pytest_and_hypothesis() -> None:
    """Run this folder's tests with every other package made impossible to import, plugins included."""
    folder = Path(__file__).parent
    code = f"BLOCKED = {BLOCKED_IN_CORE_TESTS!r}\nFOLDER = {str(folder)!r}\n" + RUN_WITHOUT
    # (trio registers a hypothesis plugin; an environment without trio has none)
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "HYPOTHESIS_NO_PLUGINS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True, text=True, env=env, cwd=folder.parents[1], timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert " passed" in result.stdout
