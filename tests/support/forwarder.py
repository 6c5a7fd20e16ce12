"""A loopback per-request load balancer for webhook tests: each POST to the next instance.

Round-robin over `targets` (base URLs, changed freely while it runs), one request at a
time, no stickiness: the answer is the instance's status, or 502 when the instance could
not be reached or dropped the connection (killed), so the caller tries again, as Telegram
does with a webhook that failed.
"""

from __future__ import annotations

import itertools
from collections import Counter

import aiohttp
from aiohttp import web

# What the bot instances read from Telegram's request; everything else stays behind.
PASSED_HEADERS = ("Content-Type", "X-Telegram-Bot-Api-Secret-Token")


class Forwarder:
    """`await start()` returns its URL; `statuses` counts what it answered."""

    def __init__(self, targets: list[str], *, timeout: float = 90.0) -> None:
        self.targets = targets
        self.statuses: Counter[int] = Counter()
        self.url = ""
        self._turn = itertools.count()
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None

    async def start(self) -> str:
        # No pool limit: each caller's request is forwarded at once, as a balancer would.
        self._client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=self._timeout
        )
        app = web.Application()
        app.router.add_post("/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._client is not None
        body = await request.read()
        headers = {k: request.headers[k] for k in PASSED_HEADERS if k in request.headers}
        target = self.targets[next(self._turn) % len(self.targets)]
        try:
            async with self._client.post(
                target + request.path_qs, data=body, headers=headers
            ) as reply:
                await reply.read()
                status = reply.status
        except (TimeoutError, aiohttp.ClientError):
            status = 502
        self.statuses[status] += 1
        return web.Response(status=status)
