"""Who may run admin commands; the bot token never reaches a log; SQL only with parameters.

Every admin command is tried by everyone who must not run it: a member, an admin of another
chat, an edited or forwarded message, the anonymous group admin, and a private chat. Each is
refused with one sentence (or ignored, when edited) and nothing is written.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.__main__ import main as cli_main
from bot.app import build_app
from bot.config import ConfigError, load_config
from bot.errors import SORRY
from bot.registry import default_registry
from bot.testing import UpdateFactory
from plugins.gamification import FakeClock
from plugins.gamification.telegram.jobs import integrity_job
from tests.gamification.conftest import MakeHarness
from tests.support.fake_bot_api import FakeBotAPI
from tests.support.telegram_harness import (
    ANONYMOUS_ADMIN,
    START,
    TelegramHarness,
    assert_telegram_html,
    make_config,
)

ROOT = Path(__file__).resolve().parents[2]
CHAT_ID, OTHER_ID, LOG_ID = -100, -200, -999
CHAT = UpdateFactory.group(CHAT_ID, "Club")
OTHER = UpdateFactory.group(OTHER_ID, "Other")
ALICE = UpdateFactory.user(1, "Alice", "alice")
BOB = UpdateFactory.user(2, "Bob", "bob")
CAROL = UpdateFactory.user(3, "Carol", "carol")
MOD = UpdateFactory.user(9, "Mod", "mod")
OTHER_MOD = UpdateFactory.user(55, "Other Mod", "other_mod")
FORWARDED_FROM = {"type": "user", "date": 1_700_000_000, "sender_user": MOD}

ADMIN_COMMANDS = (
    "award", "deduct", "revert", "freeze", "unfreeze", "audit", "integrity", "gstats",
)  # fmt: skip
MUTATING = frozenset({"award", "deduct", "revert", "freeze", "unfreeze"})
ANONYMOUS = (
    "I can't tell who you are: admin commands need you to post as yourself,"
    " not anonymously or as a channel."
)


# /integrity and /gstats cover every chat: only the bot's own admins ([bot] admin_ids).
SERVICE_WIDE = frozenset({"integrity", "gstats"})
OWNER = UpdateFactory.user(77, "Owner", "owner")


def service_wide(name: str) -> str:
    return f"/{name} covers every chat, so only the bot's own admins can use it."


def not_admin(name: str) -> str:
    if name in SERVICE_WIDE:
        return service_wide(name)
    return f"Only admins of this chat can use /{name}."


def group_only(name: str) -> str:
    if name in SERVICE_WIDE:
        return service_wide(name)
    return f"Use /{name} in the group it is about."


# Each scenario: (who sends, where, extra message fields, the exact reply; None: silence).
SCENARIOS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any], Any]] = {
    "non_admin": (ALICE, CHAT, {}, not_admin),
    "admin_of_another_chat": (MOD, OTHER, {}, not_admin),
    "edited": (MOD, CHAT, {"edited": True}, None),
    "forwarded": (
        MOD,
        CHAT,
        {"forward_origin": FORWARDED_FROM},
        lambda _: "Forwarded commands are not accepted.",
    ),
    "anonymous_admin": (ANONYMOUS_ADMIN, CHAT, {"sender_chat": CHAT}, lambda _: ANONYMOUS),
    "private_chat": (
        MOD,
        UpdateFactory.private(MOD),
        {},
        group_only,
    ),
}


def command_text(name: str, tx_id: int) -> str:
    """A command that would succeed (and write, when it writes) if the sender were allowed."""
    return {
        "award": "/award @bob 5 for help",
        "deduct": "/deduct @bob 5 spam",
        "revert": f"/revert {tx_id} wrong",
        "freeze": "/freeze @bob cheating",
        "unfreeze": "/unfreeze @carol",
        "audit": "/audit @bob",
        "integrity": "/integrity",
        "gstats": "/gstats",
    }[name]


def written(h: TelegramHarness) -> tuple[object, ...]:
    """Everything an admin command could write."""
    return (
        h.transactions(),
        h.rows("SELECT * FROM freezes ORDER BY chat_id, user_id"),
        h.rows("SELECT * FROM admin_actions ORDER BY id"),
        h.rows("SELECT COUNT(*) FROM checkpoints"),
        h.rows("SELECT COUNT(*) FROM suspicions"),
    )


async def seeded(make_harness: MakeHarness) -> tuple[TelegramHarness, dict[int, int]]:
    """Both chats know Bob and Carol; Bob has an admin award to revert, Carol is frozen.

    Mod administers CHAT, Other Mod administers OTHER; the anonymous admin bot is listed as
    an administrator too, the hardest case for telling it apart.
    """
    h = await make_harness(
        admins={CHAT_ID: {9, ANONYMOUS_ADMIN["id"]}, OTHER_ID: {55}},
        admin_ids=[OWNER["id"]],
        admin_log_chat_id=LOG_ID,
        gamification={"activity": {"points": {"text": 10}}},
    )
    awards: dict[int, int] = {}
    for chat, admin in ((CHAT, MOD), (OTHER, OTHER_MOD)):
        await h.say(chat, BOB, "has anyone tried the new release yet?")
        await h.say(chat, CAROL, "the weather here is grey and rainy")
        await h.say(chat, admin, "/award @bob 10 seed")
        await h.say(chat, admin, "/freeze @carol seed")
        awards[int(chat["id"])] = int(
            h.rows(
                "SELECT MAX(id) FROM transactions WHERE chat_id = ? AND kind = 'admin'",
                (chat["id"],),
            )[0][0]
        )
    h.clock.advance(61)
    h.session.clear()
    return h, awards


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("name", ADMIN_COMMANDS)
async def test_admin_command_by_the_wrong_sender_is_refused_and_writes_nothing(
    make_harness: MakeHarness, name: str, scenario: str
) -> None:
    user, chat, extra, expected = SCENARIOS[scenario]
    h, awards = await seeded(make_harness)
    tx_id = awards.get(int(chat["id"]), awards[CHAT_ID])
    if scenario == "admin_of_another_chat":
        # Mod's rights in CHAT are fresh in the admin cache: they must not carry over.
        await h.say(CHAT, MOD, "/audit @bob")
        assert not h.last_text().startswith("Only admins")
        h.session.clear()
    before = written(h)
    update = await h.say(chat, user, command_text(name, tx_id), **extra)
    assert written(h) == before
    if expected is None:
        assert h.session.calls == []
        return
    sent = h.session.sent
    assert [m.text for m in sent] == [expected(name)]
    message = update.message
    assert message is not None
    assert int(sent[0].chat_id) == message.chat.id
    assert sent[0].reply_parameters is not None
    assert sent[0].reply_parameters.message_id == message.message_id


@pytest.mark.parametrize("name", sorted(SERVICE_WIDE))
async def test_commands_covering_every_chat_are_refused_to_a_chats_own_admin(
    make_harness: MakeHarness, name: str
) -> None:
    """A chat's administrator runs everything about their chat, but not what reports on
    every chat: the ledger check and the service statistics."""
    h, _ = await seeded(make_harness)
    before = written(h)
    for chat in (CHAT, UpdateFactory.private(MOD)):
        await h.say(chat, MOD, f"/{name}")
        assert h.last_text() == service_wide(name)
    assert written(h) == before


@pytest.mark.parametrize("name", ADMIN_COMMANDS)
async def test_the_same_commands_work_for_the_chats_admin(
    make_harness: MakeHarness, name: str
) -> None:
    """The control: the refusals above are about the sender, not about the commands."""
    h, awards = await seeded(make_harness)
    before = written(h)
    sender = OWNER if name in SERVICE_WIDE else MOD
    await h.say(CHAT, sender, command_text(name, awards[CHAT_ID]))
    (reply,) = [m.text for m in h.session.sent if int(m.chat_id) == CHAT_ID]
    refusals = {
        not_admin(name),
        ANONYMOUS,
        "Forwarded commands are not accepted.",
        group_only(name),
        service_wide(name),
    }
    assert reply not in refusals
    assert (written(h) != before) == (name in MUTATING), reply


async def test_permission_matrix_figures(capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(
            f"\n[permissions] {len(ADMIN_COMMANDS)} admin commands x {len(SCENARIOS)} senders"
            f" = {len(ADMIN_COMMANDS) * len(SCENARIOS)} refusals checked"
            f" ({', '.join(SCENARIOS)}), {len(SERVICE_WIDE) * 2} refusals of commands covering"
            f" every chat to a chat's own admin, plus {len(ADMIN_COMMANDS)} admin controls"
        )


# -- the token never reaches a log --------------------------------------------------------

TOKEN = "7312345678:AAH4xQ-Zk9_Qw3rTyUiOpAsDfGhJkLzXcVb"
SECRET = TOKEN.split(":", 1)[1]
LOGGERS = (
    "",
    "aiogram",
    "aiogram.event",
    "aiogram.dispatcher",
    "aiogram.middlewares",
    "aiogram.webhook",
    "aiogram.scene",
    "aiohttp",
    "aiohttp.client",
    "aiosqlite",
    "apscheduler",
    "asyncio",
    "bot",
    "plugins",
)
# The local fake Bot API is Telegram's side: its access log shows request paths, token included.
SERVER_SIDE = ("aiohttp.access", "aiohttp.server", "aiohttp.web")


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def leaked(texts: list[str]) -> list[str]:
    return [t[:300] for t in texts if TOKEN in t or SECRET in t]


def log_texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every record as a handler would write it (traceback included), and its raw fields."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    texts = []
    for record in caplog.records:
        if record.name.startswith(SERVER_SIDE):
            continue
        texts.append(formatter.format(record))
        texts.append(repr(record.args))
        texts.append(repr(record.exc_info[1]) if record.exc_info else "")
        texts.append(repr({k: v for k, v in vars(record).items() if k != "exc_info"}))
    return texts


async def test_token_never_reaches_logs_or_chats_in_a_whole_session(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    debug_logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    h = TelegramHarness(
        tmp_path / "bot.sqlite3",
        admins={CHAT_ID: {9}},
        admin_ids=[OWNER["id"]],
        admin_log_chat_id=LOG_ID,
    )
    bot_settings = h.config.bot.model_copy(update={"token": SecretStr(TOKEN)})
    h.config = h.config.model_copy(update={"bot": bot_settings})
    await h.start()
    try:
        assert h.app.bot.token == TOKEN  # the session really runs with the configured token
        await h.say(CHAT, ALICE, "good morning everyone, coffee is ready")
        reply_to = await h.say(CHAT, BOB, "has anyone tried the new release yet?")
        assert reply_to.message is not None
        await h.say(CHAT, ALICE, "thanks", reply_to=reply_to.message.message_id)
        for user, text in (
            (ALICE, "/points"), (ALICE, "/top all"), (ALICE, "/history"), (ALICE, "/help"),
            (MOD, "/help"), (MOD, "/award @bob 40 welcome"), (MOD, "/deduct @alice 3 spam"),
            (MOD, "/revert 1"), (MOD, "/freeze @alice"), (MOD, "/unfreeze @alice"),
            (MOD, "/audit @bob"), (OWNER, "/integrity"), (OWNER, "/gstats"), (MOD, "/gstats"),
            (ALICE, "/award @alice 1000"), (MOD, "/award @nobody_here 5"),
        ):  # fmt: skip
            h.clock.advance(61)
            await h.say(CHAT, user, text)
        await h.say(UpdateFactory.private(ALICE), ALICE, "/start")
        await integrity_job(h.services, h.app.bot.send_message, LOG_ID)

        # Error paths: a handler that raises, and a reply Telegram refuses with a flood wait.
        async def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("the leaderboard is broken")

        monkeypatch.setattr(h.services.engine, "leaderboard", broken)
        await h.say(CHAT, ALICE, "/top")
        h.session.flood.append(7)
        await h.say(CHAT, BOB, "/points")
        await h.restart()
        await h.say(CHAT, BOB, "/points")
    finally:
        await h.close()
    # And a broken config file next to the token.
    config = tmp_path / "config.toml"
    config.write_text(f'[bot]\ntoken = "{TOKEN}"\nadmin_ids = "not a list"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config, plugin_models=default_registry().config_models(), environ={})
    logging.getLogger("bot").error("config: %s", caught.value)
    errors = [r for r in debug_logs.records if r.levelno >= logging.ERROR and r.exc_info]
    texts = log_texts(debug_logs)
    sent = [t for s in (*h.past_sessions, h.session) for t in s.texts()]
    assert SORRY in sent  # the error path really ran
    assert errors, "the forced handler exception was not logged"
    assert leaked(texts) == []
    assert leaked(sent) == []
    assert leaked([str(caught.value)]) == []
    for text in sent:
        assert_telegram_html(text)
    with capsys.disabled():
        print(
            f"\n[token] harness session: {len(debug_logs.records)} log records at DEBUG"
            f" ({len(errors)} errors with tracebacks), {len(sent)} messages sent;"
            f" token found {len(leaked(texts)) + len(leaked(sent))} times"
        )


async def test_token_never_reaches_logs_over_real_http(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    debug_logs: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same over aiohttp against a local Bot API, where the token is in every URL."""
    monkeypatch.chdir(tmp_path)
    api = FakeBotAPI(admins={CHAT_ID: {9}})
    url = await api.start()
    base = make_config(tmp_path / "bot.sqlite3")
    config = base.model_copy(
        update={"bot": base.bot.model_copy(update={"token": SecretStr(TOKEN), "api_server": url})}
    )
    clock = FakeClock(START)
    factory = UpdateFactory(now=lambda: clock.now().timestamp())
    app = await build_app(config, default_registry(), clock=clock)
    stopped = False
    try:
        for user, text in (
            (ALICE, "hello there, glad to be here"),
            (ALICE, "/points"),
            (MOD, "/award @alice 5"),
            (ALICE, "/award @alice 5"),
        ):
            clock.advance(61)
            await app.dispatcher.feed_update(app.bot, factory.message(CHAT, user, text))
        assert len(api.sent()) == 3
        await api.stop()
        stopped = True
        # Telegram unreachable: the reply fails, the errors handler logs it.
        await app.dispatcher.feed_update(app.bot, factory.message(CHAT, ALICE, "/points"))
    finally:
        await app.close()
        if not stopped:
            await api.stop()
    errors = [r for r in debug_logs.records if r.levelno >= logging.ERROR]
    assert errors, "the unreachable Bot API was not logged"
    texts = log_texts(debug_logs)
    assert leaked(texts) == []
    with capsys.disabled():
        print(
            f"\n[token] HTTP session: {len(api.calls)} Bot API calls with the token in the URL,"
            f" {len(debug_logs.records)} log records ({len(errors)} errors); token found"
            f" {len(leaked(texts))} times"
        )


