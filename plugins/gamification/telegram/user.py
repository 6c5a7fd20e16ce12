"""Commands for everyone: /points, /top, /history, /help and /start."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import BotCommand, Message

from plugins.gamification.domain.models import Period
from plugins.gamification.services.runtime import Services
from plugins.gamification.telegram.facts import GROUP_TYPES
from plugins.gamification.telegram.filters import InPrivate
from plugins.gamification.telegram.runtime import Runtime
from plugins.gamification.telegram.texts import cut, esc, history_text, leaderboard_text
from plugins.gamification.telegram.web import start_markup, web_markup

USER_COMMANDS = (
    BotCommand(command="points", description="your points, rank and lifetime total here"),
    BotCommand(command="top", description="leaderboard: /top day, week, month or all"),
    BotCommand(command="history", description="your last 10 point changes"),
    BotCommand(command="achievements", description="your achievements and progress"),
    BotCommand(command="help", description="how points work"),
)

GROUP_ONLY = "Points are kept per group: send this command in the group."
HELP = (
    "<b>How points work</b>\n"
    "You earn points for taking part in this group: messages and media count, with a"
    " cooldown between scored messages and a daily cap. Reply to someone's message with"
    " “thanks” or “+” to give them points.\n\n"
    "/points: your balance, rank and lifetime total\n"
    "/top [day|week|month|all]: the leaderboard (default: this week)\n"
    "/history: your last 10 point changes and why\n"
    "/achievements: what you unlocked and how far you are from the rest"
)
ADMIN_HELP = (
    "\n\n<b>Admins</b>\n"
    "/award, /deduct &lt;target&gt; &lt;amount&gt; [reason]; /revert &lt;tx&gt; [reason];"
    " /freeze, /unfreeze, /audit &lt;target&gt;.\n"
    "/deduct refuses to go below zero unless you add --force.\n"
    "A target is a reply to the person's message, an @username or a numeric id.\n"
    "The bot's own admins also have /integrity and /gstats, which cover every chat.\n"
    "Reactions count as engagement only when I am an admin of the chat (Telegram sends"
    " reactions to admins only)."
)
PRIVACY_HINT = (
    "\n\n⚠️ I have not seen any ordinary message here yet. To score activity I must see"
    " messages: turn privacy mode off with @BotFather (/setprivacy) or make me an admin."
)


async def start_command(
    message: Message, command: CommandObject, gamification_runtime: Runtime
) -> None:
    markup = start_markup(command.args, gamification_runtime)
    if markup is not None:  # from a group's button: that chat's pages, as a Mini App
        await message.answer("Tap the button to open the chat's leaderboard.", reply_markup=markup)
        return
    await message.answer(
        "Hi! I keep score of activity in groups. Add me to a group (with privacy mode off)"
        " and members earn points for taking part.\n\n" + HELP
    )


async def help_command(message: Message, gamification: Services) -> None:
    text = HELP
    user = message.from_user
    if user is not None and message.chat.type in GROUP_TYPES:
        from plugins.gamification.telegram.admin import is_admin

        bot = message.bot
        if bot is not None and await is_admin(bot, gamification, message.chat.id, user.id):
            text += ADMIN_HELP
            if gamification.stats.messages_seen[message.chat.id] == 0:
                text += PRIVACY_HINT
    await message.reply(text)


async def points_command(
    message: Message, gamification: Services, gamification_runtime: Runtime
) -> None:
    user = message.from_user
    if user is None or message.chat.type not in GROUP_TYPES:
        await message.reply(GROUP_ONLY)
        return
    engine = gamification.engine
    account = await engine.balance(message.chat.id, user.id)
    standing = await engine.standing(message.chat.id, user.id, Period.ALL)
    progress = await engine.progress(message.chat.id, user.id)
    rank = f"rank #{standing.rank}" if standing else "no rank yet"
    to_go = progress.next_level_at - progress.earned
    streak = f"{progress.streak} day" + ("" if progress.streak == 1 else "s")
    await message.reply(
        f"{esc(user.full_name)}: <b>{account.balance}</b> points ({rank}),"
        f" {account.earned} earned in all.\n"
        f"Level {progress.level} ({to_go} to level {progress.level + 1}),"
        f" streak {streak} (best {progress.best_streak}).",
        reply_markup=await web_markup(message, gamification_runtime),
    )


async def achievements_command(message: Message, gamification: Services) -> None:
    user = message.from_user
    if user is None or message.chat.type not in GROUP_TYPES:
        await message.reply(GROUP_ONLY)
        return
    progress = await gamification.engine.progress(message.chat.id, user.id)
    specs = gamification.config.progress.achievements
    if not specs:
        await message.reply("There are no achievements in this chat.")
        return
    lines = [f"<b>Achievements of {esc(user.full_name)}</b>"]
    hidden = 0
    for spec in specs:
        if spec.id in progress.unlocked:
            lines.append(f"✅ <b>{esc(spec.title)}</b>: {esc(spec.description)}")
        elif spec.hidden:
            hidden += 1
        else:
            value = min(progress.value_of(spec.condition), spec.condition.at_least)
            lines.append(
                f"▫️ {esc(spec.title)}: {esc(spec.description)} ({value}/{spec.condition.at_least})"
            )
    if hidden:
        lines.append(f"…and {hidden} hidden, revealed when unlocked.")
    await message.reply(cut("\n".join(lines)))


async def top_command(
    message: Message,
    command: CommandObject,
    gamification: Services,
    gamification_runtime: Runtime,
) -> None:
    if message.chat.type not in GROUP_TYPES:
        await message.reply(GROUP_ONLY)
        return
    arg = (command.args or "week").strip().lower()
    try:
        period = Period(arg)
    except ValueError:
        await message.reply("Use /top day, /top week, /top month or /top all.")
        return
    engine = gamification.engine
    board = await engine.leaderboard(message.chat.id, period, 10)
    caller_id = message.from_user.id if message.from_user else 0
    caller = await engine.standing(message.chat.id, caller_id, period) if caller_id else None
    await message.reply(
        await leaderboard_text(board, caller, caller_id, gamification.people.name_of),
        reply_markup=await web_markup(message, gamification_runtime),
    )


async def history_command(message: Message, gamification: Services) -> None:
    user = message.from_user
    if user is None or message.chat.type not in GROUP_TYPES:
        await message.reply(GROUP_ONLY)
        return
    rows = await gamification.engine.history(message.chat.id, user.id, 10)
    title = f"<b>Last {len(rows)} changes for {esc(user.full_name)}</b>"
    await message.reply(history_text(title, rows, [""] * len(rows)))


def user_router() -> Router:
    router = Router(name="gamification.user")
    router.message.register(start_command, CommandStart(), InPrivate())
    router.message.register(help_command, Command("help"))
    router.message.register(points_command, Command("points"))
    router.message.register(top_command, Command("top"))
    router.message.register(history_command, Command("history"))
    router.message.register(achievements_command, Command("achievements"))
    return router
