"""Commands for everyone: /points, /top, /history, /achievements, /help and /start."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message

from plugins.gamification.domain.models import Period
from plugins.gamification.services.runtime import Services
from plugins.gamification.telegram.cards import card_data, streak_text
from plugins.gamification.telegram.facts import GROUP_TYPES, replied_message
from plugins.gamification.telegram.filters import InPrivate
from plugins.gamification.telegram.i18n import N_, _, ngettext, num
from plugins.gamification.telegram.runtime import Runtime
from plugins.gamification.telegram.texts import (
    cut,
    esc,
    history_text,
    leaderboard_text,
    name_getter,
)
from plugins.gamification.telegram.web import start_markup, web_markup

# The menu's entries: their descriptions are translated for each language's menu.
USER_COMMANDS = (
    ("points", N_("your points, rank and lifetime total here")),
    ("top", N_("leaderboard: /top day, week, month or all")),
    ("history", N_("your last 10 point changes")),
    ("achievements", N_("your achievements and progress")),
    ("help", N_("how points work")),
)

# Achievements a rank card names, newest first.
LATEST_ACHIEVEMENTS = 3

GROUP_ONLY = N_("Points are kept per group: send this command in the group.")


def group_only() -> str:
    return _(GROUP_ONLY)


def help_text() -> str:
    return "\n".join(
        [
            _("<b>How points work</b>"),
            _(
                "You earn points for taking part in this group: messages and media count,"
                " with a cooldown between scored messages and a daily cap. Reply to"
                " someone's message with “thanks” or “+” to give them points."
            ),
            "",
            _("/points: your balance, rank and lifetime total (as a reply: theirs)"),
            _("/top [day|week|month|all]: the leaderboard (default: this week)"),
            _("/history: your last 10 point changes and why"),
            _("/achievements: what you unlocked and how far you are from the rest"),
        ]
    )


def admin_help_text() -> str:
    return "\n\n" + "\n".join(
        [
            _("<b>Admins</b>"),
            _(
                "/award, /deduct &lt;target&gt; &lt;amount&gt; [reason]; /revert &lt;tx&gt;"
                " [reason]; /freeze, /unfreeze, /audit &lt;target&gt;; /language [code]."
            ),
            _("/deduct refuses to go below zero unless you add --force."),
            _("A target is a reply to the person's message, an @username or a numeric id."),
            _("The bot's own admins also have /integrity and /gstats, which cover every chat."),
            _(
                "Reactions count as engagement only when I am an admin of the chat (Telegram"
                " sends reactions to admins only)."
            ),
        ]
    )


def privacy_hint() -> str:
    return "\n\n" + _(
        "⚠️ I have not seen any ordinary message here yet. To score activity I must see"
        " messages: turn privacy mode off with @BotFather (/setprivacy) or make me an admin."
    )


async def start_command(
    message: Message, command: CommandObject, gamification_runtime: Runtime
) -> None:
    markup = start_markup(command.args, gamification_runtime)
    if markup is not None:  # from a group's button: that chat's pages, as a Mini App
        await message.answer(
            _("Tap the button to open the chat's leaderboard."), reply_markup=markup
        )
        return
    greeting = _(
        "Hi! I keep score of activity in groups. Add me to a group (with privacy mode off)"
        " and members earn points for taking part."
    )
    await message.answer(f"{greeting}\n\n{help_text()}")


async def help_command(message: Message, gamification: Services) -> None:
    text = help_text()
    user = message.from_user
    if user is not None and message.chat.type in GROUP_TYPES:
        from plugins.gamification.telegram.admin import is_admin

        bot = message.bot
        if bot is not None and await is_admin(bot, gamification, message.chat.id, user.id):
            text += admin_help_text()
            if gamification.stats.messages_seen[message.chat.id] == 0:
                text += privacy_hint()
    await message.reply(text)


async def points_command(
    message: Message, gamification: Services, gamification_runtime: Runtime
) -> None:
    user = message.from_user
    if user is None or message.chat.type not in GROUP_TYPES:
        await message.reply(group_only())
        return
    # As a reply to someone's message: their points.
    target = replied_message(message)
    person = target.from_user if target is not None and target.sender_chat is None else None
    if person is not None and not person.is_bot:
        user = person
    engine = gamification.engine
    account = await engine.balance(message.chat.id, user.id)
    standing = await engine.standing(message.chat.id, user.id, Period.ALL)
    progress = await engine.progress(message.chat.id, user.id)
    rank = _("rank #{rank}").format(rank=num(standing.rank)) if standing else _("no rank yet")
    balance = ngettext("<b>{points}</b> point", "<b>{points}</b> points", account.balance).format(
        points=num(account.balance)
    )
    first = _("{name}: {balance} ({rank}), {earned} earned in all.").format(
        name=esc(user.full_name), balance=balance, rank=rank, earned=num(account.earned)
    )
    streak = streak_text(progress.streak)
    second = _("Level {level} ({to_go} to level {next}), streak {streak} (best {best}).").format(
        level=num(progress.level),
        to_go=num(progress.next_level_at - progress.earned),
        next=num(progress.level + 1),
        streak=streak,
        best=num(progress.best_streak),
    )
    text = f"{first}\n{second}"
    markup = await web_markup(message, gamification_runtime)
    cards = gamification_runtime.cards
    if cards is None:
        await message.reply(text, reply_markup=markup)
        return
    titles = {spec.id: spec.title for spec in gamification.config.progress.achievements}
    newest = sorted(progress.unlocked.items(), key=lambda item: item[1], reverse=True)
    achievements = tuple(titles.get(key, key) for key, _at in newest[:LATEST_ACHIEVEMENTS])
    data = card_data(
        user.id,
        user.full_name,
        account.balance,
        standing.rank if standing else None,
        progress,
        achievements,
    )
    await cards.reply(message, data, text, markup)


async def achievements_command(message: Message, gamification: Services) -> None:
    user = message.from_user
    if user is None or message.chat.type not in GROUP_TYPES:
        await message.reply(group_only())
        return
    progress = await gamification.engine.progress(message.chat.id, user.id)
    specs = gamification.config.progress.achievements
    if not specs:
        await message.reply(_("There are no achievements in this chat."))
        return
    lines = [_("<b>Achievements of {name}</b>").format(name=esc(user.full_name))]
    hidden = 0
    for spec in specs:
        if spec.id in progress.unlocked:
            lines.append(f"✅ <b>{esc(spec.title)}</b>: {esc(spec.description)}")
        elif spec.hidden:
            hidden += 1
        else:
            value = min(progress.value_of(spec.condition), spec.condition.at_least)
            lines.append(
                f"▫️ {esc(spec.title)}: {esc(spec.description)}"
                f" ({num(value)}/{num(spec.condition.at_least)})"
            )
    if hidden:
        lines.append(
            ngettext(
                "…and {count} hidden, revealed when unlocked.",
                "…and {count} hidden, revealed when unlocked.",
                hidden,
            ).format(count=num(hidden))
        )
    await message.reply(cut("\n".join(lines), marker=_("… (cut)")))


async def top_command(
    message: Message,
    command: CommandObject,
    gamification: Services,
    gamification_runtime: Runtime,
) -> None:
    if message.chat.type not in GROUP_TYPES:
        await message.reply(group_only())
        return
    arg = (command.args or "week").strip().lower()
    try:
        period = Period(arg)
    except ValueError:
        await message.reply(_("Use /top day, /top week, /top month or /top all."))
        return
    engine = gamification.engine
    board = await engine.leaderboard(message.chat.id, period, 10)
    caller_id = message.from_user.id if message.from_user else 0
    caller = await engine.standing(message.chat.id, caller_id, period) if caller_id else None
    await message.reply(
        await leaderboard_text(board, caller, caller_id, name_getter(gamification)),
        reply_markup=await web_markup(message, gamification_runtime),
    )


async def history_command(message: Message, gamification: Services) -> None:
    user = message.from_user
    if user is None or message.chat.type not in GROUP_TYPES:
        await message.reply(group_only())
        return
    rows = await gamification.engine.history(message.chat.id, user.id, 10)
    title = ngettext(
        "<b>Last {count} change for {name}</b>",
        "<b>Last {count} changes for {name}</b>",
        len(rows),
    ).format(count=num(len(rows)), name=esc(user.full_name))
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
