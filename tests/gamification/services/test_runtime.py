"""The services built once: frozen, one job each, sharing one gate, stats and retry."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plugins.gamification import PointsEngine
from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.services.people import Person
from plugins.gamification.services.runtime import Services, build_services
from plugins.gamification.telegram.jobs import integrity_job

SERVICES = Path(__file__).resolve().parents[3] / "plugins" / "gamification" / "services"


@pytest.fixture
async def services(tmp_path: Path) -> AsyncIterator[Services]:
    engine = await PointsEngine.open(tmp_path / "ledger.sqlite3")
    built = build_services(engine, GamificationConfig(), admin_ids=frozenset({9}))
    try:
        yield built
    finally:
        await built.close()


async def test_the_services_are_frozen_once_built(services: Services) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        services.people = services.people  # type: ignore[misc]
    assert services.admin_ids == frozenset({9})


async def test_the_services_share_one_gate_stats_and_day(services: Services) -> None:
    assert services.scoring.gate is services.gate is services.engagement.gate
    assert services.scoring.stats is services.stats is services.thanks.stats
    assert services.scoring.engagement is services.engagement is services.thanks.engagement
    assert services.scoring.moderation is services.moderation is services.thanks.moderation
    assert services.scoring.today is services.today is services.engagement.today


async def test_a_freeze_is_seen_by_the_gate_that_refuses_it(services: Services) -> None:
    assert await services.moderation.freeze(-1, 5, 9, "spam", audit=True)
    assert (-1, 5) in services.gate.frozen
    assert not await services.moderation.freeze(-1, 5, 9, "again")
    assert await services.moderation.unfreeze(-1, 5, 9)
    assert not services.moderation.is_frozen(-1, 5)


async def test_people_are_named_from_memory_then_from_the_ledger(services: Services) -> None:
    services.people.remember(Person(7, "ann", "Ann"))
    assert await services.people.name_of(7) == "Ann"
    assert await services.people.find_username("@ANN") == Person(7, "ann", "Ann")
    assert await services.people.name_of(8) == "user 8"


async def test_the_integrity_job_records_its_report_through_the_holder(
    services: Services,
) -> None:
    assert services.reports.latest is None
    sent: list[str] = []

    async def notify(chat_id: int, text: str) -> None:
        sent.append(text)

    report = await integrity_job(services, notify, None)
    assert report is not None
    assert report.ok
    assert services.reports.latest is report


def test_no_service_module_imports_the_aggregate_but_the_runtime() -> None:
    """Collaborators come in through constructors: only runtime.py wires them together
    (figures.py reads the whole aggregate for /gstats and the collector; nothing builds it)."""
    importers = []
    for path in sorted(SERVICES.glob("*.py")):
        if path.name in ("runtime.py", "figures.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == (
                "plugins.gamification.services.runtime"
            ):
                importers.append(path.name)
    assert importers == []
