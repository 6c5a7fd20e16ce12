"""Admin commands: award, deduct, revert, freeze, unfreeze, audit, integrity, gstats."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiogram import Bot, Router
from aiogram.enums import ChatMemberStatus
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import BotCommand, Message

from plugins.gamification.domain.errors import (
    GamificationError,
    InsufficientBalanceError,
    TransientStorageError,
)
from plugins.gamification.domain.keys import admin_key
from plugins.gamification.domain.models import Receipt
from plugins.gamification.services.figures import QUANTILES, Figures
from plugins.gamification.services.people import Person
from plugins.gamification.services.runtime import Services
from plugins.gamification.storage.records import AuditNote
from plugins.gamification.telegram.facts import GROUP_TYPES, replied_message
from plugins.gamification.telegram.parsing import (
    CommandSyntaxError,
    TargetSpec,
    split_args,
    take_amount,
    take_reason,
    take_target,
    take_tx_id,
)
from plugins.gamification.telegram.runtime import Runtime
from plugins.gamification.telegram.texts import cut, esc, history_text, signed
from plugins.gamification.telegram.web import web_action

log = logging.getLogger(__name__)

ADMIN_COMMANDS = (
    BotCommand(command="award", description="give points: <target> <amount> [reason]"),
    BotCommand(command="deduct", description="take points: <target> <amount> [reason] [--force]"),
    BotCommand(command="revert", description="undo a transaction: <tx_id> [reason]"),
    BotCommand(command="freeze", description="stop someone earning: <target> [reason]"),
    BotCommand(command="unfreeze", description="let someone earn again: <target>"),
    BotCommand(command="audit", description="last 20 changes of <target> with actors"),
    BotCommand(command="integrity", description="check the ledger now"),
    BotCommand(command="gstats", description="points service statistics"),
    BotCommand(command="web", description="chat pages: /web public on|off"),
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


async def _gate(message: Message, bot: Bot, services: Services, name: str) -> bool:
    """Reply with the refusal and return False unless an admin may run this here."""
    user = message.from_user
    if message.forward_origin is not None:
        await message.reply("Forwarded commands are not accepted.")
        return False
    if message.chat.type not in GROUP_TYPES and name not in SERVICE_WIDE:
        await message.reply(f"Use /{name} in the group it is about.")
        return False
    if user is None or message.sender_chat is not None or user.id == ANONYMOUS_ADMIN_BOT:
        await message.reply(
            "I can't tell who you are: admin commands need you to post as yourself,"
            " not anonymously or as a channel."
        )
        return False
    if name in SERVICE_WIDE:
        if user.id in services.admin_ids:
            return True
        # A chat's own admins must not see (or, with /integrity, keep busy) what spans
        # every other chat.
        await message.reply(f"/{name} covers every chat, so only the bot's own admins can use it.")
        return False
    if not await is_admin(bot, services, message.chat.id, user.id):
        await message.reply(f"Only admins of this chat can use /{name}.")
        return False
    return True


async def _resolve(message: Message, spec: TargetSpec, services: Services) -> Person:
    if spec.by_reply:
        target = replied_message(message)
        if target is None or target.from_user is None or target.sender_chat is not None:
            raise CommandSyntaxError("That message has no person to act on.")
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
                f"I don't know @{spec.username} yet: they need to write here first."
            )
        person = found
    else:
        assert spec.user_id is not None
        found = await services.people.person(spec.user_id)
        if found is None:
            raise CommandSyntaxError(f"I have never seen user {spec.user_id}.")
        person = found
    if person.is_bot:
        raise CommandSyntaxError("Bots don't collect points.")
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
        if not await _gate(message, bot, gamification_runtime.services, name):
            return
        try:
            reply = await action(message, split_args(command.args), gamification_runtime)
        except TransientStorageError:
            # Retried to the bound: no reply now; the host delivers the command again
            # (`retry_update`) and the admin gets one answer when it is recorded.
            raise
        except (CommandSyntaxError, GamificationError) as exc:
            reply = esc(str(exc))
        await message.reply(cut(reply))

    handler.__name__ = f"{name}_command"
    return handler


async def _log(message: Message, services: Services, text: str) -> None:
    chat_id = services.admin_log_chat_id
    if chat_id is None:
        return
    title = esc(message.chat.title or str(message.chat.id))
    bot = message.bot
    if bot is None:
        return
    try:
        await bot.send_message(chat_id, f"[{title}] {text}")
    except TelegramAPIError as exc:
        log.warning("could not post to the admin log chat %s: %s", chat_id, exc)


FORCE = "--force"


async def _change(message: Message, tokens: list[str], services: Services, sign: int) -> str:
    name = "award" if sign > 0 else "deduct"
    usage = f"/{name} @username {'50' if sign > 0 else '20'} reason"
    force = any(t.lower() == FORCE for t in tokens)
    if force:
        if sign > 0:
            raise CommandSyntaxError(f"{FORCE} is for /deduct only: an award never overdraws.")
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
    summary = (
        f"{esc(person.full_name)} {signed(tx.amount)} (#{tx.id})"
        + (f": {esc(reason)}" if reason else "")
        + (f". Balance {balance}, below zero." if balance < 0 else f". Balance {balance}.")
    )
    if not receipt.duplicate:
        await _log(message, services, f"{esc(admin.full_name)} {name}: {summary}")
    return summary


async def _overdraft_refused(
    message: Message, services: Services, person: Person, amount: int
) -> str:
    """One sentence: the balance, what the deduction would leave, and how to force it."""
    balance = (await services.engine.balance(message.chat.id, person.user_id)).balance
    command = " ".join((message.text or message.caption or "/deduct").split())
    return (
        f"Not deducted: {esc(person.full_name)} has {balance}, and taking {amount} would leave"
        f" {balance - amount}, below zero. To deduct anyway: {esc(command)} {FORCE}"
    )


async def _award(message: Message, tokens: list[str], services: Services) -> str:
    return await _change(message, tokens, services, +1)


async def _deduct(message: Message, tokens: list[str], services: Services) -> str:
    return await _change(message, tokens, services, -1)


async def _revert(message: Message, tokens: list[str], services: Services) -> str:
    tx_id, rest = take_tx_id(tokens, "/revert 123 reason")
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
    who = esc(await services.people.name_of(tx.user_id))
    balance = (await services.engine.balance(tx.chat_id, tx.user_id)).balance
    summary = f"Reverted #{tx_id} with #{tx.id}: {who} {signed(tx.amount)}. Balance {balance}."
    if not receipt.duplicate:
        await _log(message, services, f"{esc(admin.full_name)} revert: {summary}")
    return summary


async def _freeze(message: Message, tokens: list[str], services: Services) -> str:
    spec, rest = take_target(tokens, replied_message(message) is not None, "/freeze @username")
    reason = take_reason(rest)
    person = await _resolve(message, spec, services)
    admin = message.from_user
    assert admin is not None
    if not await services.moderation.freeze(
        message.chat.id, person.user_id, admin.id, reason, audit=True
    ):
        return f"{esc(person.full_name)} is already frozen here."
    summary = f"{esc(person.full_name)} is frozen here and earns nothing until /unfreeze."
    await _log(message, services, f"{esc(admin.full_name)} freeze: {summary} {esc(reason)}")
    return summary


async def _unfreeze(message: Message, tokens: list[str], services: Services) -> str:
    spec, _ = take_target(tokens, replied_message(message) is not None, "/unfreeze @username")
    person = await _resolve(message, spec, services)
    admin = message.from_user
    assert admin is not None
    if not await services.moderation.unfreeze(message.chat.id, person.user_id, admin.id):
        return f"{esc(person.full_name)} was not frozen here."
    summary = f"{esc(person.full_name)} can earn points here again."
    await _log(message, services, f"{esc(admin.full_name)} unfreeze: {summary}")
    return summary


async def _audit(message: Message, tokens: list[str], services: Services) -> str:
    spec, _ = take_target(tokens, replied_message(message) is not None, "/audit @username")
    person = await _resolve(message, spec, services)
    rows = await services.engine.history(message.chat.id, person.user_id, 20)
    actors = [
        (await services.people.name_of(tx.actor_id)) if tx.actor_id is not None else "system"
        for tx in rows
    ]
    frozen = " (frozen)" if services.moderation.is_frozen(message.chat.id, person.user_id) else ""
    title = f"<b>Audit of {esc(person.full_name)}{frozen}</b>"
    return history_text(title, rows, actors)


async def _integrity(message: Message, tokens: list[str], services: Services) -> str:
    report = await services.engine.check()
    services.reports.record(report)
    return f"<pre>{esc(report.to_text())}</pre>"


async def _gstats(message: Message, tokens: list[str], runtime: Runtime) -> str:
    f = runtime.figures()
    refusals = ", ".join(f"{k} {v}" for k, v in f.refusals.most_common()) or "none"
    p50, p95, p99 = (f.latency_ms[q] for q in QUANTILES)
    return (
        "<b>Points service</b>\n"
        f"Awards: {f.awards} ({f.points} points), repeats ignored: {f.duplicates}\n"
        f"Refused: {refusals}\n"
        f"Award latency: p50 {p50:.2f} ms, p95 {p95:.2f} ms, p99 {p99:.2f} ms\n"
        f"Writer: queue {f.queue_depth}, {f.writer_batches} batches,"
        f" largest {f.writer_largest_batch}"
        + _anti_abuse_line(f)
        + _bus_line(f)
        + _integrity_line(f)
    )


def _anti_abuse_line(f: Figures) -> str:
    if f.anti_abuse_backend == "memory":
        return ""
    where = "shared in Redis" if f.anti_abuse_active == "redis" else "in memory (Redis away)"
    return (
        f"\nAnti-abuse state: {where}, {f.anti_abuse_fallbacks} fallbacks,"
        f" {f.anti_abuse_conflicts} conflicts"
    )


def _integrity_line(f: Figures) -> str:
    report = f.last_report
    if report is None:
        return ""
    verdict = "clean" if report.ok else f"{report.violation_count} VIOLATIONS"
    return f"\nLast integrity check: {verdict}, {report.transactions:,} transactions"


def _bus_line(f: Figures) -> str:
    relay = f.relay
    if relay is None:
        return ""
    line = (
        f"\nOutbox: {relay.delivered} delivered, {relay.lag} waiting,"
        f" {relay.failures} failed publishes, breaker {relay.breaker_state}"
    )
    if relay.last_error:
        line += f"\nLast outbox error: {esc(relay.last_error)}"
    if relay.inbound:
        counts = ", ".join(f"{k} {v}" for k, v in relay.inbound.most_common())
        line += f"\nBus events in: {counts}"
    return line


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
