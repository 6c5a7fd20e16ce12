"""The pages' HTTP server on `[web] listen`: an aiohttp application the plugins add routes to.

It runs beside polling or the webhook server, in the same process and event loop, so the
pages read the ledger through the plugins' own open services.
"""

from __future__ import annotations

import logging

from aiohttp import web

log = logging.getLogger(__name__)


class WebServer:
    """Serves `app` at host:port from `start()` until `close()`."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Open the listening socket; raises OSError (address in use, no permission)."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("Serving the chat pages at http://%s:%s", self.host, self.port)

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
