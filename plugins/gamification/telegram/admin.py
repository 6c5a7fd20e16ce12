"""Admin commands: award, deduct, revert, freeze, unfreeze, audit, integrity, gstats
(/language is in language.py)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiogram import Bot, Router
from aiogram.enums import ChatMemberStatus
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from plugins.gamification.domain.errors import (
    GamificationError,
    InsufficientBalanceError,
    TransientStorageError,
)
from plugins.gamification.domain.keys import admin_key
from plugins.gamification.domain.models import Receipt
from plugins.gamification.services.people import Person
from plugins.gamification.services.runtime import Services
from plugins.gamification.storage.records import AuditNote
from plugins.gamification.telegram.facts import GROUP_TYPES, replied_message
from plugins.gamification.telegram.i18n import (
    N_,
    _,
    chat_language,
    in_chat_language,
    num,
    refusal,
)
from plugins.gamification.telegram.parsing import (
    CommandSyntaxError,
    TargetSpec,
    split_args,
    take_amount,
    take_reason,
    take_target,
    take_tx_id,
)
from plugins.gamification.telegram.reports import gstats_text, report_text
from plugins.gamification.telegram.runtime import Runtime
from plugins.gamification.telegram.texts import cut_text, esc, history_text, name_getter, signed
from plugins.gamification.telegram.web import web_action

log = logging.getLogger(__name__)

# The menu's entries: their descriptions are translated for each language's menu.
ADMIN_COMMANDS = (
    ("award", N_("give points: <target> <amount> [reason]")),
    ("deduct", N_("take points: <target> <amount> [reason] [--force]")),
    ("revert", N_("undo a transaction: <tx_id> [reason]")),
    ("freeze", N_("stop someone earning: <target> [reason]")),
    ("unfreeze", N_("let someone earn again: <target>")),
    ("audit", N_("last 20 changes of <target> with actors")),
    ("language", N_("the language I speak in this chat: /language [code]")),
    ("integrity", N_("check the ledger now")),
    ("gstats", N_("points service statistics")),
    ("web", N_("chat pages: /web public on|off")),
)
# Commands that report on every chat the bot serves, not on the chat they are used in:
# only the bot's own admins ([bot] admin_ids) may run them, in any chat or in private.
SERVICE_WIDE = frozenset({"integrity", "gstats"})
ANONYMOUS_ADMIN_BOT = 1087968824
ADMIN_STATUSES = frozenset({ChatMemberStatus.CREATOR, ChatMemberStatus.ADMINISTRATOR})
ADMIN_CACHE_SIZE = 10_000


async def is_admin(bot: Bot, services: Services, chat_id: int, user_id: int) -> bool:
    """A configured admin (everywhere) or an administrator of this very chat."""
    if user_id in services.admin_ids:
        return True
    key = (chat_id, user_id)
    cached = services.admin_cache.get(key)
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1]
    try:
        member = await bot.get_chat_member(chat_id, user_id)
    except TelegramAPIError as exc:
        log.warning("cannot check admin rights of %s in %s: %s", user_id, chat_id, exc)
        return False
    verdict = member.status in ADMIN_STATUSES
    services.admin_cache[key] = (now + services.config.admin.admin_cache_seconds, verdict)
    services.admin_cache.move_to_end(key)
    if len(services.admin_cache) > ADMIN_CACHE_SIZE:
        services.admin_cache.popitem(last=False)
    return verdict


async def gate(message: Message, bot: Bot, services: Services, name: str) -> bool:
    """Reply with the refusal and return False unless an admin may run this here."""
    user = message.from_user
    if message.forward_origin is not None:
        await message.reply(_("Forwarded commands are not accepted."))
        return False
    if message.chat.type not in GROUP_TYPES and name not in SERVICE_WIDE:
        await message.reply(_("Use /{command} in the group it is about.").format(command=name))
        return False
    if user is None or message.sender_chat is not None or user.id == ANONYMOUS_ADMIN_BOT:
        await message.reply(
            _(
                "I can't tell who you are: admin commands need you to post as yourself,"
                " not anonymously or as a channel."
            )
        )
        return False
    if name in SERVICE_WIDE:
        if user.id in services.admin_ids:
            return True
        # A chat's own admins must not see (or, with /integrity, keep busy) what spans
        # every other chat.
        await message.reply(
            _("/{command} covers every chat, so only the bot's own admins can use it.").format(
                command=name
            )
        )
        return False
    if not await is_admin(bot, services, message.chat.id, user.id):
        await message.reply(_("Only admins of this chat can use /{command}.").format(command=name))
        return False
    return True


async def _resolve(message: Message, spec: TargetSpec, services: Services) -> Person:
    if spec.by_reply:
        target = replied_message(message)
        if target is None or target.from_user is None or target.sender_chat is not None:
            raise CommandSyntaxError(_("That message has no person to act on."))
        person = Person(
            target.from_user.id,
            target.from_user.username,
            target.from_user.full_name,
            target.from_user.is_bot,
        )
        services.people.remember(person)
    elif spec.username is not None:
        found = await services.people.find_username(spec.username)
        if found is None:
            raise CommandSyntaxError(
                _("I don't know @{username} yet: they need to write here first.").format(
                    username=spec.username
                )
            )
        person = found
    else:
        assert spec.user_id is not None
        found = await services.people.person(spec.user_id)
        if found is None:
            raise CommandSyntaxError(_("I have never seen user {id}.").format(id=spec.user_id))
        person = found
    if person.is_bot:
        raise CommandSyntaxError(_("Bots don't collect points."))
    return person


ServicesAction = Callable[[Message, list[str], Services], Awaitable[str]]
Action = Callable[[Message, list[str], Runtime], Awaitable[str]]


def _on_services(action: ServicesAction) -> Action:
    """Most actions need the services only."""

    async def run(message: Message, tokens: list[str], runtime: Runtime) -> str:
        return await action(message, tokens, runtime.services)

    return run


def admin_command(name: str, action: Action) -> Callable[..., Awaitable[None]]:
    """Wrap an action with the admin gate and turn every expected error into one sentence."""

    async def handler(
        message: Message, command: CommandObject, bot: Bot, gamification_runtime: Runtime
    ) -> None:
        if not await gate(message, bot, gamification_runtime.services, name):
            return
        try:
            reply = await action(message, split_args(command.args), gamification_runtime)
        except TransientStorageError:
            # Retried to the bound: no reply now; the host delivers the command again
            # (`retry_update`) and the admin gets one answer when it is recorded.
            raise
        except CommandSyntaxError as exc:
            reply = esc(str(exc))
        except GamificationError as exc:
            reply = esc(refusal(exc))
        await message.reply(cut_text(reply))

    handler.__name__ = f"{name}_command"
    return handler


async def _log(message: Message, services: Services, phrase: Callable[[], str]) -> None:
    """Post to the admin log chat, phrased (by `phrase`) in that chat's language."""
    chat_id = services.admin_log_chat_id
    if chat_id is None:
        return
    title = esc(message.chat.title or str(message.chat.id))
    bot = message.bot
    if bot is None:
        return
    with in_chat_language(await chat_language(services.languages, chat_id)):
        text = phrase()
    try:
        await bot.send_message(chat_id, f"[{title}] {text}")
    except TelegramAPIError as exc:
        log.warning("could not post to the admin log chat %s: %s", chat_id, exc)


