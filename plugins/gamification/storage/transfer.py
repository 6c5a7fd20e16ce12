"""Copying a whole ledger from one backend to another, proven by the integrity check.

`migrate` and PostgreSQL's `backup` both copy through here: every table of storage/tables.py
is read from the source inside one snapshot and written to the target inside one transaction
(the target's append-only triggers stay in force: a copy only inserts). Before the target
commits, both sides are checked inside their transactions; the copy is kept only if both are
clean, every table has as many rows on each side, and the digests agree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from plugins.gamification.domain.errors import GamificationError
from plugins.gamification.storage.integrity import IntegrityReport
from plugins.gamification.storage.tables import TABLES, Table


class TransferRefusedError(GamificationError):
    """The copy was refused before anything was written (a ledger already in the target)."""


class TransferMismatchError(GamificationError):
    """The copy did not verify; the target's transaction was rolled back. `result` says why."""

    def __init__(self, message: str, result: TransferResult) -> None:
        super().__init__(message)
        self.result = result


class LedgerSide(Protocol):
    """One ledger as a copy sees it; a side's methods run inside `snapshot` or `writing`."""

    where: str

    def snapshot(self) -> AbstractAsyncContextManager[None]: ...

    def writing(self) -> AbstractAsyncContextManager[None]: ...

    async def counts(self) -> dict[str, int]: ...

    def rows(self, table: Table) -> AsyncIterator[Sequence[Sequence[Any]]]: ...

    async def insert(self, table: Table, rows: list[tuple[Any, ...]]) -> None: ...

    async def finish_copy(self) -> None: ...

    async def verify(self) -> IntegrityReport: ...


@dataclass(slots=True)
class TransferResult:
    source: str
    target: str
    copied: dict[str, int] = field(default_factory=dict)
    source_counts: dict[str, int] = field(default_factory=dict)
    target_counts: dict[str, int] = field(default_factory=dict)
    source_report: IntegrityReport | None = None
    target_report: IntegrityReport | None = None

    def problems(self) -> list[str]:
        found = []
        for name, count in self.source_counts.items():
            if self.target_counts.get(name) != count:
                found.append(
                    f"{name}: {count:,} rows in the source, {self.target_counts.get(name, 0):,}"
                    " in the copy"
                )
        for side, report in (("source", self.source_report), ("copy", self.target_report)):
            if report is not None and not report.ok:
                found.append(
                    f"the {side} fails the integrity check ({report.violation_count:,}"
                    f" violations; first: {report.violations[0].describe()})"
                )
        if (
            self.source_report is not None
            and self.target_report is not None
            and self.source_report.digest != self.target_report.digest
        ):
            found.append("the digests differ")
        return found

    def to_text(self) -> str:
        width = max(len(table.name) for table in TABLES)
        lines = [f"{'table':<{width}}  {'source':>12}  {'copy':>12}"]
        for table in TABLES:
            lines.append(
                f"{table.name:<{width}}  {self.source_counts.get(table.name, 0):>12,}"
                f"  {self.target_counts.get(table.name, 0):>12,}"
            )
        for label, where, report in (
            ("Source", self.source, self.source_report),
            ("Copy  ", self.target, self.target_report),
        ):
            if report is not None:
                verdict = "clean" if report.ok else f"{report.violation_count:,} violations"
                lines.append(f"{label} digest: {report.digest} ({verdict}; {where})")
        return "\n".join(lines)


async def copy_ledger(source: LedgerSide, target: LedgerSide) -> TransferResult:
    """Copy every table from `source` into the empty `target`, verify, commit; or roll back.

    Raises TransferRefusedError if the target holds any row, TransferMismatchError (after
    rolling the target back) if the copy does not verify.
    """
    result = TransferResult(source.where, target.where)
    async with source.snapshot(), target.writing():
        # Under the target's write lock: nobody can fill it between this look and the copy.
        present = {name: n for name, n in (await target.counts()).items() if n}
        if present:
            rows = sum(present.values())
            raise TransferRefusedError(
                f"The target ledger at {target.where} is not empty ({rows:,} rows, in"
                f" {', '.join(sorted(present))}); migrate copies only into an empty ledger."
            )
        for table in TABLES:
            copied = 0
            async for chunk in source.rows(table):
                batch = [table.normalise(row) for row in chunk]
                await target.insert(table, batch)
                copied += len(batch)
            result.copied[table.name] = copied
        await target.finish_copy()
        result.source_counts = await source.counts()
        result.target_counts = await target.counts()
        result.source_report = await source.verify()
        result.target_report = await target.verify()
        problems = result.problems()
        if problems:
            raise TransferMismatchError(
                f"The copy did not verify, so nothing was kept in {target.where}: "
                + "; ".join(problems)
                + ".",
                result,
            )
    return result
