"""The Redis server for tests: reachable or not (said once, in one line), a key prefix of
each test's own whose keys are deleted afterwards, and throwaway servers to stop and start.

The server is `GAMIFICATION_TEST_REDIS_URL` (default: the machine's own,
redis://127.0.0.1:6379/0). Where it cannot be reached, tests that need it skip with the
reason; with `GAMIFICATION_REQUIRE_SERVICES=1` (set by `.ci/run`) they fail instead. Tests
share that server with each other and with other programs: every test writes only under
its own prefix, and a test that must stop a server starts its own (`ThrowawayRedis`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.support.postgres import skip_unless_available

SERVER_ENV = "GAMIFICATION_TEST_REDIS_URL"
DEFAULT_SERVER = "redis://127.0.0.1:6379/0"


def server_url() -> str:
    return os.environ.get(SERVER_ENV, DEFAULT_SERVER)


@functools.cache
def unreachable() -> str:
    """Empty when the server answers; otherwise the one-line reason why not."""
    import redis

    try:
        client = redis.Redis.from_url(server_url(), socket_timeout=3, socket_connect_timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        return f"Redis is not reachable at {server_url()}: {first}"
    return ""


def require_redis() -> None:
    """Skip the calling test (fail it, where services are required) without a server."""
    skip_unless_available(unreachable())


def new_prefix() -> str:
    return f"gamif-test:{uuid.uuid4().hex[:12]}:"


async def delete_prefix(url: str, prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@asynccontextmanager
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of the calling test's own on the test server; its keys go afterwards."""
    require_redis()
    prefix = new_prefix()
    try:
        yield prefix
    finally:
        await delete_prefix(server_url(), prefix)


async def keys_under(url: str, prefix: str) -> dict[str, dict[str, Any]]:
    """Every key under `prefix`: its type, TTL (ms) and memory usage (bytes)."""
    from redis.asyncio import Redis

    client = Redis.from_url(url, decode_responses=False)
    found: dict[str, dict[str, Any]] = {}
    try:
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            found[key.decode()] = {
                "type": (await client.type(key)).decode(),
                "ttl_ms": await client.pttl(key),
                "memory": await client.memory_usage(key, samples=0),
                "length": await client.strlen(key) if await client.type(key) == b"string" else 0,
            }
    finally:
        await client.aclose()
    return found


# -- throwaway servers ---------------------------------------------------------------------


def throwaway_unavailable() -> str:
    """Empty when a redis-server can be started here; otherwise the reason why not."""
    if shutil.which("redis-server") is None:
        return "no redis-server program to start a throwaway Redis with"
    return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ThrowawayRedis:
    """A redis-server of the test's own, on a free port, in a temporary folder: stopped and
    started again at will (the machine's server is never touched)."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="gamif_redis_"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        """SIGKILL: the server is gone at once, as in a crash (it keeps nothing: no saves)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    skip_unless_available(throwaway_unavailable())
    server = ThrowawayRedis()
    try:
        server.start()
        yield server
    finally:
        server.close()


async def wait_until(condition: Any, seconds: float = 10.0) -> None:
    """Poll `condition()` (sync) until true, or fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(0.02)