FORCE = "--force"


async def _change(message: Message, tokens: list[str], services: Services, sign: int) -> str:
    name = "award" if sign > 0 else "deduct"
    usage = _("/{command} @username {amount} reason").format(
        command=name, amount=50 if sign > 0 else 20
    )
    force = any(t.lower() == FORCE for t in tokens)
    if force:
        if sign > 0:
            raise CommandSyntaxError(
                _("{force} is for /deduct only: an award never overdraws.").format(force=FORCE)
            )
        tokens = [t for t in tokens if t.lower() != FORCE]
    has_reply = replied_message(message) is not None
    spec, rest = take_target(tokens, has_reply, usage)
    amount, rest = take_amount(rest, services.config.admin.max_grant, usage)
    reason = take_reason(rest)
    person = await _resolve(message, spec, services)
    admin = message.from_user
    assert admin is not None
    key = admin_key(message.chat.id, message.message_id)
    engine = services.engine
    receipt: Receipt
    delta = amount if sign > 0 else -amount
    try:
        # The audit row commits with the change itself, or neither does. Below zero only
        # when the chat's policy allows it or the admin said --force.
        receipt = await services.retry(
            engine.adjust,
            message.chat.id, person.user_id, delta, key=key, actor_id=admin.id, reason=reason,
            force=force, audit=AuditNote(name, f"{delta} {reason}"),
        )  # fmt: skip
    except InsufficientBalanceError:
        return await _overdraft_refused(message, services, person, amount)
    tx = receipt.transaction
    # Read back rather than receipt.balance: an achievement this change unlocked (or
    # revoked) moved the balance again in the same commit.
    balance = (await engine.balance(message.chat.id, person.user_id)).balance

    def summary() -> str:
        head = f"{esc(person.full_name)} {signed(tx.amount)} (#{tx.id})"
        if reason:
            head += f": {esc(reason)}"
        if balance < 0:
            text = _("{change}. Balance {balance}, below zero.")
        else:
            text = _("{change}. Balance {balance}.")
        return text.format(change=head, balance=num(balance))

    if not receipt.duplicate:
        await _log(message, services, lambda: f"{esc(admin.full_name)} {name}: {summary()}")
    return summary()


