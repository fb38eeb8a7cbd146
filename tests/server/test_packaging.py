"""``pip install .`` ships both packages, the page and the console script."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from live import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, as ``pip wheel .`` builds it."""
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(folder), str(ROOT)],
        check=True,
    )
    (built,) = folder.glob("*.whl")
    return built


def installed(wheel: Path, folder: Path) -> Path:
    """``wheel`` installed into ``folder`` (no dependencies): a site to put on PYTHONPATH."""
    site = folder / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
                   check=True)
    return site


def test_the_wheel_holds_the_packages_the_page_and_the_console_scripts(wheel: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
        assert "chat-server = transports.cli:main" in scripts
        assert "chat-server-backup = transports.storage.backup:main" in scripts
        assert "chat-client = chatclient.cli:main" in scripts
    for name in ["chatcore/core.py", "chatcore/py.typed", "chatclient/client.py", "chatclient/py.typed",
                 "transports/cli.py", "transports/__main__.py",
                 "transports/web/index.html", "transports/web/main.js", "transports/web/style.css",
                 "transports/web/vendor/bulma.min.css"]:
        assert name in names

    # Installed, the package finds the page inside itself, not in a source checkout.
    site = installed(wheel, tmp_path)
    code = "from transports.config import bundled_web_dir; print(bundled_web_dir())"
    found = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(found) == site / "transports" / "web"
    assert (Path(found) / "index.html").is_file()


def test_the_wheels_metadata_is_complete_and_its_version_is_the_servers(wheel: Path, tmp_path: Path) -> None:
    """A licence file, a description, classifiers; ``chat-server --version`` says the version pip sees."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    fields = [line.split(": ", 1) for line in metadata.split("\n\n", 1)[0].splitlines() if ": " in line]
    assert ["License-Expression", "MIT"] in fields
    assert ["License-File", "LICENSE"] in fields
    assert any(key == "Summary" and len(value) > 40 for key, value in fields)
    assert len([value for key, value in fields if key == "Classifier"]) >= 5
    version = next(value for key, value in fields if key == "Version")
    site = installed(wheel, tmp_path)
    said = subprocess.run([sys.executable, "-m", "transports", "--version"], cwd=tmp_path,
                          env={"PYTHONPATH": str(site)}, capture_output=True, text=True, check=True).stdout
    assert said.strip() == f"chat-server {version}"


TEST_TOOLS = {"pytest", "pytest-trio", "mypy", "ruff", "playwright", "hypothesis", "websockets", "trustme", "aiohttp",
              "uvicorn", "starlette", "picows", "kosoku", "uvloop", "mkdocs", "mkdocs-material"}


def dependencies(requirements: list[str]) -> set[str]:
    """Every distribution these requirements bring in, as pip resolves them here (markers evaluated, extras
    followed), read from the installed distributions' metadata: no network needed."""
    found: set[str] = set()
    todo = [(Requirement(text), "") for text in requirements]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        found.add(name)
        for text in importlib.metadata.requires(name) or []:
            todo.extend((Requirement(text), wanted) for wanted in ["", *requirement.extras])
    return found


def test_the_run_command_installs_only_what_the_server_needs(tmp_path: Path) -> None:
    """``scripts/run.sh`` installs the server's lock, then the project without extras, and that brings in no test
    tool (docs/getting-started.md: "The two commands"); the test command alone installs the test lock. Run on a
    copy of the scripts whose venv records what pip is asked. (test_locks.py checks what the locks hold.)"""
    for folder in ["scripts", "requirements"]:
        shutil.copytree(ROOT / folder, tmp_path / folder)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    record = tmp_path / "record"
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    for stub in ["python", "chat-server"]:
        (venv_bin / stub).write_text(f'#!/bin/sh\necho "{stub} $*" >> "{record}"\n')
        (venv_bin / stub).chmod(0o755)

    def run(*command: str) -> list[str]:
        record.write_text("")
        subprocess.run(command, check=True, cwd=tmp_path, timeout=60, env={**os.environ, "LOCK": ""})
        return record.read_text().splitlines()

    quiet = "python -m pip install --quiet --disable-pip-version-check"
    # Only what the lock pins, checked against its hashes; then the project alone, built without fetching anything.
    editable = f"{quiet} --no-deps --no-build-isolation -e {tmp_path}"
    server_lock = f"{quiet} --require-hashes -r {tmp_path}/requirements/server.txt"
    assert run(str(tmp_path / "scripts" / "run.sh"), "--version") == [server_lock, editable, "chat-server --version"]
    assert run(str(tmp_path / "scripts" / "run.sh")) == ["chat-server "]  # installed once
    setup = f"LOCK=test source {tmp_path / 'scripts' / 'setup-env.sh'}"  # what test.sh does first
    test_lock = f"{quiet} --require-hashes -r {tmp_path}/requirements/test.txt"
    assert run("bash", "-c", setup) == [test_lock, editable]
    assert run(str(tmp_path / "scripts" / "run.sh")) == ["chat-server "]  # the test venv serves the server too
    assert run("bash", "-c", setup) == []
    # A refreshed lock is installed again.
    lock = tmp_path / "requirements" / "test.txt"
    lock.write_text(lock.read_text() + "\n")
    assert run("bash", "-c", setup) == [test_lock, editable]

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    server = dependencies(project["dependencies"])
    assert {"trio", "trio-websocket", "wsproto", "redis", "hiredis"} <= server
    assert not server & TEST_TOOLS
    assert {"pytest", "mypy", "playwright"} <= dependencies(project["optional-dependencies"]["test"])


def test_the_commands_refuse_a_python_the_locks_are_not_for(tmp_path: Path) -> None:
    """The locks name wheels for CPython 3.11: under another Python, run.sh says so in one line instead of failing
    somewhere in pip."""
    other = tmp_path / "python3"
    other.write_text("#!/bin/sh\nexec /bin/false\n")  # (a Python that is not 3.11, as far as the check can tell)
    other.chmod(0o755)
    result = subprocess.run(["bash", str(ROOT / "scripts" / "run.sh"), "--version"], capture_output=True, text=True,
                            env={**os.environ, "PYTHON": str(other)}, timeout=30, check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "is not Python 3.11" in result.stderr
    assert "PYTHON=python3.11" in result.stderr
