"""Bulk changes from a grant file: every row judged against the ledger before the first
write, then written as admin adjustments, each under a key derived from the file.

The storage protocol commits each posting on its own (a batch may commit several, but a
refused one never holds back the others), so there is no all-or-nothing write of many
accounts. Instead nothing is written until every row has passed, overdrafts included; a
run that stops half-way (a crash, a live deduction in between) leaves some rows written,
each under its own key, and running the same file again writes exactly the rest.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Literal

from plugins.gamification.domain.clock import format_utc
from plugins.gamification.domain.errors import GamificationError
from plugins.gamification.domain.keys import grant_key
from plugins.gamification.domain.models import Receipt
from plugins.gamification.engine import PointsEngine
from plugins.gamification.ops.grant_file import GrantFile, GrantMode, GrantRow, RowProblem
from plugins.gamification.services.people import People
from plugins.gamification.storage.operations import MAX_BALANCE
from plugins.gamification.storage.records import AdminAction, AuditNote

RowStatus = Literal["apply", "done", "unchanged"]
# Rows submitted together: the writer commits them in a few batches rather than one each.
CHUNK = 500
ACTIONS: dict[GrantMode, str] = {"add": "grant", "set": "set-balance"}
# The actor of an operator's command line, as rebuild-balances records it too: no Telegram
# user (the login name is in the audit detail).
OPERATOR_ACTOR = 0


@dataclass(frozen=True, slots=True)
class PlannedRow:
    """One row against the ledger as it is: what this run would write, if anything."""

    row: GrantRow
    user_id: int
    current: int
    # What this run writes (0 for a row already applied or already at its target).
    change: int
    status: RowStatus
    # The transaction an earlier run of the same file wrote for this row.
    done_id: int | None = None
    done_amount: int = 0

    @property
    def after(self) -> int:
        return self.current + self.change


@dataclass(slots=True)
class GrantPlan:
    file: GrantFile
    chat_id: int
    mode: GrantMode
    rows: list[PlannedRow] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)

    def key_of(self, row: PlannedRow) -> str:
        return grant_key(self.file.digest, row.user_id)

    def count(self, status: RowStatus) -> int:
        return sum(1 for row in self.rows if row.status == status)

    @property
    def total(self) -> int:
        return sum(row.change for row in self.rows)


@dataclass(frozen=True, slots=True)
class GrantOutcome:
    applied: int
    # The sum of the changes this run wrote.
    total: int
    # Lines of the rows another run of the same file wrote between this run's reading and
    # writing.
    raced: set[int]
    failures: list[tuple[int, str]]


async def plan_grant(
    engine: PointsEngine,
    people: People,
    file: GrantFile,
    *,
    chat_id: int,
    mode: GrantMode,
    force: bool,
) -> GrantPlan:
    """Resolve every row and judge it against the current balances; writes nothing."""
    plan = GrantPlan(file, chat_id, mode, problems=list(file.problems))
    seen: dict[int, int] = {}
    overdraft_allowed = force or engine.policy.allow_negative
    for row in file.rows:
        user_id = await _resolve(people, row, plan.problems)
        if user_id is None:
            continue
        if user_id in seen:
            plan.problems.append(
                RowProblem(row.line, 1, f"{row.who} is the same person as line {seen[user_id]}.")
            )
            continue
        seen[user_id] = row.line
        done = await engine.transaction_by_key(grant_key(file.digest, user_id))
        current = (await engine.balance(chat_id, user_id)).balance
        if done is not None:
            plan.rows.append(PlannedRow(row, user_id, current, 0, "done", done.id, done.amount))
            continue
        change = row.points if mode == "add" else row.points - current
        after = current + change
        if change == 0:
            plan.rows.append(PlannedRow(row, user_id, current, 0, "unchanged"))
        elif abs(after) > MAX_BALANCE or abs(change) > MAX_BALANCE:
            plan.problems.append(
                RowProblem(
                    row.line,
                    2,
                    f"{row.who}'s balance would be {after:,}, outside the ledger's"
                    f" range (±{MAX_BALANCE:,}).",
                )
            )
        elif change < 0 and after < 0 and not overdraft_allowed:
            plan.problems.append(
                RowProblem(
                    row.line,
                    2,
                    f"{row.who} has {current:,} points, so {change:+,} would leave"
                    f" {after:,}; balances stay at zero or above (allow_negative is off) unless"
                    " you add --force.",
                )
            )
        else:
            plan.rows.append(PlannedRow(row, user_id, current, change, "apply"))
    plan.problems.sort(key=lambda problem: (problem.line, problem.column))
    return plan


async def _resolve(people: People, row: GrantRow, problems: list[RowProblem]) -> int | None:
    """The row's user id: a @username only as someone the bot has seen; never a bot."""
    if row.username is not None:
        person = await people.find_username(row.username)
        if person is None:
            problems.append(
                RowProblem(
                    row.line,
                    1,
                    f"@{row.username} is nobody the bot has seen; write their"
                    " numeric user id instead.",
                )
            )
            return None
    else:
        assert row.user_id is not None
        person = await people.person(row.user_id)
        if person is None:
            return row.user_id  # not seen yet: an id needs no resolving
    if person.is_bot:
        problems.append(RowProblem(row.line, 1, f"{row.who} is a bot, which holds no points."))
        return None
    return person.user_id


async def apply_grant(
    engine: PointsEngine, plan: GrantPlan, *, force: bool, operator: str
) -> GrantOutcome:
    """Write the plan's `apply` rows, then one admin_actions row naming the operation."""
    todo = [row for row in plan.rows if row.status == "apply"]
    applied = total = 0
    raced: set[int] = set()
    failures: list[tuple[int, str]] = []
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start : start + CHUNK]
        results = await asyncio.gather(
            *(_write(engine, plan, row, force, operator) for row in chunk),
            return_exceptions=True,
        )
        for row, result in zip(chunk, results, strict=True):
            if isinstance(result, GamificationError):
                failures.append((row.row.line, str(result)))
            elif isinstance(result, BaseException):
                raise result
            elif result.duplicate:
                raced.add(row.row.line)
            else:
                applied += 1
                total += result.transaction.amount
    if applied:
        detail = (
            f"{plan.mode} file sha256 {plan.file.digest}: {len(plan.rows)} rows,"
            f" {applied} applied, {plan.count('done') + len(raced)} already applied,"
            f" {plan.count('unchanged')} unchanged, total {total:+}, by {operator}"
        )
        action = AdminAction(
            plan.chat_id, OPERATOR_ACTOR, f"{ACTIONS[plan.mode]}-file", None, detail
        )
        await engine.store.record_admin_action(action, format_utc(engine.clock.now()))
    return GrantOutcome(applied, total, raced, failures)


async def _write(
    engine: PointsEngine, plan: GrantPlan, row: PlannedRow, force: bool, operator: str
) -> Receipt:
    line = row.row
    reason = line.reason or (
        f"balance set to {line.points:,}" if plan.mode == "set" else "bulk grant"
    )
    source = f"file sha256 {plan.file.digest[:16]}, line {line.line}, by {operator}"
    note = AuditNote(ACTIONS[plan.mode], f"{row.change:+} {reason} ({source})")
    return await engine.adjust(
        plan.chat_id,
        row.user_id,
        row.change,
        key=plan.key_of(row),
        actor_id=OPERATOR_ACTOR,
        reason=reason,
        force=force,
        audit=note,
    )
