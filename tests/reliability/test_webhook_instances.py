"""Two `python -m bot run --webhook` instances on one PostgreSQL ledger, behind a per-request
forwarder, taking a scripted chat load the way Telegram delivers it.

Telegram's side is played by `tests/support/webhook_load.py`: each chat's next update only
after a 2xx answer, retries on anything else, a fifth of the updates delivered twice. The
forwarder (tests/support/forwarder.py) sends each request to the next instance, so one
chat's updates alternate between the processes. The bots' own calls (command menus,
announcements) go to a local fake Bot API. Afterwards the ledger must show every
answered update scored exactly once, each chat's awards in update order, no daily cap
exceeded, and `python -m bot check` clean; the second test does the same while one
instance is killed with SIGKILL every few seconds and started again.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from bot.__main__ import main
from tests.reliability.conftest import Show
from tests.support.fake_bot_api import FakeBotAPI
from tests.support.forwarder import Forwarder
from tests.support.live_bot import message
from tests.support.postgres import fresh_database
from tests.support.webhook_load import Delivery, Instance, Outcome, play, post_once, script

SECRET = "load-harness_secret-1"
PATH = "/telegram/webhook"
POINTS = 20

# Shared anti-abuse state: where the test config would choose the backend every instance
# shares (e.g. 'backend = "redis"' and its URL). Empty: each instance keeps its own, in
# memory (the default).
ANTI_ABUSE_BACKEND = ""


def config(api_url: str, dsn: str, per_person: int) -> str:
    """Every message of the script scores exactly POINTS: a fixed amount, no rate limit
    (members here write back to back), no monologue or engagement discount (nobody
    answers anybody). The daily cap is exactly what one member's messages earn, so a
    message counted twice would have to pass it."""
    return (
        f'[bot]\napi_server = "{api_url}"\n[storage]\nurl = "{dsn}"\n'
        f"[gamification.activity]\npoints = {{ text = {POINTS} }}\n"
        "[gamification.anti_abuse]\ncooldown_seconds = 0\nmonologue_factor = 1\n"
        f"engaged_share = 0\ndaily_cap = {POINTS * per_person}\n{ANTI_ABUSE_BACKEND}\n"
    )


@dataclass(frozen=True)
class Award:
    id: int
    chat_id: int
    user_id: int
    key: str
    amount: int
    day: str


async def activity(dsn: str) -> list[Award]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT id, chat_id, user_id, idem_key, amount, created_at FROM transactions"
            " WHERE kind = 'activity' ORDER BY id"
        )
    finally:
        await conn.close()
    return [Award(r[0], r[1], r[2], r[3], r[4], r[5][:10]) for r in rows]


def verify(awards: list[Award], plan: list[list[Delivery]], outcome: Outcome, cap: int) -> None:
    keys = [award.key for award in awards]
    assert len(keys) == len(set(keys)), "an award key is in the ledger twice"
    sent = {d.key: d for chat in plan for d in chat}
    answered = {d.key for chat in plan for d in chat if d.update_id in outcome.answered}
    assert len(answered) == len(sent), "play returns once every update was answered 2xx"
    missing = answered - set(keys)
    assert not missing, f"{len(missing)} updates answered 2xx are not in the ledger"
    assert set(keys) <= set(sent), "the ledger holds an award nobody sent"
    # The ledger's ids follow commit order: per chat, the messages' order.
    by_chat: dict[int, list[int]] = defaultdict(list)
    for award in awards:
        by_chat[award.chat_id].append(sent[award.key].update_id)
    disorder = {chat: ids for chat, ids in by_chat.items() if ids != sorted(ids)}
    assert not disorder, f"chats handled out of update order: {list(disorder.items())[:3]}"
    assert {award.amount for award in awards} == {POINTS}
    days: dict[tuple[int, int, str], int] = defaultdict(int)
    for award in awards:
        days[(award.chat_id, award.user_id, award.day)] += award.amount
    assert max(days.values()) <= cap, "a member earned more than the daily cap"


@dataclass
class Deployment:
    api: FakeBotAPI
    forwarder: Forwarder
    instances: list[Instance]

    @property
    def url(self) -> str:
        return self.forwarder.url + PATH


async def deploy(tmp_path: Path, dsn: str, per_chat: int) -> Deployment:
    api = FakeBotAPI()
    api_url = await api.start()
    text = config(api_url, dsn, per_person=(per_chat + 1) // 2)
    instances = [Instance(f"bot{n}", tmp_path, text, SECRET) for n in range(2)]
    forwarder = Forwarder([instance.url for instance in instances])
    await forwarder.start()
    deployment = Deployment(api, forwarder, instances)
    await asyncio.gather(*(instance.start() for instance in instances))
    await asyncio.gather(*(instance.ready() for instance in instances))
    return deployment


async def tear_down(deployment: Deployment) -> list[int]:
    codes = await asyncio.gather(*(i.terminate() for i in deployment.instances))
    await deployment.forwarder.stop()
    await deployment.api.stop()
    return list(codes)


async def check(dsn: str) -> int:
    """`python -m bot check --db DSN --no-record`, run in this process (its output goes to
    the test's captured stdout); the exit code."""
    return await asyncio.to_thread(main, ["check", "--db", dsn, "--no-record"])


async def refused_intruder(deployment: Deployment) -> tuple[int, str]:
    """A well-formed update with a wrong secret: its status and the key it would score."""
    person = {"id": 69_999_999, "is_bot": False, "first_name": "Intruder"}
    chat = {"id": -1_008_999_999_999, "type": "supergroup", "title": "Elsewhere"}
    body = {"update_id": 10**9, "message": message(1, person, "Points for free please", chat)}
    status = await post_once(deployment.url, body, "not-the-secret")
    return status, f"msg:{chat['id']}:1"


async def run_load(tmp_path: Path, show: Show, *, chats: int, per_chat: int, seed: int) -> None:
    plan = script(chats, per_chat, seed)
    async with fresh_database("gamif_hook") as dsn:
        deployment = await deploy(tmp_path, dsn, per_chat)
        try:
            intruder, intruder_key = await refused_intruder(deployment)
            outcome = await play(deployment.url, SECRET, plan, seed=seed)
        finally:
            codes = await tear_down(deployment)
        awards = await activity(dsn)
        checked = await check(dsn)
    assert intruder == 401
    assert intruder_key not in {award.key for award in awards}
    assert codes == [0, 0], [i.log.read_text()[-3000:] for i in deployment.instances]
    for instance in deployment.instances:
        assert "Traceback" not in instance.log.read_text()
    verify(awards, plan, outcome, POINTS * ((per_chat + 1) // 2))
    assert checked == 0
    updates = chats * per_chat
    show(
        f"webhook, two instances on one PostgreSQL ledger: {chats} chats, {updates} updates"
        f" ({outcome.twice} delivered twice, {outcome.deliveries} deliveries, answers"
        f" {dict(sorted(outcome.statuses.items()))}); each scored once, in chat order"
    )


async def run_load_under_kill(
    tmp_path: Path, show: Show, *, chats: int, per_chat: int, seed: int, kills: int
) -> None:
    """The load in `kills + 1` phases; halfway through each phase but the last, one
    instance (each in turn) is killed and started again at once, and the next phase
    begins when it listens again. So every kill lands while updates are in hand, however
    fast the machine, and the load goes on through each restart on the other instance."""
    plan = script(chats, per_chat, seed)
    outcome = Outcome()
    phases = [asyncio.Event() for _ in range(kills + 1)]
    # How many updates are answered once phase k is half done.
    halfway = [
        sum(len(chat) * (2 * k + 1) // (2 * len(phases)) for chat in plan) for k in range(kills)
    ]
    async with fresh_database("gamif_hook_kill") as dsn:
        deployment = await deploy(tmp_path, dsn, per_chat)
        try:
            load = asyncio.ensure_future(
                play(deployment.url, SECRET, plan, seed=seed, outcome=outcome, phases=phases)
            )
            phases[0].set()
            for kill in range(kills):
                while len(outcome.answered) < halfway[kill]:
                    assert not load.done(), load.exception()
                    await asyncio.wait({load}, timeout=0.01)
                instance = deployment.instances[kill % 2]
                await instance.kill()
                await instance.start()
                await instance.ready()
                phases[kill + 1].set()
            await load
        finally:
            codes = await tear_down(deployment)
        awards = await activity(dsn)
        checked = await check(dsn)
    assert codes == [0, 0], [i.log.read_text()[-3000:] for i in deployment.instances]
    verify(awards, plan, outcome, POINTS * ((per_chat + 1) // 2))
    assert checked == 0
    failed = sum(n for status, n in outcome.statuses.items() if not 200 <= status < 300)
    show(
        f"webhook under SIGKILL: {chats} chats, {chats * per_chat} updates, {kills} kills"
        f" (one instance at a time, mid-load); {failed} deliveries failed and were retried"
        f" (answers {dict(sorted(outcome.statuses.items()))}); every update answered 2xx"
        " scored once"
    )


async def test_two_webhook_instances_score_each_update_once_in_chat_order(
    tmp_path: Path, show: Show
) -> None:
    await run_load(tmp_path, show, chats=1000, per_chat=3, seed=15)


async def test_two_webhook_instances_under_sigkill_lose_and_double_nothing(
    tmp_path: Path, show: Show
) -> None:
    await run_load_under_kill(tmp_path, show, chats=1000, per_chat=3, seed=16, kills=3)


@pytest.mark.soak
async def test_soak_a_thousand_chats_through_two_webhook_instances(
    tmp_path: Path, show: Show
) -> None:
    await run_load(tmp_path, show, chats=1000, per_chat=6, seed=17)


@pytest.mark.soak
async def test_soak_a_thousand_chats_while_instances_are_killed(
    tmp_path: Path, show: Show
) -> None:
    await run_load_under_kill(tmp_path, show, chats=1000, per_chat=8, seed=18, kills=8)