# The token written where it does not belong: the error must still not repeat it.
MISPLACED = [
    pytest.param(f'[bot]\ntoken = "{TOKEN}"\nadmin_ids = "x"\n', id="other-key-wrong"),
    pytest.param(f'[bot]\ntoken = ["{TOKEN}"]\n', id="token-as-list"),
    pytest.param(f'[bot]\ntokn = "{TOKEN}"\n', id="typo-in-key"),
    pytest.param(f"[bot]\ntoken = {TOKEN}\n", id="unquoted"),
    pytest.param(f'[bot]\ntoken = "{TOKEN}\n', id="unterminated"),
    pytest.param(f'bot = "{TOKEN}"\n', id="section-as-string"),
    pytest.param(f'[[bot]]\ntoken = "{TOKEN}"\n', id="array-of-tables"),
    pytest.param(f'[bot]\ntoken = "{TOKEN}"\n[bot.token]\nx = 1\n', id="duplicate-key"),
]


@pytest.mark.parametrize("text", MISPLACED)
def test_config_errors_never_repeat_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(config, plugin_models=default_registry().config_models(), environ={})
    assert leaked([str(caught.value)]) == []
    # What an operator sees: `python -m bot run` prints the error and exits 2.
    assert cli_main(["--config", str(config), "run"]) == 2
    out, err = capsys.readouterr()
    assert "config.toml" in err
    assert leaked([out, err]) == []


