"""Playing Telegram against `python -m bot run --webhook` instances: the processes and the load.

`Instance` starts one bot process (its log in a file) and waits until it listens.
`play` sends a scripted chat load as Telegram's webhook delivery does: each chat's next
update only after the previous one was answered 2xx, a non-2xx answer retried with a
small backoff, and a share of the updates delivered twice (at once, or again after the
first answer, as Telegram does when an answer got lost).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.reliability.pg_cluster import free_port
from tests.support.live_bot import ROOT, TOKEN, WORDS, message

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class Instance:
    """One `python -m bot run --webhook` process on a port of its own.

    Its config file is `config` (everything but `[webhook]`) with its own listen address;
    its stderr goes to NAME.log in `folder`, across restarts.
    """

    def __init__(self, name: str, folder: Path, config: str, secret: str) -> None:
        self.name = name
        self.port = free_port()
        self.config = folder / f"{name}.toml"
        self.config.write_text(f'{config}\n[webhook]\nlisten = "127.0.0.1:{self.port}"\n')
        self.log = folder / f"{name}.log"
        self.secret = secret
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
        env.update(BOT_TOKEN=TOKEN, BOT_WEBHOOK_SECRET=self.secret, PYTHONPATH=str(ROOT))
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", "--webhook", "--config", str(self.config),
                cwd=self.config.parent, env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        self.starts += 1

    async def ready(self, limit: float = 60.0) -> None:
        """Wait until it listens: a GET on the webhook path is 405 (only POST is served)."""
        deadline = asyncio.get_running_loop().time() + limit
        async with aiohttp.ClientSession() as client:
            while True:
                assert self.process is not None
                assert self.process.returncode is None, (
                    f"{self.name} exited with {self.process.returncode}:"
                    f" {self.log.read_text()[-2000:]}"
                )
                try:
                    async with client.get(self.url + "/telegram/webhook") as reply:
                        if reply.status == 405:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                assert asyncio.get_running_loop().time() < deadline, f"{self.name} not ready"
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def terminate(self, limit: float = 60.0) -> int:
        """SIGTERM and the exit code (SIGKILL after `limit` seconds)."""
        if self.process is None or self.process.returncode is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), limit)
        except TimeoutError:
            self.process.kill()
            return await self.process.wait()


@dataclass(frozen=True)
class Delivery:
    update_id: int
    chat_id: int
    user_id: int
    message_id: int
    body: dict[str, Any]

    @property
    def key(self) -> str:
        """The ledger's idempotency key of the message's activity award."""
        return f"msg:{self.chat_id}:{self.message_id}"


def script(chats: int, per_chat: int, seed: int) -> list[list[Delivery]]:
    """Each chat's updates in order: two members taking turns, sentences of real words.

    Update ids rise across all chats in rounds, as Telegram numbers a bot's updates.
    """
    rng = random.Random(seed)
    ids = itertools.count(1)
    people = [
        [
            {"id": 70_000_000 + 2 * c + k, "is_bot": False, "first_name": f"Member {c}-{k}"}
            for k in (0, 1)
        ]
        for c in range(chats)
    ]
    rooms = [
        {"id": -1_009_000_000_000 - c, "type": "supergroup", "title": f"Load {c}"}
        for c in range(chats)
    ]
    plan: list[list[Delivery]] = [[] for _ in range(chats)]
    for turn in range(per_chat):
        for c in range(chats):
            user = people[c][turn % 2]
            text = " ".join(rng.sample(WORDS, 12)).capitalize() + "."
            body = {"update_id": next(ids), "message": message(turn + 1, user, text, rooms[c])}
            plan[c].append(Delivery(body["update_id"], rooms[c]["id"], user["id"], turn + 1, body))
    return plan


@dataclass
class Outcome:
    """What Telegram saw: each update answered 2xx, and how every attempt was answered."""

    answered: set[int] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    deliveries: int = 0
    twice: int = 0


async def play(
    url: str,
    secret: str,
    plan: list[list[Delivery]],
    *,
    seed: int,
    duplicate_share: float = 0.2,
    pause: float = 0.0,
    connections: int = 40,
    outcome: Outcome | None = None,
    phases: Sequence[asyncio.Event] = (),
) -> Outcome:
    """Deliver every chat's updates as Telegram would; return once all are answered 2xx.

    `pause`: at most this many seconds between a chat's updates (people do not write
    back to back); `connections`: Telegram's max_connections to the webhook; `outcome`:
    filled as it goes, for a caller watching the progress. `phases`: each chat's updates
    are cut into that many equal parts, and part i waits for `phases[i]` to be set.
    """
    outcome = outcome if outcome is not None else Outcome()
    timeout = aiohttp.ClientTimeout(total=90)
    connector = aiohttp.TCPConnector(limit=connections)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

        async def deliver(update: Delivery) -> None:
            for attempt in itertools.count():
                outcome.deliveries += 1
                try:
                    async with client.post(
                        url, json=update.body, headers={SECRET_HEADER: secret}
                    ) as reply:
                        await reply.read()
                        status = reply.status
                except (TimeoutError, aiohttp.ClientError):
                    status = 0
                outcome.statuses[status] += 1
                if 200 <= status < 300:
                    outcome.answered.add(update.update_id)
                    return
                await asyncio.sleep(min(0.05 * 2**attempt, 0.5) * random.uniform(0.5, 1.0))

        async def chat(index: int, updates: list[Delivery]) -> None:
            rng = random.Random(seed * 1_000_003 + index)
            for turn, update in enumerate(updates):
                if phases:
                    await phases[turn * len(phases) // len(updates)].wait()
                if pause:
                    await asyncio.sleep(rng.uniform(0, pause))
                if rng.random() >= duplicate_share:
                    await deliver(update)
                    continue
                outcome.twice += 1
                if rng.random() < 0.5:  # both at once: perhaps to both instances
                    await asyncio.gather(deliver(update), deliver(update))
                else:  # again after the first answer, as when the answer got lost
                    await deliver(update)
                    await deliver(update)

        await asyncio.gather(*(chat(i, updates) for i, updates in enumerate(plan)))
    return outcome


async def post_once(url: str, body: dict[str, Any], secret: str) -> int:
    """One delivery, no retry: its status."""
    async with (
        aiohttp.ClientSession() as client,
        client.post(url, json=body, headers={SECRET_HEADER: secret}) as reply,
    ):
        return reply.status