async def _overdraft_refused(
    message: Message, services: Services, person: Person, amount: int
) -> str:
    """One sentence: the balance, what the deduction would leave, and how to force it."""
    balance = (await services.engine.balance(message.chat.id, person.user_id)).balance
    command = " ".join((message.text or message.caption or "/deduct").split())
    return _(
        "Not deducted: {name} has {balance}, and taking {amount} would leave {rest}, below"
        " zero. To deduct anyway: {command} {force}"
    ).format(
        name=esc(person.full_name),
        balance=num(balance),
        amount=num(amount),
        rest=num(balance - amount),
        command=esc(command),
        force=FORCE,
    )


async def _award(message: Message, tokens: list[str], services: Services) -> str:
    return await _change(message, tokens, services, +1)


async def _deduct(message: Message, tokens: list[str], services: Services) -> str:
    return await _change(message, tokens, services, -1)


async def _revert(message: Message, tokens: list[str], services: Services) -> str:
    tx_id, rest = take_tx_id(tokens, _("/revert 123 reason"))
    reason = take_reason(rest)
    admin = message.from_user
    assert admin is not None
    receipt = await services.retry(
        services.engine.revert,
        tx_id,
        key=admin_key(message.chat.id, message.message_id),
        actor_id=admin.id,
        reason=reason,
        chat_id=message.chat.id,
        audit=AuditNote("revert", f"#{tx_id} {reason}"),
    )
    tx = receipt.transaction
    who = esc(await name_getter(services)(tx.user_id))
    balance = (await services.engine.balance(tx.chat_id, tx.user_id)).balance

    def summary() -> str:
        return _(
            "Reverted #{tx_id} with #{revert_id}: {name} {change}. Balance {balance}."
        ).format(
            tx_id=tx_id, revert_id=tx.id, name=who, change=signed(tx.amount), balance=num(balance)
        )

    if not receipt.duplicate:
        await _log(message, services, lambda: f"{esc(admin.full_name)} revert: {summary()}")
    return summary()


async def _freeze(message: Message, tokens: list[str], services: Services) -> str:
    spec, rest = take_target(tokens, replied_message(message) is not None, _("/freeze @username"))
    reason = take_reason(rest)
    person = await _resolve(message, spec, services)
    admin = message.from_user
    assert admin is not None
    if not await services.moderation.freeze(
        message.chat.id, person.user_id, admin.id, reason, audit=True
    ):
        return _("{name} is already frozen here.").format(name=esc(person.full_name))

    def summary() -> str:
        return _("{name} is frozen here and earns nothing until /unfreeze.").format(
            name=esc(person.full_name)
        )

    await _log(
        message, services, lambda: f"{esc(admin.full_name)} freeze: {summary()} {esc(reason)}"
    )
    return summary()


async def _unfreeze(message: Message, tokens: list[str], services: Services) -> str:
    spec, _rest = take_target(
        tokens, replied_message(message) is not None, _("/unfreeze @username")
    )
    person = await _resolve(message, spec, services)
    admin = message.from_user
    assert admin is not None
    if not await services.moderation.unfreeze(message.chat.id, person.user_id, admin.id):
        return _("{name} was not frozen here.").format(name=esc(person.full_name))

    def summary() -> str:
        return _("{name} can earn points here again.").format(name=esc(person.full_name))

    await _log(message, services, lambda: f"{esc(admin.full_name)} unfreeze: {summary()}")
    return summary()


async def _audit(message: Message, tokens: list[str], services: Services) -> str:
    spec, _rest = take_target(tokens, replied_message(message) is not None, _("/audit @username"))
    person = await _resolve(message, spec, services)
    rows = await services.engine.history(message.chat.id, person.user_id, 20)
    name_of = name_getter(services)
    actors = [
        (await name_of(tx.actor_id)) if tx.actor_id is not None else _("system") for tx in rows
    ]
    if services.moderation.is_frozen(message.chat.id, person.user_id):
        title = _("<b>Audit of {name} (frozen)</b>")
    else:
        title = _("<b>Audit of {name}</b>")
    return history_text(title.format(name=esc(person.full_name)), rows, actors)


async def _integrity(message: Message, tokens: list[str], services: Services) -> str:
    report = await services.engine.check()
    services.reports.record(report)
    return f"<pre>{esc(report_text(report))}</pre>"


async def _gstats(message: Message, tokens: list[str], runtime: Runtime) -> str:
    return gstats_text(runtime.figures())


def admin_router() -> Router:
    router = Router(name="gamification.admin")
    actions: dict[str, Action] = {
        "award": _on_services(_award),
        "deduct": _on_services(_deduct),
        "revert": _on_services(_revert),
        "freeze": _on_services(_freeze),
        "unfreeze": _on_services(_unfreeze),
        "audit": _on_services(_audit),
        "integrity": _on_services(_integrity),
        "gstats": _gstats,
        "web": web_action,
    }
    for name, action in actions.items():
        router.message.register(admin_command(name, action), Command(name))
    return router
