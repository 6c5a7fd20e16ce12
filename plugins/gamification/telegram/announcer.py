"""Posts unlocked achievements and reached levels to their chat, coalesced per chat.

Announcements wait `delay` seconds so that a burst of them becomes one message, which
keeps a busy chat far from Telegram's flood limits.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import timedelta

from plugins.gamification.bus.events import Event
from plugins.gamification.domain.clock import Clock, SystemClock
from plugins.gamification.domain.config import ProgressSection

log = logging.getLogger(__name__)

Send = Callable[[int, str], Awaitable[object]]
Namer = Callable[[int], Awaitable[str]]
MAX_LINES = 20
# Older news is not posted: a level reached months ago in a chat's imported history
# (`import-history` writes such events with their original times) would only flood the chat.
STALE_AFTER = timedelta(hours=1)


class Announcer:
    def __init__(
        self,
        settings: ProgressSection,
        send: Send,
        name_of: Namer,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock or SystemClock()
        self._send = send
        self._name_of = name_of
        self._pending: defaultdict[int, list[str]] = defaultdict(list)
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.stale = 0

    def patterns(self) -> list[str]:
        wanted = []
        if self.settings.announce_achievements:
            wanted.append("achievement.unlocked")
        if self.settings.announce_levels:
            wanted.append("level.reached")
        return wanted

    async def on_event(self, event: Event) -> None:
        if event.chat_id is None or event.user_id is None:
            return
        if self._clock.now() - event.occurred_at > STALE_AFTER:
            self.stale += 1
            return
        name = html.escape(await self._name_of(event.user_id), quote=False)
        payload = event.payload
        if event.type == "achievement.unlocked":
            title = html.escape(str(payload.get("title", payload.get("achievement"))))
            reward = payload.get("reward")
            bonus = f" (+{reward})" if isinstance(reward, int) and reward > 0 else ""
            line = f"🏆 {name} unlocked <b>{title}</b>{bonus}"
        elif event.type == "level.reached":
            line = f"⬆️ {name} reached level <b>{payload.get('level')}</b>"
        else:
            return
        self._pending[event.chat_id].append(line)
        if event.chat_id not in self._timers:
            loop = asyncio.get_running_loop()
            self._timers[event.chat_id] = loop.call_later(
                self.settings.announce_delay_seconds, self._spawn, event.chat_id
            )

    def _spawn(self, chat_id: int) -> None:
        task = asyncio.get_running_loop().create_task(self._post(chat_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, chat_id: int) -> None:
        timer = self._timers.pop(chat_id, None)
        if timer is not None:
            timer.cancel()
        lines = self._pending.pop(chat_id, [])
        if not lines:
            return
        if len(lines) > MAX_LINES:
            lines = [*lines[:MAX_LINES], f"… and {len(lines) - MAX_LINES} more"]
        try:
            await self._send(chat_id, "\n".join(lines))
            self.sent += 1
        except Exception:
            # An announcement is a courtesy: the points are committed whatever happens here.
            log.exception("could not announce to chat %s", chat_id)

    async def flush(self) -> None:
        """Post everything pending now (on shutdown, and in the demo between steps)."""
        for chat_id in list(self._pending):
            await self._post(chat_id)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.flush()
