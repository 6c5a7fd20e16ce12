"""End to end over webhooks: `python -m bot run --webhook` processes taking group messages
as Telegram would send them, on SQLite (one process) and on PostgreSQL (one and two).

Each instance is the real command in its own OS process, with a local Bot API stand-in
for what it sends back (tests/support/fake_bot_api.py). A client in the bench process
plays Telegram: CHATS chats at once, each chat's next update only after the previous one
was answered 2xx (as Telegram does per chat), non-2xx answers sent again, requests
spread round robin over the instances (a per-request load balancer). Half as many people
as timed messages each say a first sentence in an untimed warm-up, then two more each,
timed: sentences of real words within the rate rules, so every one scores; the ledger is
counted afterwards to prove it.

CPU per message of each instance is the process's user + system time from /proc (every
thread) over the timed messages, divided by the messages that instance answered. The
client's own CPU is reported beside it: on a small machine it competes with the instances
and the database server for the same cores.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import secrets
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from benchmarks.farming import sentence
from bot.testing import UpdateFactory
from plugins.gamification.storage.options import parse_location
from plugins.gamification.storage.postgres.connect import connect
from tests.support.fake_bot_api import FakeBotAPI

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "123456:bench-token-that-only-reaches-the-local-stand-in"
PATH = "/telegram/webhook"
HEADER = "X-Telegram-Bot-Api-Secret-Token"
CHATS = 100
STARTUP_SECONDS = 120.0
STOP_SECONDS = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True, slots=True)
class WebhookRun:
    """`messages` answered by `instances` processes in `seconds`; `cpu` per instance."""

    storage: str
    instances: int
    messages: int
    seconds: float
    scored: int
    # Seconds of CPU (user + system, every thread) each instance spent on the timed messages.
    cpu: tuple[float, ...]
    # Messages each instance answered 2xx in the timed part.
    answered: tuple[int, ...]
    client_cpu: float
    retries: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def cpu_us_per_message(self) -> tuple[float, ...]:
        return tuple(
            cpu / count * 1e6 if count else 0.0
            for cpu, count in zip(self.cpu, self.answered, strict=True)
        )

    @property
    def total_cpu_us_per_message(self) -> float:
        """Every instance's CPU over every message: what one message costs the bot."""
        return sum(self.cpu) / self.messages * 1e6


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process `pid` (all its threads), from /proc (Linux)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        # The command name (field 2) may hold spaces: count fields after its ')'.
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(folder: Path, name: str, api: str, storage: str, port: int, secret: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(
        "\n".join(
            [
                "[bot]",
                f"api_server = {_toml_string(api)}",
                "[storage]",
                f"url = {_toml_string(storage)}",
                "[webhook]",
                f'listen = "127.0.0.1:{port}"',
                f"path = {_toml_string(PATH)}",
                f"secret_token = {_toml_string(secret)}",
                "[logging]",
                'level = "WARNING"',
                "",
            ]
        ),
        encoding="utf-8",
    )
    return path


@dataclass(slots=True)
class Instance:
    process: asyncio.subprocess.Process
    url: str
    log: Path


async def _ready(session: aiohttp.ClientSession, instance: Instance) -> None:
    """Until the instance answers: a request without the secret gets 401 once it serves."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if instance.process.returncode is not None:
            break
        try:
            async with session.post(instance.url, json={}) as response:
                if response.status == 401:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    tail = instance.log.read_text(encoding="utf-8", errors="replace")[-2_000:]
    raise RuntimeError(f"a webhook instance did not start; its log ends with:\n{tail}")


@asynccontextmanager
async def instances(
    folder: Path, api: str, storage: str, count: int, secret: str
) -> AsyncIterator[list[Instance]]:
    """`count` `python -m bot run --webhook` processes on `storage`; stopped with SIGTERM
    afterwards, each of which must exit 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update(BOT_TOKEN=TOKEN, PYTHONPATH=str(ROOT))
    started: list[Instance] = []
    try:
        for n in range(count):
            port = free_port()
            config = write_config(folder, f"instance{n}", api, storage, port, secret)
            log = folder / f"instance{n}.log"
            with log.open("ab") as errors:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bot", "run", "--webhook", "--config", str(config),
                    cwd=folder, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=errors,
                )  # fmt: skip
            started.append(Instance(process, f"http://127.0.0.1:{port}{PATH}", log))
        async with aiohttp.ClientSession() as session:
            for instance in started:
                await _ready(session, instance)
        yield started
    finally:
        for instance in started:
            if instance.process.returncode is None:
                instance.process.send_signal(signal.SIGTERM)
        failed = []
        for instance in started:
            try:
                code = await asyncio.wait_for(instance.process.wait(), STOP_SECONDS)
            except TimeoutError:
                instance.process.kill()
                code = await instance.process.wait()
            if code != 0:
                failed.append(f"{instance.log.name}: exit {code}")
        if failed and sys.exc_info()[0] is None:
            raise RuntimeError(f"webhook instances did not stop cleanly ({', '.join(failed)})")


