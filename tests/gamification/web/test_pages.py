"""The chat pages over real HTTP: who may see what, the numbers against the ledger, and
hostile names escaped. The browser tests (tests/browser) load the same pages in Chromium."""

from __future__ import annotations

import re
from html import unescape
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from plugins.gamification.domain.models import Period
from tests.gamification.conftest import MakeHarness
from tests.support.chat import ALICE, BOB, CAROL, CHAT, CHAT_ID, FIXED, MOD, OTHER_ID, SENTENCES
from tests.support.telegram_harness import TelegramHarness
from tests.support.web import serving, sign_init_data

TOKEN = "1000000000:offline-token-that-never-leaves-this-process"
WEB = {"listen": "127.0.0.1:0", "public_url": "https://points.example.org"}
HOSTILE = {"id": 66, "is_bot": False, "first_name": '<script>alert("x")</script> & \'quote"'}
OUTSIDER = {"id": 77, "is_bot": False, "first_name": "Outsider"}


@pytest.fixture
async def h(make_harness: MakeHarness) -> TelegramHarness:
    """Mod (9) administers the Club; Alice, Bob, Carol, the hostile name and Mod are its
    members; the outsider is not."""
    harness = await make_harness(
        admins={CHAT_ID: {9}},
        members={CHAT_ID: {1, 2, 3, 66}},
        gamification=FIXED,
        web=WEB,
    )
    for i, user in enumerate([ALICE, BOB, BOB, CAROL, HOSTILE, ALICE, ALICE]):
        await harness.say(CHAT, user, SENTENCES[i])
        harness.clock.advance(61)
    return harness


def auth_for(
    h: TelegramHarness, user: dict[str, Any], *, age: float = 0, language: str = "en", **kw: Any
) -> str:
    when = int(h.clock.now().timestamp() - age)
    person = {k: user[k] for k in ("id", "first_name")} | {"language_code": language}
    return sign_init_data(TOKEN, person, when, **kw)


async def get(
    url: str, *, language: str | None = None
) -> tuple[int, str, aiohttp.typedefs.LooseHeaders]:
    headers = {"Accept-Language": language} if language else {}
    async with (
        aiohttp.ClientSession() as client,
        client.get(url, allow_redirects=False, headers=headers) as r,
    ):
        return r.status, await r.text(), r.headers


def cells(page: str) -> list[tuple[int, str, int]]:
    """(rank, name, points) of each leaderboard row, as a reader sees them."""
    rows = re.findall(
        r'<tr[^>]*><td class="num">(\d+)</td><td class="name"><a [^>]*>(.*?)</a></td>'
        r'<td class="num">(-?\d+)</td></tr>',
        page,
    )
    return [(int(rank), unescape(name), int(points)) for rank, name, points in rows]


async def test_a_member_sees_the_same_ranking_as_top(h: TelegramHarness) -> None:
    engine = h.services.engine
    async with serving(h) as base:
        for period in Period:
            url = f"{base}/c/{CHAT_ID}?period={period}&auth={quote(auth_for(h, BOB))}"
            status, page, headers = await get(url)
            assert status == 200
            assert headers["Cache-Control"] == "no-store"
            board = await engine.leaderboard(CHAT_ID, period, 100)
            names = [await h.services.people.name_of(line.user_id) for line in board.lines]
            assert cells(page) == [
                (line.rank, name, line.points)
                for line, name in zip(board.lines, names, strict=True)
            ]
            assert 'aria-current="page"' in page
            # The first thing the keyboard reaches is the skip link to the content.
            first_link = re.search(r"<a [^>]*>", page)
            assert first_link is not None
            assert first_link.group(0) == '<a class="skip" href="#content">'
            assert '<main id="content">' in page
    assert [line.points for line in board.lines] == [30, 20, 10, 10]


