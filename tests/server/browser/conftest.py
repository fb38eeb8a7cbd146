"""Fixtures of the browser tests: a folder for screenshots (the browser itself is in ``tests/server/conftest.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from live import ROOT

ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
