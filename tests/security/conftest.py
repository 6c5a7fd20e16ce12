"""Fixtures for the security tests: the offline bot harness the gamification tests use."""

from __future__ import annotations

from tests.gamification.conftest import make_harness

__all__ = ["make_harness"]