# -- SQL only with parameters -------------------------------------------------------------

SQL_CALLS = frozenset(
    {"execute", "executemany", "executescript", "fetchall", "execute_fetchall", "execute_later"}
)
# PRAGMA takes no parameters, so these two cannot bind; each value is closed: an int from
# range(), and a Literal["NORMAL", "FULL", "EXTRA"] that the config model validates.
PRAGMA_EXCEPTIONS = frozenset(
    {
        (
            "plugins/gamification/storage/sqlite/schema.py",
            'f"PRAGMA user_version = {int(target)}"',
        ),
        (
            "plugins/gamification/storage/sqlite/store.py",
            'f"PRAGMA synchronous = {self._synchronous}"',
        ),
    }
)


def sources() -> list[Path]:
    return sorted(p for folder in ("plugins", "bot") for p in (ROOT / folder).rglob("*.py"))


def module_constants(trees: dict[Path, ast.Module]) -> dict[str, list[ast.expr]]:
    """Every module-level `NAME = value` in the scanned packages, by name."""
    found: dict[str, list[ast.expr]] = {}
    for tree in trees.values():
        for node in tree.body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found.setdefault(target.id, []).append(node.value)
            elif (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and node.value is not None
            ):
                found.setdefault(node.target.id, []).append(node.value)
    return found


