"""Fixtures of the reliability suite: the offline bot, and figures shown in every run."""

from __future__ import annotations

from collections.abc import Callable

import pytest

# The offline-bot fixtures live with the plugin's tests; re-exported so these tests share them.
from tests.gamification.conftest import harness, make_harness

__all__ = ["harness", "make_harness"]

Show = Callable[[str], None]


@pytest.fixture
def show(capsys: pytest.CaptureFixture[str]) -> Show:
    """Print one figures line past pytest's capture, so the default CI output carries it."""

    def emit(line: str) -> None:
        with capsys.disabled():
            print(f"\n[reliability] {line}", flush=True)

    return emit