async def test_hostile_names_are_escaped_everywhere(h: TelegramHarness) -> None:
    async with serving(h) as base:
        auth = quote(auth_for(h, HOSTILE))
        _, board, _ = await get(f"{base}/c/{CHAT_ID}?auth={auth}")
        _, profile, _ = await get(f"{base}/c/{CHAT_ID}/u/66?auth={auth}")
    for page in (board, profile):
        assert "<script>alert" not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;quote&quot;" in page
    # The profile's title, heading and chart are the only places the name goes.
    assert profile.count("&lt;script&gt;alert") == 2


async def test_profile_shows_balance_level_streak_and_the_chart(h: TelegramHarness) -> None:
    async with serving(h) as base:
        status, page, _ = await get(f"{base}/c/{CHAT_ID}/u/1?auth={quote(auth_for(h, BOB))}")
    assert status == 200
    account = await h.services.engine.balance(CHAT_ID, 1)
    progress = await h.services.engine.progress(CHAT_ID, 1)
    assert f"<dd><strong>{account.balance}</strong></dd>" in page
    assert f"<dd>{progress.level} <progress" in page
    assert f"{progress.streak} days (best {progress.best_streak})" in page
    assert "<svg" in page
    assert f"{h.clock.now().date().isoformat()}: +30" in page


async def test_refusals_are_short_pages_with_their_status(h: TelegramHarness) -> None:
    good = auth_for(h, BOB)
    forged = good.replace("Bob", "Bib")
    expired = auth_for(h, BOB, age=86_400 + 1)
    async with serving(h) as base:
        board = f"{base}/c/{CHAT_ID}"
        cases = {
            "no sign-in on a private chat": (f"{board}", 401),
            "forged": (f"{board}?auth={quote(forged)}", 401),
            "expired": (f"{board}?auth={quote(expired)}", 401),
            "garbage": (f"{board}?auth=%00%ff", 401),
            "not a member": (f"{board}?auth={quote(auth_for(h, OUTSIDER))}", 403),
            "unknown chat": (f"{base}/c/{OTHER_ID}?auth={quote(good)}", 404),
            "not a chat id": (f"{base}/c/club?auth={quote(good)}", 404),
            "huge chat id": (f"{base}/c/{10**30}?auth={quote(good)}", 404),
            "unknown period": (f"{board}?period=year&auth={quote(good)}", 404),
            "unknown member": (f"{board}/u/12345?auth={quote(good)}", 404),
            "members' admin page": (f"{board}/admin?auth={quote(good)}", 403),
        }
        for what, (url, expected) in cases.items():
            status, page, headers = await get(url)
            assert status == expected, what
            assert "Traceback" not in page, what
            assert "<h1>" in page, what
            assert "script-src 'sha256-" in headers["Content-Security-Policy"]


async def test_admins_see_the_audit_trail(h: TelegramHarness) -> None:
    await h.say(CHAT, MOD, '/award @bob 5 for the <b>"best"</b> summary')
    async with serving(h) as base:
        auth = quote(auth_for(h, MOD))
        _, board, _ = await get(f"{base}/c/{CHAT_ID}?auth={auth}")
        status, page, _ = await get(f"{base}/c/{CHAT_ID}/admin?auth={auth}")
    assert "/admin?auth=" in board  # the link shows for admins only
    assert status == 200
    assert "<td>Mod</td><td>award</td><td>Bob</td>" in page
    assert "&lt;b&gt;&quot;best&quot;&lt;/b&gt;" in page


async def test_public_pages_need_no_sign_in_once_admins_say_so(h: TelegramHarness) -> None:
    async with serving(h) as base:
        assert (await get(f"{base}/c/{CHAT_ID}"))[0] == 401
        await h.say(CHAT, MOD, "/web public on")
        status, page, headers = await get(f"{base}/c/{CHAT_ID}")
        assert status == 200
        assert headers["Cache-Control"].startswith("public")
        assert headers["Vary"] == "Accept-Language"  # the words follow the browser
        assert "auth=" not in page
        assert "/admin" not in page
        assert (await get(f"{base}/c/{CHAT_ID}/admin"))[0] == 403
        # Someone from outside the chat who opens it from Telegram sees the public page.
        status, page, _ = await get(f"{base}/c/{CHAT_ID}?auth={quote(auth_for(h, OUTSIDER))}")
        assert status == 200
        assert "auth=" not in page
        await h.say(CHAT, MOD, "/web public off")
        assert (await get(f"{base}/c/{CHAT_ID}"))[0] == 401


