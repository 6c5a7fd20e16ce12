"""The chat pages in a real browser: headless Chromium loads them from a running server on a
ledger the demo built, through the Mini App's own entry (signed launch data in the URL
fragment, read by the page's script), and what it shows is checked against the ledger.
Screenshots are saved under tests/artifacts/ (gitignored)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from bot.registry import OFFLINE
from plugins.gamification.domain.clock import FakeClock, parse_utc
from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.domain.models import Period
from plugins.gamification.ops.commands import CommandContext
from plugins.gamification.ops.demo import START, load_script, replay
from plugins.gamification.storage.options import DatabaseOptions
from tests.support.telegram_harness import TelegramHarness
from tests.support.web import (
    ARTIFACTS,
    dump_dom,
    require_chromium,
    screenshot,
    serving,
    sign_init_data,
)

TOKEN = "1000000000:offline-token-that-never-leaves-this-process"
WEB = {"listen": "127.0.0.1:0", "public_url": "http://127.0.0.1"}
SCRIPT = load_script()
CHAT_ID = int(SCRIPT["chat"]["id"])
PEOPLE = {p["name"]: p for p in SCRIPT["people"]}
ADMIN = next(p for p in SCRIPT["people"] if p.get("admin"))
OUTSIDER = {"id": 4242, "first_name": "Stranger"}
DARK = {
    "bg_color": "#17212b",
    "text_color": "#f5f5f5",
    "hint_color": "#708499",
    "link_color": "#6ab3f3",
    "button_color": "#5288c1",
    "button_text_color": "#ffffff",
    "secondary_bg_color": "#232e3c",
}


@pytest.fixture
async def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TelegramHarness]:
    """The bot on the demo's ledger, an hour after the demo's last transaction."""
    require_chromium()
    monkeypatch.chdir(tmp_path)
    ledger = tmp_path / "demo.sqlite3"
    context = CommandContext(
        database=DatabaseOptions.of(ledger), settings=GamificationConfig(), offline=OFFLINE
    )
    assert await replay(context, ledger, out=io.StringIO(), cards=ledger.parent / "cards") == 0
    harness = TelegramHarness(
        ledger,
        admins={CHAT_ID: {ADMIN["id"]}},
        members={CHAT_ID: {p["id"] for p in SCRIPT["people"]}},
        shipped=True,
        web=WEB,
        clock=FakeClock(START),
    )
    last = harness.rows("SELECT MAX(created_at) FROM transactions")[0][0]
    harness.clock = FakeClock(parse_utc(last) + timedelta(hours=1))
    await harness.start()
    try:
        yield harness
    finally:
        await harness.close()


def launch(h: TelegramHarness, person: dict[str, Any], *, age: float = 0) -> str:
    user = {"id": person["id"], "first_name": person["first_name"], "language_code": "en"}
    when = int(h.clock.now().timestamp() - age)
    return sign_init_data(TOKEN, user, when, start_param=f"c{CHAT_ID}")


def rows(dom: str) -> list[tuple[int, str, int]]:
    found = re.findall(
        r'<tr[^>]*><td class="num">(\d+)</td><td class="name"><a [^>]*>(.*?)</a></td>'
        r'<td class="num">(-?\d+)</td></tr>',
        dom,
    )
    return [(int(rank), unescape(name), int(points)) for rank, name, points in found]


async def test_the_mini_app_shows_the_ranking_and_profile_of_the_ledger(
    demo: TelegramHarness,
) -> None:
    engine, people = demo.services.engine, demo.services.people
    bob = launch(demo, PEOPLE["bob"])
    async with serving(demo) as base:
        fragment = f"tgWebAppData={quote(bob)}&tgWebAppThemeParams={quote(json.dumps(DARK))}"
        entry = f"{base}/app#{fragment}"
        dom = await dump_dom(entry)
        board = await engine.leaderboard(CHAT_ID, Period.WEEK, 100)
        expected = [(s.rank, await people.name_of(s.user_id), s.points) for s in board.lines]
        assert len(expected) >= 4
        assert rows(dom) == expected
        # The theme Telegram handed over is applied through the CSS variables.
        assert 'class="tg"' in dom
        assert "--tg-theme-bg-color: #17212b" in dom
        await screenshot(entry, ARTIFACTS / "leaderboard-dark.png")

        alice = PEOPLE["alice"]["id"]
        profile_url = f"{base}/c/{CHAT_ID}/u/{alice}?auth={quote(bob)}"
        dom = await dump_dom(profile_url)
        account = await engine.balance(CHAT_ID, alice)
        progress = await engine.progress(CHAT_ID, alice)
        assert f"<dd><strong>{account.balance}</strong></dd>" in dom
        assert f"<dd>{account.earned}</dd>" in dom
        assert f"{progress.streak} days (best {progress.best_streak})" in dom
        assert dom.count('<rect class="gain"') == sum(
            1 for _, points in await engine.daily_points(CHAT_ID, alice) if points > 0
        )
        await screenshot(profile_url, ARTIFACTS / "profile-light.png", height=1100)


async def test_forged_expired_and_outsiders_are_refused_in_the_browser(
    demo: TelegramHarness,
) -> None:
    good = launch(demo, PEOPLE["bob"])
    cases = {
        "forged": (good.replace("Bob", "Rob"), 401, "Sign-in needed"),
        "expired": (launch(demo, PEOPLE["bob"], age=2 * 86_400), 401, "Sign-in needed"),
        "outsider": (launch(demo, OUTSIDER), 403, "Not for you"),
    }
    async with serving(demo) as base:
        for what, (auth, status, heading) in cases.items():
            url = f"{base}/c/{CHAT_ID}?auth={quote(auth)}"
            async with aiohttp.ClientSession() as client, client.get(url) as response:
                assert response.status == status, what
            dom = await dump_dom(f"{base}/app#tgWebAppData={quote(auth)}")
            assert f"<h1>{heading}</h1>" in dom, what
            assert "<table>" not in dom, what
        # Opened outside Telegram (no launch data in the fragment): the entry says so.
        dom = await dump_dom(f"{base}/app")
        assert "Open this page from the bot's button in a Telegram chat." in dom
        forged = quote(cases["forged"][0])
        await screenshot(
            f"{base}/app#tgWebAppData={forged}", ARTIFACTS / "refused.png", height=400
        )
