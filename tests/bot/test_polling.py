"""Polling confirms an update to the Bot API only after its handler returned."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message
from aiogram.utils.backoff import BackoffConfig

from bot.polling import Poller
from tests.support.fake_bot_api import FakeBotAPI
from tests.support.live_bot import ALICE, message

FAST = BackoffConfig(min_delay=0.05, max_delay=0.2, factor=1.5, jitter=0.01)


class StorageBusy(Exception):
    """What a plugin raises when its storage stayed unavailable: deliver the update again."""

    retry_update = True


class Handlers:
    """A message handler that records what it saw and waits for `release` when told to."""

    def __init__(self) -> None:
        self.entered: list[int] = []
        self.finished: list[int] = []
        self.release = asyncio.Event()
        self.hold: Callable[[int], bool] = lambda _: False
        self.fail: Callable[[int], bool] = lambda _: False
        # How many more times each message asks to be delivered again.
        self.busy: Counter[int] = Counter()

    async def __call__(self, message: Message) -> None:
        self.entered.append(message.message_id)
        if self.hold(message.message_id):
            await self.release.wait()
        if self.fail(message.message_id):
            raise RuntimeError(f"handler of {message.message_id} failed")
        if self.busy[message.message_id] > 0:
            self.busy[message.message_id] -= 1
            raise StorageBusy(f"storage busy for {message.message_id}")
        self.finished.append(message.message_id)


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    server = FakeBotAPI()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(api: FakeBotAPI) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(api.url, is_local=True))
    client = Bot("123456:TEST-polling", session=session)
    yield client
    await session.close()


def poller(bot: Bot, handlers: Handlers, **kwargs: Any) -> Poller:
    dispatcher = Dispatcher()

    async def on_message(message: Message) -> None:
        await handlers(message)

    dispatcher.message.register(on_message)
    return Poller(dispatcher, bot, timeout=1, backoff=FAST, **kwargs)


async def until(condition: Callable[[], bool], what: str, limit: float = 10.0) -> None:
    """Wait for `condition`, checking every 10 ms: the fake server has nothing to wait on."""
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting: {what}"
        await asyncio.sleep(0.01)


def push(api: FakeBotAPI, *message_ids: int) -> None:
    for message_id in message_ids:
        api.push("message", message(message_id, ALICE, f"message {message_id}"))


async def test_a_batch_is_confirmed_only_after_every_handler_returned(
    api: FakeBotAPI, bot: Bot
) -> None:
    handlers = Handlers()
    handlers.hold = lambda message_id: message_id == 2
    p = poller(bot, handlers)
    push(api, 1, 2, 3)
    running = asyncio.create_task(p.run())
    await until(lambda: sorted(handlers.entered) == [1, 2, 3], "all three handlers started")
    await until(lambda: sorted(handlers.finished) == [1, 3], "the free ones finished")
    await asyncio.sleep(0.3)
    # Two are done, one is not: nothing of the batch may be confirmed yet.
    assert api.confirmed() == 0
    handlers.release.set()
    await until(lambda: api.confirmed() == 4, "the batch confirmed")
    push(api, 4)
    await until(lambda: 4 in handlers.finished, "the next update handled")
    p.stop()
    await running
    assert handlers.entered.count(2) == 1
    # The last request confirms the last batch without taking anything new.
    last = api.sent("getUpdates")[-1]
    assert (int(last["offset"]), int(last["limit"]), int(last["timeout"])) == (5, 1, 0)
    assert (p.batches, p.handled) == (2, 4)


async def test_stop_lets_the_batch_in_hand_finish_then_confirms_it(
    api: FakeBotAPI, bot: Bot
) -> None:
    handlers = Handlers()
    handlers.hold = lambda _: True
    p = poller(bot, handlers)
    push(api, 1, 2)
    running = asyncio.create_task(p.run())
    await until(lambda: len(handlers.entered) == 2, "both handlers started")
    p.stop()
    await asyncio.sleep(0.3)
    assert not running.done()
    assert api.confirmed() == 0
    handlers.release.set()
    await asyncio.wait_for(running, 10)
    assert sorted(handlers.finished) == [1, 2]
    assert api.confirmed() == 3


async def test_stop_while_waiting_for_updates_returns_at_once(api: FakeBotAPI, bot: Bot) -> None:
    p = poller(bot, Handlers())
    p.timeout = 30  # a long poll the fake server would hold for half a second at most
    running = asyncio.create_task(p.run())
    await until(lambda: bool(api.sent("getUpdates")), "the first long poll")
    p.stop()
    await asyncio.wait_for(running, 5)
    assert api.confirmed() == 0


async def test_a_failing_handler_is_logged_and_its_update_not_delivered_again(
    api: FakeBotAPI, bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    handlers = Handlers()
    handlers.fail = lambda message_id: message_id == 2
    p = poller(bot, handlers)
    push(api, 1, 2, 3)
    with caplog.at_level(logging.ERROR, logger="bot.polling"):
        running = asyncio.create_task(p.run())
        await until(lambda: api.confirmed() == 4, "the batch confirmed")
        p.stop()
        await running
    assert sorted(handlers.finished) == [1, 3]
    assert handlers.entered.count(2) == 1
    assert any("update 2 failed" in r.getMessage() for r in caplog.records)


async def test_a_stuck_handler_does_not_stall_polling_and_is_waited_for_on_stop(
    api: FakeBotAPI, bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    handlers = Handlers()
    handlers.hold = lambda message_id: message_id == 1
    p = poller(bot, handlers, confirm_after=0.2)
    push(api, 1, 2)
    with caplog.at_level(logging.WARNING, logger="bot.polling"):
        running = asyncio.create_task(p.run())
        await until(lambda: api.confirmed() == 3, "the batch confirmed despite the stuck one")
        push(api, 3)
        await until(lambda: 3 in handlers.finished, "later updates still handled")
        p.stop()
        await asyncio.sleep(0.2)
        assert not running.done()  # waiting for the stuck handler
        handlers.release.set()
        await asyncio.wait_for(running, 10)
    assert sorted(handlers.finished) == [1, 2, 3]
    assert any("still being handled" in r.getMessage() for r in caplog.records)


async def test_fetch_errors_back_off_and_polling_recovers(
    api: FakeBotAPI, bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    handlers = Handlers()
    api.failures = 3
    p = poller(bot, handlers)
    push(api, 1)
    with caplog.at_level(logging.ERROR, logger="bot.polling"):
        running = asyncio.create_task(p.run())
        await until(lambda: handlers.finished == [1], "the update handled after the errors")
        p.stop()
        await running
    errors = [r for r in caplog.records if "Could not fetch updates" in r.getMessage()]
    assert len(errors) == 3
    assert api.confirmed() == 2


async def test_an_update_asking_for_redelivery_is_held_back_and_comes_again(
    api: FakeBotAPI, bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    handlers = Handlers()
    handlers.busy[2] = 2
    p = poller(bot, handlers)
    push(api, 1, 2, 3)
    with caplog.at_level(logging.DEBUG, logger="bot.polling"):
        running = asyncio.create_task(p.run())
        await until(lambda: handlers.entered.count(2) == 2, "2 asked to come again once")
        # Confirmed up to the update that asked, not past it.
        assert api.confirmed() <= 2
        await until(lambda: 2 in handlers.finished, "2 handled on its third delivery")
        await until(lambda: api.confirmed() == 4, "the batch confirmed")
        p.stop()
        await running
    assert handlers.entered.count(2) == 3
    assert api.served[2] == 3
    # 3 came again with 2 but was handled already: it does not run twice.
    assert api.served[3] == 3
    assert handlers.entered.count(3) == 1
    assert handlers.entered.count(1) == 1
    assert p.redeliveries == 2
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert all(r.exc_info is None for r in caplog.records)


async def test_stop_confirms_only_up_to_an_update_still_asking_for_redelivery(
    api: FakeBotAPI, bot: Bot
) -> None:
    handlers = Handlers()
    handlers.busy[2] = 1_000_000
    p = poller(bot, handlers)
    push(api, 1, 2, 3)
    running = asyncio.create_task(p.run())
    await until(lambda: handlers.entered.count(2) >= 2, "2 asked to come again")
    p.stop()
    await asyncio.wait_for(running, 10)
    last = api.sent("getUpdates")[-1]
    assert int(last["offset"]) == 2  # Telegram keeps 2 (and 3) for the next start
    assert handlers.entered.count(3) == 1


async def test_a_late_handler_asking_for_redelivery_is_fed_again_by_the_poller(
    api: FakeBotAPI, bot: Bot
) -> None:
    """Its batch was confirmed after confirm_after, so Telegram cannot send it again."""
    handlers = Handlers()
    handlers.hold = lambda message_id: message_id == 1
    handlers.busy[1] = 1
    p = poller(bot, handlers, confirm_after=0.2)
    push(api, 1, 2)
    running = asyncio.create_task(p.run())
    await until(lambda: api.confirmed() == 3, "the batch confirmed despite the stuck one")
    handlers.release.set()
    await until(lambda: 1 in handlers.finished, "1 fed again and handled")
    p.stop()
    await asyncio.wait_for(running, 10)
    assert handlers.entered.count(1) == 2
    assert api.served[1] == 1
    assert sorted(handlers.finished) == [1, 2]


@pytest.mark.parametrize(
    ("cause", "says"),
    [("poller", "Another process is polling"), ("webhook", "python -m bot webhook delete")],
)
async def test_a_409_conflict_is_one_sentence_and_stops_polling_without_handling_more(
    api: FakeBotAPI, bot: Bot, caplog: pytest.LogCaptureFixture, cause: str, says: str
) -> None:
    handlers = Handlers()
    p = poller(bot, handlers)
    push(api, 1, 2)
    running = asyncio.create_task(p.run())
    await until(lambda: api.confirmed() == 3, "the first batch confirmed")
    if cause == "poller":
        api.conflict = True
    else:
        api.webhook = {"url": "https://bot.example.org/hook", "allowed_updates": None}
    push(api, 3)
    calls = len(api.sent("getUpdates"))
    with caplog.at_level(logging.ERROR, logger="bot.polling"):
        await asyncio.wait_for(running, 10)
    assert sorted(handlers.entered) == [1, 2]
    assert says in p.conflict
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [p.conflict]
    assert "409 Conflict" in p.conflict
    # Only the refused request, no confirmation after it: nothing more asked or written.
    assert len(api.sent("getUpdates")) <= calls + 1
