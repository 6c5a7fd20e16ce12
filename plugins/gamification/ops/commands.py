"""The plugin's own description of an operator command, for whichever program offers it.

A host turns each `Command` into a subcommand of its command line (the bundled host does so
in `bot/registry.py`) and supplies the `CommandContext` from its own configuration.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiogram.client.session.base import BaseSession
from aiogram.types import Update

from plugins.gamification.domain.config import GamificationConfig
from plugins.gamification.storage.options import DatabaseOptions, Location, parse_location

LEDGER_HELP = (
    "the ledger: a file path, sqlite:///path or postgresql://user@host:port/database"
    " (default: the configured [storage] url or database)"
)
# Telegram's chat ids are signed 64-bit integers.
CHAT_ID_MIN, CHAT_ID_MAX = -(2**63), 2**63 - 1


class UpdateSource(Protocol):
    """Builds real `Update`s of group messages, numbering them (the host's test factory)."""

    def message(
        self,
        chat: Mapping[str, Any],
        user: Mapping[str, Any] | None,
        text: str | None = None,
        *,
        reply_to: int | None = None,
        content: Mapping[str, Any] | None = None,
    ) -> Update: ...


@dataclass(frozen=True, slots=True)
class OfflineTelegram:
    """A Bot API session that answers offline, and updates to feed it: what the demo runs on.

    `session(admins, now)`: chat id -> its administrators' ids, and the clock in epoch seconds.
    """

    session: Callable[[Mapping[int, set[int]], Callable[[], float]], BaseSession]
    updates: Callable[[Callable[[], float]], UpdateSource]


@dataclass(frozen=True, slots=True)
class CommandContext:
    """What a command gets from the program running it: the ledger and the settings."""

    database: DatabaseOptions
    settings: GamificationConfig = field(default_factory=GamificationConfig)
    admin_ids: frozenset[int] = frozenset()
    offline: OfflineTelegram | None = None


@dataclass(frozen=True, slots=True)
class Command:
    """An operator command (`check`, `backup`, ...); `run` returns the process exit code."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, CommandContext], Coroutine[Any, Any, int]]


def add_ledger_argument(parser: argparse.ArgumentParser) -> None:
    """`--db LEDGER`, the same on every command that opens the ledger."""
    parser.add_argument("--db", metavar="LEDGER", help=LEDGER_HELP)


def ledger_location(args: argparse.Namespace, context: CommandContext) -> Location:
    """--db, or the configured ledger; LocationError (one sentence) for a bad one."""
    return parse_location(args.db) if args.db else context.database.location
