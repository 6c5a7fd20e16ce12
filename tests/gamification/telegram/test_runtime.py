"""The runtime: built once by setup, frozen; the services carry no bus side of their own."""

from __future__ import annotations

import dataclasses

import pytest

from plugins.gamification.telegram.runtime import Runtime
from tests.gamification.conftest import MakeHarness


async def test_setup_builds_one_frozen_runtime_beside_the_services(
    make_harness: MakeHarness,
) -> None:
    h = await make_harness()
    runtime = h.runtime
    assert runtime.services is h.services
    assert runtime.bus is not None
    assert runtime.relay is not None
    assert runtime.inbound is not None
    assert runtime.announcer is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        runtime.relay = None  # type: ignore[misc]
    for name in ("bus", "relay", "inbound", "announcer"):
        assert not hasattr(h.services, name), f"services.{name} would be a service locator"


async def test_figures_without_a_bus_have_no_relay_line(make_harness: MakeHarness) -> None:
    h = await make_harness()
    assert Runtime(h.services).figures().relay is None
    assert h.runtime.figures().relay is not None
