"""Fixtures of the pure core's tests: they need nothing but pytest and hypothesis."""

from __future__ import annotations

import pytest

from chatcore import ChatCore
from corekit import FakeClock, keys


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def core(clock: FakeClock) -> ChatCore:
    return ChatCore(clock=clock, new_join_key=keys().__next__)