def built_sql(node: ast.expr) -> str | None:
    """How an SQL argument is built, when it is built from pieces."""
    if isinstance(node, ast.JoinedStr):
        return "an f-string"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        return "%-formatting"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return "a concatenation"
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("format", "join", "replace")
    ):
        return f"str.{node.func.attr}()"
    return None


def plain(node: ast.expr) -> bool:
    if isinstance(node, ast.IfExp):
        return plain(node.body) and plain(node.orelse)
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)) or isinstance(
        node, ast.Name | ast.Attribute
    )


def local_assignments(function: ast.AST, name: str) -> list[ast.expr]:
    values: list[ast.expr] = []
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                values.append(node.value)
        elif (
            isinstance(node, ast.AnnAssign | ast.AugAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == name
            and node.value is not None
        ):
            values.append(node.value)
    return values


class SqlCallSites(ast.NodeVisitor):
    def __init__(self, path: str, source: str, constants: dict[str, list[ast.expr]]) -> None:
        self.path, self.source, self.constants = path, source, constants
        self.functions: list[ast.AST] = []
        self.checked: list[str] = []
        self.problems: list[str] = []
        self.excepted: list[str] = []

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.functions.append(node)
        self.generic_visit(node)
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        if not isinstance(node.func, ast.Attribute):
            return
        if node.func.attr in SQL_CALLS and node.args:
            self.check(node.args[0], node)
        elif node.func.attr == "execute_all":
            for arg in node.args:
                if isinstance(arg, ast.Tuple) and arg.elts:
                    self.check(arg.elts[0], node)

    def check(self, sql: ast.expr, call: ast.Call) -> None:
        where = f"{self.path}:{call.lineno}"
        text = ast.get_source_segment(self.source, sql) or ""
        self.checked.append(where)
        if (self.path, text) in PRAGMA_EXCEPTIONS:
            self.excepted.append(f"{where} {text}")
            return
        how = built_sql(sql)
        if how is not None or not plain(sql):
            self.problems.append(f"{where}: SQL built with {how or type(sql).__name__}: {text}")
            return
        name = sql.id if isinstance(sql, ast.Name) else None
        if isinstance(sql, ast.Attribute):
            name = sql.attr
        if name is None:
            return
        values = local_assignments(self.functions[-1], name) if self.functions else []
        if not values and name.isupper():
            values = self.constants.get(name, [])
        for value in values:
            how = built_sql(value)
            if how is not None or not plain(value):
                shown = ast.get_source_segment(self.source, value) or name
                self.problems.append(f"{where}: {name} is built with {how}: {shown[:80]}")


def test_sql_is_only_ever_run_with_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in sources()}
    constants = module_constants(trees)
    checked: list[str] = []
    problems: list[str] = []
    excepted: list[str] = []
    for path, tree in trees.items():
        relative = path.relative_to(ROOT).as_posix()
        visitor = SqlCallSites(relative, path.read_text(encoding="utf-8"), constants)
        visitor.visit(tree)
        checked += visitor.checked
        problems += visitor.problems
        excepted += visitor.excepted
    with capsys.disabled():
        print(
            f"\n[sql] {len(checked)} SQL call sites in {len(trees)} files checked;"
            f" {len(problems)} built from pieces; {len(excepted)} PRAGMA exceptions:"
        )
        for line in excepted:
            print(f"[sql]   {line}")
    assert problems == []
    assert len(excepted) == len(PRAGMA_EXCEPTIONS), "a PRAGMA exception is stale: remove it"
    assert len(checked) > 50


def test_the_sql_scan_catches_built_sql() -> None:
    """The scanner itself: each way of building SQL from pieces is caught."""
    bad = (
        "def f(conn, x):\n"
        "    conn.execute(f'SELECT {x}')\n"
        "    conn.execute('SELECT %s' % x)\n"
        "    conn.execute('SELECT ' + x)\n"
        "    conn.execute('SELECT {}'.format(x))\n"
        "    sql = 'SELECT ' + x\n"
        "    conn.execute(sql, ())\n"
        "    conn.executemany(QUERY, [])\n"
        "    conn.fetchall(make_sql(x))\n"
        "    conn.execute('SELECT ?', (x,))\n"
        "QUERY = f'SELECT {1}'\n"
    )
    tree = ast.parse(bad)
    visitor = SqlCallSites("bad.py", bad, module_constants({Path("bad.py"): tree}))
    visitor.visit(tree)
    assert len(visitor.checked) == 8
    assert len(visitor.problems) == 7, visitor.problems
