"""Posts unlocked achievements and reached levels to their chat, coalesced per chat.

Announcements wait `delay` seconds so that a burst of them becomes one message, which
keeps a busy chat far from Telegram's flood limits. They are phrased when posted, in the
chat's language (its admins' choice, else the bot's).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta

from plugins.gamification.bus.events import Event
from plugins.gamification.domain.clock import Clock, SystemClock
from plugins.gamification.domain.config import ProgressSection
from plugins.gamification.telegram.i18n import Speaker, _, num
from plugins.gamification.telegram.phrasing import esc

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
        speaker: Speaker | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock or SystemClock()
        self._send = send
        self._name_of = name_of
        self._speaker = speaker
        # Per chat: (event type, user, payload), phrased when posted.
        self._pending: defaultdict[int, list[tuple[str, int, dict[str, object]]]] = defaultdict(
            list
        )
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
        if event.type not in ("achievement.unlocked", "level.reached"):
            return
        self._pending[event.chat_id].append((event.type, event.user_id, dict(event.payload)))
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
        pending = self._pending.pop(chat_id, [])
        if not pending:
            return
        try:
            speaker = self._speaker
            speaking: AbstractContextManager[None]
            if speaker is None:
                speaking = nullcontext()
            else:
                speaking = speaker.speaking(await speaker.language_of_chat(chat_id))
            with speaking:
                lines = [await self._line(*item) for item in pending[:MAX_LINES]]
                if len(pending) > MAX_LINES:
                    lines.append(
                        _("… and {count} more").format(count=num(len(pending) - MAX_LINES))
                    )
            await self._send(chat_id, "\n".join(lines))
            self.sent += 1
        except Exception:
            # An announcement is a courtesy: the points are committed whatever happens here.
            log.exception("could not announce to chat %s", chat_id)

    async def _line(self, kind: str, user_id: int, payload: dict[str, object]) -> str:
        name = esc(await self._name_of(user_id))
        if kind == "achievement.unlocked":
            title = esc(str(payload.get("title", payload.get("achievement"))))
            reward = payload.get("reward")
            if isinstance(reward, int) and reward > 0:
                return _("🏆 {name} unlocked <b>{title}</b> ({reward})").format(
                    name=name, title=title, reward=f"+{num(reward)}"
                )
            return _("🏆 {name} unlocked <b>{title}</b>").format(name=name, title=title)
        level = payload.get("level")
        return _("⬆️ {name} reached level <b>{level}</b>").format(
            name=name, level=num(level) if isinstance(level, int) else esc(str(level))
        )

    async def flush(self) -> None:
        """Post everything pending now (on shutdown, and in the demo between steps)."""
        for chat_id in list(self._pending):
            await self._post(chat_id)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.flush()
