"""What the chat pages show, read through the same engine calls as /top and /points, and
cached per ledger version so a page read again costs one query."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from typing import Any

from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.domain.models import Period
from plugins.gamification.engine import PointsEngine
from plugins.gamification.services.people import People

BOARD_SIZE = 100  # the engine's most; /top shows the first 10 of the same ranking
CHART_DAYS = 90
AUDIT_SIZE = 50
CACHE_SIZE = 512


@dataclass(frozen=True, slots=True)
class BoardLine:
    rank: int
    user_id: int
    name: str
    points: int


@dataclass(frozen=True, slots=True)
class Board:
    chat_id: int
    period: Period
    lines: tuple[BoardLine, ...]


@dataclass(frozen=True, slots=True)
class Unlocked:
    title: str
    description: str
    at: str


@dataclass(frozen=True, slots=True)
class Profile:
    chat_id: int
    user_id: int
    name: str
    balance: int
    earned: int
    rank: int | None
    level: int
    level_at: int
    next_level_at: int
    streak: int
    best_streak: int
    achievements: tuple[Unlocked, ...]
    series: tuple[tuple[date, int], ...]


@dataclass(frozen=True, slots=True)
class AuditLine:
    at: str
    actor: str
    action: str
    target: str
    detail: str


class PageData:
    """The pages' data. Cached entries are keyed by the ledger's newest transaction id (one
    indexed read per request) and the window they show, so a new point shows at once."""

    def __init__(self, engine: PointsEngine, people: People, config: GamificationConfig) -> None:
        self._engine = engine
        self._people = people
        self._config = config
        self._cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    async def chat_known(self, chat_id: int) -> bool:
        return await self._engine.store.chat_known(chat_id)

    async def board(self, chat_id: int, period: Period) -> Board:
        engine = self._engine
        key = ("board", chat_id, period, engine.period_start(period), await self._version())
        cached = self._get(key)
        if isinstance(cached, Board):
            return cached
        ranking = await engine.leaderboard(chat_id, period, BOARD_SIZE)
        lines = tuple(
            [
                BoardLine(s.rank, s.user_id, await self._people.name_of(s.user_id), s.points)
                for s in ranking.lines
            ]
        )
        board = Board(chat_id, period, lines)
        self._put(key, board)
        return board

    async def profile(self, chat_id: int, user_id: int) -> Profile:
        engine = self._engine
        # The chart's 90 days move on at the policy's midnight, with no new transaction.
        today = engine.period_start(Period.DAY)
        key = ("profile", chat_id, user_id, today, await self._version())
        cached = self._get(key)
        if isinstance(cached, Profile):
            return cached
        account = await engine.balance(chat_id, user_id)
        standing = await engine.standing(chat_id, user_id, Period.ALL)
        progress = await engine.progress(chat_id, user_id)
        titles = {spec.id: spec for spec in self._config.progress.achievements}
        unlocked = sorted(progress.unlocked.items(), key=lambda item: item[1], reverse=True)
        profile = Profile(
            chat_id=chat_id,
            user_id=user_id,
            name=await self._people.name_of(user_id),
            balance=account.balance,
            earned=account.earned,
            rank=standing.rank if standing else None,
            level=progress.level,
            level_at=progress.level_at,
            next_level_at=progress.next_level_at,
            streak=progress.streak,
            best_streak=progress.best_streak,
            achievements=tuple(
                Unlocked(titles[a].title, titles[a].description, at)
                if a in titles
                else Unlocked(a, "", at)
                for a, at in unlocked
            ),
            series=tuple(await engine.daily_points(chat_id, user_id, CHART_DAYS)),
        )
        self._put(key, profile)
        return profile

    async def audit(self, chat_id: int) -> list[AuditLine]:
        """The chat's latest admin actions, newest first (not cached: admins only, and a
        freeze changes it without a transaction)."""
        rows = await self._engine.store.audit_trail(chat_id, AUDIT_SIZE)
        lines = []
        for row in rows:
            actor = await self._people.name_of(row.actor_id) if row.actor_id else "operator"
            target = await self._people.name_of(row.target_id) if row.target_id else ""
            lines.append(AuditLine(row.created_at, actor, row.action, target, row.detail))
        return lines

    async def _version(self) -> int:
        return await self._engine.store.last_transaction_id()

    def _get(self, key: tuple[Any, ...]) -> object:
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
        return found

    def _put(self, key: tuple[Any, ...], value: object) -> None:
        self._cache[key] = value
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