Streams = list[list[str]]


def chat_streams(messages: int) -> tuple[Streams, Streams]:
    """Update bodies (JSON) per chat: a warm-up in which each of `messages` / 2 people says
    a first sentence, then the timed `messages`, two more from each of them. The first
    message of a person costs more (today's total and streak are read from the ledger):
    the timed part measures the steady state of a chat whose members are known."""
    rng = random.Random(20260311)
    factory = UpdateFactory(now=time.time)
    chats = [UpdateFactory.group(-1_003_000_000_000 - n, f"chat {n}") for n in range(CHATS)]
    people = [UpdateFactory.user(1_000_000 + n, f"member{n}") for n in range(messages // 2)]

    def round_of_messages() -> Streams:
        streams: Streams = [[] for _ in range(CHATS)]
        for n, person in enumerate(people):
            update = factory.message(chats[n % CHATS], person, sentence(rng, 8, 8))
            streams[n % CHATS].append(update.model_dump_json(exclude_none=True))
        return streams

    warmup = round_of_messages()
    timed = [a + b for a, b in zip(round_of_messages(), round_of_messages(), strict=True)]
    return warmup, timed


class Client:
    """Telegram's side: per chat one update at a time, again until it is answered 2xx."""

    def __init__(self, session: aiohttp.ClientSession, targets: Sequence[str], secret: str):
        self.session = session
        self.targets = targets
        self.secret = secret
        self.retries = 0
        # Messages each target answered 2xx.
        self.answered = [0] * len(targets)
        self._next = itertools.cycle(range(len(targets)))

    async def deliver(self, body: str) -> None:
        headers = {HEADER: self.secret, "Content-Type": "application/json"}
        while True:
            target = next(self._next)
            try:
                async with self.session.post(
                    self.targets[target], data=body, headers=headers
                ) as response:
                    await response.read()
                    if 200 <= response.status < 300:
                        self.answered[target] += 1
                        return
            except aiohttp.ClientError:
                pass
            self.retries += 1
            await asyncio.sleep(0.05)

    async def play(self, streams: Sequence[Sequence[str]]) -> None:
        async def chat(stream: Sequence[str]) -> None:
            for body in stream:
                await self.deliver(body)

        await asyncio.gather(*(chat(stream) for stream in streams))


async def count_scored(storage: str) -> int:
    """Activity awards in the ledger."""
    location = parse_location(storage)
    query = "SELECT COUNT(*) FROM transactions WHERE kind = 'activity'"
    if location.dsn is not None:
        conn = await connect(location.dsn)
        try:
            return int(await conn.fetchval(query))
        finally:
            await conn.close()
    assert location.path is not None
    with sqlite3.connect(location.path) as db:
        return int(db.execute(query).fetchone()[0])


async def run(folder: Path, storage: str, count: int, messages: int) -> WebhookRun:
    """`messages` timed (after a warm-up of half as many) through `count` webhook instances."""
    secret = secrets.token_urlsafe(24)
    api = FakeBotAPI()
    api_url = await api.start()
    try:
        async with AsyncExitStack() as stack:
            started = await stack.enter_async_context(
                instances(folder, api_url, storage, count, secret)
            )
            timeout = aiohttp.ClientTimeout(total=120)
            connector = aiohttp.TCPConnector(limit=CHATS * 2)
            session = await stack.enter_async_context(
                aiohttp.ClientSession(timeout=timeout, connector=connector)
            )
            client = Client(session, [i.url for i in started], secret)
            warmup, streams = chat_streams(messages)
            await client.play(warmup)
            # Answered means handled and committed: the ledger holds the warm-up now.
            scored_before = await count_scored(storage)
            before = [process_cpu(i.process.pid) for i in started]
            answered = list(client.answered)
            retries = client.retries
            cpu, clock = time.process_time(), time.perf_counter()
            await client.play(streams)
            seconds = time.perf_counter() - clock
            client_cpu = time.process_time() - cpu
            after = [process_cpu(i.process.pid) for i in started]
            done = [now - then for now, then in zip(client.answered, answered, strict=True)]
            retried = client.retries - retries
        # The instances are stopped (queued points committed): count what they wrote.
        scored = await count_scored(storage) - scored_before
    finally:
        await api.stop()
    return WebhookRun(
        storage=parse_location(storage).backend,
        instances=count,
        messages=messages,
        seconds=seconds,
        scored=scored,
        cpu=tuple(a - b for a, b in zip(after, before, strict=True)),
        answered=tuple(done),
        client_cpu=client_cpu,
        retries=retried,
    )
