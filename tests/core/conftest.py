"""Fixtures of the pure core's tests: they need nothing but pytest and hypothesis."""

from __future__ import annotations

import pytest

from chatcore import ChatCore
from corekit import FakeClock, LocalChat, keys


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def core(clock: FakeClock) -> ChatCore:
    return LocalChat(clock=clock, new_join_key=keys().__next__)
