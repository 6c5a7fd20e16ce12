"""NATS JetStream for tests: reachable or not (said once, in one line), a stream and
subjects of its own per test (deleted afterwards), and a throwaway server to stop.

The shared server is `GAMIFICATION_TEST_NATS_URL` (default: the machine's own,
nats://127.0.0.1:4222). Where it cannot be reached, tests that need it skip with the
reason; with `GAMIFICATION_REQUIRE_SERVICES=1` (set by `.ci/run`) they fail instead.
A test that stops the server starts its own with `NatsServer` (its own port and store
folder), never the shared one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import os
import shutil
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from bot.config import AppConfig, EventsSettings
from plugins.gamification.bus.events import Event
from plugins.gamification.bus.nats import NatsBus, NatsOptions
from tests.reliability.pg_cluster import free_port
from tests.support.postgres import skip_unless_available

SERVER_ENV = "GAMIFICATION_TEST_NATS_URL"
DEFAULT_SERVER = "nats://127.0.0.1:4222"


def server_url() -> str:
    return os.environ.get(SERVER_ENV, DEFAULT_SERVER)


async def _quiet(exc: Exception) -> None:
    """nats-py logs each failed attempt with a traceback; the caller reports the failure."""


async def connect(url: str | list[str]) -> Any:
    """A plain client that fails after two quick attempts instead of retrying for minutes
    (nats-py never gives up with max_reconnect_attempts=0)."""
    import nats

    return await nats.connect(
        url,
        connect_timeout=2,
        allow_reconnect=False,
        max_reconnect_attempts=1,
        reconnect_time_wait=0,
        error_cb=_quiet,
    )


@functools.cache
def unreachable() -> str:
    """Empty when the server answers with JetStream on; otherwise the one-line reason."""

    async def probe() -> None:
        client = await connect(server_url())
        try:
            await client.jetstream().account_info()
        finally:
            await client.close()

    try:  # on a thread of its own: this may be asked from inside a running event loop
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, probe()).result(timeout=10)
    except Exception as exc:
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        return f"NATS JetStream is not reachable at {server_url()}: {first}"
    return ""


def require_nats() -> None:
    """Skip the calling test (fail it, where services are required) without a server."""
    skip_unless_available(unreachable())


def nats_server_missing() -> str:
    if shutil.which("nats-server") is None:
        return "nats-server is not installed, so no throwaway server can be started"
    return ""


def nats_options(url: str | None = None, **overrides: Any) -> NatsOptions:
    """Options with a stream, subjects and consumer names no other test uses, and short
    pauses (redelivery after a failure, polling, closing)."""
    tag = uuid.uuid4().hex[:10]
    settings: dict[str, Any] = {
        "url": url or server_url(),
        "stream": f"T_{tag}",
        "subject_prefix": f"t{tag}.events",
        "durable_prefix": f"t{tag}",
        "retry_delay": 0.05,
        "max_retry_delay": 0.2,
        "poll": 1.0,
        "close_timeout": 3.0,
        "max_age": 3600.0,
    }
    settings.update(overrides)
    return NatsOptions(**settings)


def with_nats(config: AppConfig, options: NatsOptions) -> AppConfig:
    """`config` with `[events] bus = "nats"` on the stream and subjects of `options`."""
    events = EventsSettings(
        bus="nats",
        url=options.url,
        stream=options.stream,
        subject_prefix=options.subject_prefix,
        durable_prefix=options.durable_prefix,
        duplicate_window_seconds=options.duplicate_window,
        max_age_days=options.max_age / 86_400,
        ack_wait_seconds=options.ack_wait,
    )
    return config.model_copy(update={"events": events})


async def delete_stream(options: NatsOptions) -> None:
    import nats.js.errors

    client = await connect(options.servers)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await client.jetstream().delete_stream(options.stream)
    finally:
        await client.close()


@asynccontextmanager
async def fresh_options(**overrides: Any) -> AsyncIterator[NatsOptions]:
    """Options for one test on the shared server; its stream is deleted afterwards."""
    require_nats()
    options = nats_options(**overrides)
    try:
        yield options
    finally:
        await delete_stream(options)


@asynccontextmanager
async def started(options: NatsOptions) -> AsyncIterator[NatsBus]:
    """A NatsBus, started and connected with its stream in place; closed afterwards."""
    bus = NatsBus(options)
    bus.start()
    try:
        async with asyncio.timeout(10):
            await bus.wait_ready()
        yield bus
    finally:
        await bus.close()


async def stream_state(options: NatsOptions) -> tuple[int, list[str]]:
    """(messages in the stream, the event id of each, in stream order), read directly."""
    client = await connect(options.servers)
    try:
        js = client.jetstream()
        info = await js.stream_info(options.stream)
        ids = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            message = await js.get_msg(options.stream, seq)
            assert message.data is not None
            ids.append(Event.model_validate_json(message.data).id)
        return info.state.messages, ids
    finally:
        await client.close()


async def eventually(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until `condition()` holds (it reads state, as a health check would); raises
    TimeoutError after `within` seconds."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def until(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """`eventually` for a check that must await (a balance, the outbox lag)."""
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@dataclasses.dataclass
class NatsServer:
    """A nats-server of the test's own: JetStream on, its store in a temporary folder, on a
    free port; `stop()` and `start()` again keep the store, as a restarted server does."""

    folder: Path = dataclasses.field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="gamif_nats_"))
    )
    port: int = dataclasses.field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        assert self.process is None, "already running"
        store = str(self.folder / "store")
        self.process = await asyncio.create_subprocess_exec(
            *("nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", store),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(10):
            while True:
                with contextlib.suppress(OSError):
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                    writer.close()
                    await writer.wait_closed()
                    return
                await asyncio.sleep(0.05)

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.send_signal(sig)
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()

    async def remove(self) -> None:
        await self.stop(signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)


@asynccontextmanager
async def throwaway_server() -> AsyncIterator[NatsServer]:
    skip_unless_available(nats_server_missing())
    server = NatsServer()
    try:
        await server.start()
        yield server
    finally:
        await server.remove()