async def test_the_mini_app_opens_the_chat_its_signed_start_parameter_names(
    h: TelegramHarness,
) -> None:
    launch = auth_for(h, BOB, start_param=f"c{CHAT_ID}")
    async with serving(h) as base:
        status, _, headers = await get(f"{base}/app/open?auth={quote(launch)}")
        assert status == 303
        assert headers["Location"] == f"/c/{CHAT_ID}?auth={quote(launch, safe='')}"
        # From a web_app button (no start parameter) the chat is in the URL.
        plain = auth_for(h, BOB)
        status, _, headers = await get(f"{base}/app/open?auth={quote(plain)}&chat=c{CHAT_ID}")
        assert status == 303
        assert headers["Location"].startswith(f"/c/{CHAT_ID}?auth=")
        outsider = auth_for(h, OUTSIDER, start_param=f"c{CHAT_ID}")
        assert (await get(f"{base}/app/open?auth={quote(outsider)}"))[0] == 403
        assert (await get(f"{base}/app/open?auth={quote(plain)}"))[0] == 404
        status, page, _ = await get(f"{base}/app")
        assert status == 200
        assert 'id="status"' in page


async def test_a_page_reads_the_ledger_again_only_when_it_changed(h: TelegramHarness) -> None:
    auth = quote(auth_for(h, BOB))
    async with serving(h) as base:
        first = cells((await get(f"{base}/c/{CHAT_ID}?period=all&auth={auth}"))[1])
        await h.say(CHAT, BOB, SENTENCES[9])
        second = cells((await get(f"{base}/c/{CHAT_ID}?period=all&auth={auth}"))[1])
    assert first[0] == (1, "Alice", 30)
    assert (2, "Bob", 20) in first
    assert (1, "Alice", 30) in second
    assert (1, "Bob", 30) in second


@pytest.mark.parametrize(
    ("language", "heading", "refusal"),
    [
        ("ru", "Таблица лидеров", "Нет доступа"),
        ("es-MX", "Clasificación", "No es para ti"),
        ("de", "Leaderboard", "Not for you"),
    ],
)
async def test_pages_speak_the_members_telegram_language(
    h: TelegramHarness, language: str, heading: str, refusal: str
) -> None:
    async with serving(h) as base:
        member = quote(auth_for(h, BOB, language=language))
        _, page, _ = await get(f"{base}/c/{CHAT_ID}?auth={member}")
        outsider = quote(auth_for(h, OUTSIDER, language=language))
        status, refused, _ = await get(f"{base}/c/{CHAT_ID}?auth={outsider}")
    assert f"<h1>{heading}</h1>" in page
    assert f'lang="{language.split("-")[0] if language != "de" else "en"}"' in page
    assert status == 403
    assert f"<h1>{refusal}</h1>" in refused


async def test_the_chats_language_wins_then_the_viewers_own(h: TelegramHarness) -> None:
    russian = quote(auth_for(h, BOB, language="ru"))
    async with serving(h) as base:
        await h.say(CHAT, MOD, "/web public on")
        _, public, _ = await get(f"{base}/c/{CHAT_ID}", language="es-ES,es;q=0.9")
        assert "<h1>Clasificación</h1>" in public
        await h.say(CHAT, MOD, "/language es")
        _, page, _ = await get(f"{base}/c/{CHAT_ID}?auth={russian}")
        _, public, _ = await get(f"{base}/c/{CHAT_ID}", language="ru")
    assert "<h1>Clasificación</h1>" in page
    assert "<h1>Clasificación</h1>" in public
