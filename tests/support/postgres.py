"""The PostgreSQL server for tests: reachable or not (said once, in one line), and a fresh
database per test, made from a migrated template and dropped afterwards.

The server is `GAMIFICATION_TEST_POSTGRES_URL` (default: the machine's own server,
postgresql://postgres@127.0.0.1:5432/postgres). Where it cannot be reached, tests that need
it skip with the reason; with `GAMIFICATION_REQUIRE_SERVICES=1` (set by `.ci/run`) they fail
instead, so CI always runs them.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import functools
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest

SERVER_ENV = "GAMIFICATION_TEST_POSTGRES_URL"
REQUIRE_ENV = "GAMIFICATION_REQUIRE_SERVICES"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    return os.environ.get(SERVER_ENV, DEFAULT_SERVER)


def database_url(name: str) -> str:
    """The server's URL with `name` as its database."""
    parts = urlsplit(server_url())
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def services_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


@functools.cache
def unreachable() -> str:
    """Empty when the server answers; otherwise the one-line reason why not."""
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        return "PostgreSQL tests need asyncpg, which is not installed"

    async def probe() -> None:
        conn = await asyncpg.connect(server_url(), timeout=3)
        await conn.close()

    try:  # on a thread of its own: this may be asked from inside a running event loop
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, probe()).result()
    except Exception as exc:
        first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
        return f"PostgreSQL is not reachable at {urlsplit(server_url()).netloc}: {first}"
    return ""


def skip_unless_available(reason: str) -> None:
    """Skip the calling test for `reason` (a service it needs is missing; empty: nothing
    is), or fail it where services are required (CI), so CI always runs it."""
    if not reason:
        return
    if services_required():
        pytest.fail(f"{reason} ({REQUIRE_ENV} is set, so this is a failure)", pytrace=False)
    pytest.skip(reason)


def require_postgres() -> None:
    """Skip the calling test (fail it, where services are required) without a server."""
    skip_unless_available(unreachable())


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@functools.cache
def _template() -> str:
    """A database migrated to the current schema, made once per test process."""
    import asyncpg

    from plugins.gamification.storage.postgres import schema

    name = f"gamif_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def make() -> None:
        admin = await asyncpg.connect(server_url())
        try:
            await admin.execute(f"CREATE DATABASE {_quote(name)}")
        finally:
            await admin.close()
        conn = await asyncpg.connect(database_url(name))
        try:
            await schema.migrate(conn, database_url(name))
        finally:
            await conn.close()

    asyncio.run(make())
    atexit.register(_drop_sync, name)
    return name


def _drop_sync(name: str) -> None:
    with contextlib.suppress(Exception):  # the server went away first: nothing to tidy
        asyncio.run(drop_database(name))


async def drop_database(name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(server_url())
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")
    finally:
        await admin.close()


async def create_database(prefix: str = "gamif_t", *, migrated: bool = True) -> str:
    """A new database (migrated, unless asked for an empty one); returns its name."""
    import asyncpg

    template = await asyncio.to_thread(_template) if migrated else "template0"
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url())
    try:
        await admin.execute(f"CREATE DATABASE {_quote(name)} TEMPLATE {_quote(template)}")
    finally:
        await admin.close()
    return name


@asynccontextmanager
async def fresh_database(prefix: str = "gamif_t", *, migrated: bool = True) -> AsyncIterator[str]:
    """A database of its own for one test: yields its URL, drops it afterwards."""
    require_postgres()
    name = await create_database(prefix, migrated=migrated)
    try:
        yield database_url(name)
    finally:
        await drop_database(name)
