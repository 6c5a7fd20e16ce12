"""Long polling that confirms an update to Telegram only after it was handled.

aiogram's own polling hands each update to a task and asks for the next batch at once; the
next getUpdates carries the new offset, which tells Telegram the earlier updates arrived,
so a process killed while their handlers still run loses them for good. Here each batch
is handled concurrently, and the next getUpdates (the confirmation) is sent only when all
of the batch's handlers have returned. A crash then means the unconfirmed batch comes
again, and idempotency keys make a second delivery harmless.

A handler stuck far longer than any award takes (a reply held back by a flood wait, a
locked database) must not stall every other chat: after `confirm_after` seconds the batch
is confirmed anyway and what still runs finishes in the background (and is waited for on
stop).

A handler may also ask for its update again: an exception with a true `retry_update`
(see bot.errors.wants_redelivery), raised when a plugin's storage stayed locked or full
for longer than it retries. The Poller then confirms the batch only up to that update
(the next offset is its id), pauses with backoff and fetches again, so Telegram delivers
it again, and also after a crash. The updates after it in the same batch come again with
it; those already handled (or still running) are skipped on that delivery, so nothing is
handled twice and no reply is sent twice. A handler that asks for redelivery after its
batch was confirmed (it ran past `confirm_after`) cannot be redelivered by Telegram: the
Poller feeds that update again itself, with the same backoff, until it is handled or the
Poller stops (then it is logged as not handled).

Polling is single-instance: Telegram answers getUpdates with 409 Conflict while another
process polls with the same token, or while a webhook is set. The Poller then says which in
one sentence, stops without fetching or handling anything more, lets what is in hand
finish, and leaves `conflict` set (`run` exits 3).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramConflictError
from aiogram.methods import GetUpdates
from aiogram.types import Update
from aiogram.utils.backoff import Backoff, BackoffConfig

from bot.errors import wants_redelivery

log = logging.getLogger(__name__)

BACKOFF = BackoffConfig(min_delay=1.0, max_delay=5.0, factor=1.3, jitter=0.1)


class Poller:
    """Polls one bot for one dispatcher until `stop()` (or SIGINT/SIGTERM when asked)."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        bot: Bot,
        *,
        timeout: int = 10,
        allowed_updates: Sequence[str] | None = None,
        backoff: BackoffConfig = BACKOFF,
        confirm_after: float = 10.0,
        drain_timeout: float = 30.0,
    ) -> None:
        self.dispatcher = dispatcher
        self.bot = bot
        self.timeout = timeout
        self.allowed_updates = (
            list(allowed_updates)
            if allowed_updates is not None
            else dispatcher.resolve_used_update_types()
        )
        self.confirm_after = confirm_after
        self.drain_timeout = drain_timeout
        self._backoff = Backoff(config=backoff)
        # Pauses before fetching updates that asked to be delivered again.
        self._held_backoff = Backoff(config=backoff)
        self._stop = asyncio.Event()
        # Handlers of confirmed batches that overran confirm_after.
        self._late: set[asyncio.Future[bool]] = set()
        # The first update not yet handled; Telegram forgets those before it.
        self.offset: int | None = None
        # Ids at or past the offset handled (or still running) already: skipped when
        # Telegram delivers them again behind an update held back.
        self._done_ids: set[int] = set()
        # Confirmed updates whose late handler asked for redelivery: fed again here.
        self._again: list[Update] = []
        self.batches = 0
        self.handled = 0
        # Times a handler asked for its update again.
        self.redeliveries = 0
        self._held = False
        self._holding = False
        # Why Telegram refused to let this process poll (409 Conflict); empty: it did not.
        self.conflict = ""

    def stop(self) -> None:
        self._stop.set()

    async def run(self, *, handle_signals: bool = False, **data: Any) -> None:
        """Poll, handle each batch, confirm it; on stop, confirm the batch in hand and return.

        `data` reaches the handlers beside the dispatcher's workflow_data, as with
        aiogram's start_polling.
        """
        loop = asyncio.get_running_loop()
        if handle_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                with suppress(NotImplementedError):  # no signal handlers on Windows' loop
                    loop.add_signal_handler(signum, self.stop)
        data = {"dispatcher": self.dispatcher, "bots": (self.bot,), **data}
        hooks = {**self.dispatcher.workflow_data, **data}
        await self.dispatcher.emit_startup(bot=self.bot, **hooks)
        log.info("Polling for updates (confirmed once handled)")
        try:
            while not self._stop.is_set():
                updates = await self._next_batch()
                if updates is None:
                    break
                if updates or self._again:
                    await self._handle(updates, data)
                    await self._pause_if_held()
            if self._late:
                await asyncio.wait(self._late, timeout=self.drain_timeout)
            if self._again:
                log.error(
                    "%d confirmed updates asked to be handled again but the bot stopped"
                    " first; they are not handled (update ids %s)",
                    len(self._again), ", ".join(str(u.update_id) for u in self._again),
                )  # fmt: skip
            if not self.conflict:  # a confirmation would only meet the conflict again
                await self._confirm()
        finally:
            if handle_signals:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    with suppress(NotImplementedError):  # as when they were added
                        loop.remove_signal_handler(signum)
            await self.dispatcher.emit_shutdown(bot=self.bot, **hooks)
            log.info("Polling stopped")

    async def _next_batch(self) -> list[Update] | None:
        """The next updates (maybe none), or None once stopped while waiting for them."""
        request = GetUpdates(
            offset=self.offset,
            # Updates to feed again are waiting: do not hold them for a long poll.
            timeout=0 if self._again else self.timeout,
            allowed_updates=self.allowed_updates,
        )
        fetch = asyncio.ensure_future(self.bot(request, request_timeout=self._request_timeout()))
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not fetch.done():
            fetch.cancel()
            # Waited on, not awaited: awaiting the cancelled fetch would raise a
            # CancelledError indistinguishable from one cancelling this task itself.
            await asyncio.wait({fetch})
            if not fetch.cancelled():
                fetch.exception()  # retrieved, so asyncio does not log it as forgotten
            return None
        try:
            updates = fetch.result()
        except TelegramConflictError as exc:
            self.conflict = conflict_sentence(exc)
            log.error("%s", self.conflict)
            self.stop()
            return None
        except Exception as exc:
            delay = next(self._backoff)
            log.error(
                "Could not fetch updates (%s: %s); trying again in %.1f s",
                type(exc).__name__, exc, delay,
            )  # fmt: skip
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            return []
        self._backoff.reset()
        return updates

    async def _handle(self, updates: list[Update], data: dict[str, Any]) -> None:
        """Handle a batch concurrently; only then may the next request confirm it, up to
        the first update whose handler asked for it again."""
        again, self._again = self._again, []
        fresh = [u for u in updates if u.update_id not in self._done_ids]
        tasks: dict[asyncio.Future[bool], Update] = {
            asyncio.ensure_future(self._handle_one(u, data)): u for u in again + fresh
        }
        done: set[asyncio.Future[bool]] = set()
        late: set[asyncio.Future[bool]] = set()
        if tasks:
            done, late = await asyncio.wait(tasks, timeout=self.confirm_after)
        if late:
            log.warning(
                "%d of %d updates still being handled after %.0f s; polling goes on",
                len(late), len(tasks), self.confirm_after,
            )  # fmt: skip
            self._late |= late
            for handler in late:
                handler.add_done_callback(self._late.discard)
                handler.add_done_callback(self._late_handler_done(tasks[handler]))
        fetched = {u.update_id for u in updates}
        held: list[int] = []
        for handler in done:
            if handler.result():
                self.redeliveries += 1
                update = tasks[handler]
                if update.update_id in fetched:
                    held.append(update.update_id)
                else:
                    self._again.append(update)  # confirmed long ago: only we can retry it
        if held:
            first = min(held)
            self.offset = first
            # Telegram sends everything from `first` on again: what is handled already
            # or still running must not run twice.
            self._done_ids = {i for i in self._done_ids if i > first} | {
                u.update_id
                for handler, u in tasks.items()
                if u.update_id > first
                and u.update_id in fetched
                and (handler in late or not handler.result())
            }
        elif updates:
            self.offset = updates[-1].update_id + 1
            self._done_ids.clear()
        if updates:
            self.batches += 1
            self.handled += len(fresh) - len(held)
        self._held = bool(held or self._again)

    def _late_handler_done(self, update: Update) -> Callable[[asyncio.Future[bool]], None]:
        def done(handler: asyncio.Future[bool]) -> None:
            if not handler.cancelled() and handler.result():
                self.redeliveries += 1
                self._again.append(update)

        return done

    async def _pause_if_held(self) -> None:
        """Back off before fetching updates that asked to come again; log once per hold."""
        if not self._held:
            if self._holding:
                log.info("Updates held back for redelivery are all handled now")
                self._holding = False
                self._held_backoff.reset()
            return
        delay = next(self._held_backoff)
        if not self._holding:
            # One line per hold, not per update: the plugin that asked says why.
            log.info("Updates asked to be delivered again; fetching them in %.1f s", delay)
            self._holding = True
        with suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)

    async def _handle_one(self, update: Update, data: dict[str, Any]) -> bool:
        """Feed one update; True when its handler asked for it to be delivered again."""
        try:
            await self.dispatcher.feed_update(self.bot, update, **data)
        except Exception as exc:
            if wants_redelivery(exc):
                log.debug("update %s is to be delivered again: %s", update.update_id, exc)
                return True
            # The dispatcher's error handlers did not take it. It counts as handled: the
            # same update again would fail the same way, forever.
            log.exception("update %s failed", update.update_id)
        return False

    async def _confirm(self) -> None:
        """Tell Telegram the handled batches arrived, so they are not delivered again."""
        if self.offset is None:
            return
        request = GetUpdates(offset=self.offset, timeout=0, limit=1)
        try:
            await self.bot(request, request_timeout=10)
        except Exception as exc:
            log.warning("Could not confirm the last updates (%s); they may come again", exc)

    def _request_timeout(self) -> int:
        # Longer than the long poll itself, or every quiet poll would end in a timeout.
        return int(self.bot.session.timeout + self.timeout)


def conflict_sentence(exc: TelegramConflictError) -> str:
    """What a 409 Conflict from getUpdates means for the operator, in one sentence."""
    if "webhook" in exc.message.lower():
        return (
            "Telegram refuses to let this bot poll because a webhook is set (409 Conflict):"
            " run `python -m bot webhook delete` to poll, or run the instances with"
            " `python -m bot run --webhook`; stopping."
        )
    return (
        "Another process is polling with this bot token (409 Conflict from Telegram):"
        " run one poller only, or use `python -m bot run --webhook` for several instances;"
        " stopping."
    )
