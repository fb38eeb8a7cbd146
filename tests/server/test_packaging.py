"""``pip install .`` ships both packages, the page and the console script."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from live import ROOT


def test_the_wheel_holds_both_packages_the_page_and_the_console_script(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
        assert "chat-server = transports.cli:main" in scripts
        assert "chat-server-backup = transports.storage.backup:main" in scripts
    for name in ["chatcore/core.py", "chatcore/py.typed", "transports/cli.py", "transports/__main__.py",
                 "transports/web/index.html", "transports/web/main.js", "transports/web/style.css",
                 "transports/web/vendor/bulma.min.css"]:
        assert name in names

    # Installed, the package finds the page inside itself, not in a source checkout.
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
                   check=True)
    code = "from transports.config import bundled_web_dir; print(bundled_web_dir())"
    found = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(site)},
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(found) == site / "transports" / "web"
    assert (Path(found) / "index.html").is_file()
