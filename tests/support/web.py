"""The chat pages under test: Mini App launch data signed as Telegram signs it, the pages'
server on a free port, and headless Chromium to load them as a person's browser would.

Chromium is Debian's `chromium`. Where it is missing, the first test that needs it installs
it (`apt-get install -y chromium`) when running as root with apt; where it still cannot be
had, those tests skip with one line saying why, and fail instead where
`GAMIFICATION_REQUIRE_SERVICES=1` (CI, which also installs it in `.ci/run`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bot.web import WebServer
from tests.support.postgres import skip_unless_available
from tests.support.telegram_harness import TelegramHarness

ROOT = Path(__file__).resolve().parents[2]
# Screenshots and page dumps of the browser tests (gitignored).
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
BROWSER_TIMEOUT = 60


def sign_init_data(
    token: str,
    user: Mapping[str, Any],
    auth_date: int,
    *,
    start_param: str | None = None,
    **extra: str,
) -> str:
    """Launch data as Telegram hands a Mini App: fields, then the HMAC-SHA256 `hash` keyed
    with HMAC("WebAppData", bot token) over the sorted "key=value" lines."""
    fields = {"user": json.dumps(dict(user), separators=(",", ":")), "auth_date": str(auth_date)}
    fields["query_id"] = "AAH-test"
    if start_param is not None:
        fields["start_param"] = start_param
    fields.update(extra)
    check = "\n".join(f"{key}={value}" for key, value in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode(fields)


@asynccontextmanager
async def serving(harness: TelegramHarness) -> AsyncIterator[str]:
    """Serve the harness's pages on 127.0.0.1 (a free port); yields the base URL."""
    app = harness.app.web
    assert app is not None, "the harness has no [web] listen"
    server = WebServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


def _install_reason() -> str:
    """Install Debian's chromium when we may; the reason it is missing otherwise."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "headless Chromium is not installed (apt-get install chromium needs root)"
    if shutil.which("apt-get") is None:
        return "headless Chromium is not installed and there is no apt-get to install it"
    for command in (
        ["apt-get", "install", "-y", "-q", "chromium"],
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "chromium"],
    ):
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            check=False,
            timeout=900,
        )
        if result.returncode == 0 and command[1] == "install":
            return ""
    last = (result.stderr.strip().splitlines() or ["no output"])[-1]
    return f"headless Chromium could not be installed with apt-get: {last}"


@functools.cache
def _chromium() -> tuple[str, str]:
    """(path, "") when Chromium is here (installed now if need be), else ("", reason)."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found, ""
    reason = _install_reason()
    found = shutil.which("chromium") or ""
    return found, "" if found else reason


def require_chromium() -> str:
    """The browser's path; skips the calling test (fails it in CI) without one."""
    path, reason = _chromium()
    skip_unless_available(reason)
    return path


async def run_chromium(url: str, *args: str) -> str:
    """Headless Chromium on `url` with `args`; its stdout (the DOM, for --dump-dom).

    Run without blocking: the pages' server answers it from this very event loop.
    """
    browser = require_chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        process = await asyncio.create_subprocess_exec(
            browser,
            "--headless",
            "--no-sandbox",  # root in a container has no user namespaces for it
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            # Pages may only reach the test server: anything else would be a bug.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=5000",
            *args,
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), BROWSER_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AssertionError(f"chromium did not finish within {BROWSER_TIMEOUT} s") from None
    assert process.returncode == 0, f"chromium failed: {err.decode(errors='replace')[-2000:]}"
    return out.decode()


async def dump_dom(url: str) -> str:
    """The page's DOM after its scripts ran (and any navigation they made)."""
    return await run_chromium(url, "--dump-dom")


async def screenshot(
    url: str, path: Path, *, width: int = 420, height: int = 900, dark: bool = False
) -> Path:
    """A PNG of the page at `path` (a phone-sized window by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = ["--force-dark-mode", "--blink-settings=preferredColorScheme=0"] if dark else []
    await run_chromium(url, f"--screenshot={path}", f"--window-size={width},{height}", *extra)
    size = await asyncio.to_thread(lambda: path.stat().st_size if path.exists() else -1)
    assert size > 0, f"no screenshot at {path}" if size < 0 else f"an empty screenshot at {path}"
    return path
