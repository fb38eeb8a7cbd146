"""Fixtures every folder of tests may use: the browser (one for the whole session).

Playwright is imported only when a test asks for the browser: ``tests/core`` runs with nothing but pytest and
hypothesis installed (``tests/core/test_purity.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, driven by Playwright (whose own browser download does not work here).

    One for the whole session, here for every folder that drives pages: Playwright's sync API cannot run twice at
    once in one thread.
    """
    from playwright.sync_api import sync_playwright

    from chat_page import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
