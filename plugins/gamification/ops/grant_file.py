"""Reading a grant file (user, points, reason as CSV): its rows, every bad row, its digest.

Nothing here touches the ledger: a row is judged on its own text (who, how many, why), and
the file's digest, taken over its normalised rows, names the operation in the ledger's
idempotency keys, so the same rows give the same keys however the file was saved.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Literal

from plugins.gamification.engine import MAX_REASON_LENGTH
from plugins.gamification.storage.operations import MAX_BALANCE

GrantMode = Literal["add", "set"]
COLUMNS = ("user", "points", "reason")
MAX_REASON = MAX_REASON_LENGTH
# A grant file is a list of people, not a ledger dump: past this it is surely the wrong file.
MAX_ROWS = 100_000
MAX_FIELD = 1_000
_USERNAME = re.compile(r"^@[A-Za-z0-9_]{3,32}$")
_USER_ID = re.compile(r"^[0-9]{1,19}$")
# ASCII digits only: int() also reads "٥٠" or "５０", which a spreadsheet may have produced
# from something else.
_NUMBER = re.compile(r"^[+-]?[0-9]+$")
_LARGEST_ID = 2**63 - 1


class GrantFileError(ValueError):
    """The file as a whole cannot be read as a grant file (the message says why)."""


@dataclass(frozen=True, slots=True)
class GrantRow:
    """One row as written: a person (an id or a @username) and a signed number of points."""

    line: int
    user_id: int | None
    username: str | None
    points: int
    reason: str

    @property
    def who(self) -> str:
        return f"@{self.username}" if self.username is not None else str(self.user_id)


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why a row is refused: its line, its column (1 user, 2 points, 3 reason) and a sentence."""

    line: int
    column: int
    text: str

    def describe(self) -> str:
        name = COLUMNS[self.column - 1] if self.column <= len(COLUMNS) else "extra"
        return f"Line {self.line}, column {self.column} ({name}): {self.text}"


@dataclass(frozen=True, slots=True)
class GrantFile:
    rows: tuple[GrantRow, ...]
    problems: tuple[RowProblem, ...]
    # SHA-256 over the mode, the chat and the normalised rows (see `digest`).
    digest: str


def read_grant_file(data: bytes, *, chat_id: int, mode: GrantMode) -> GrantFile:
    """Parse `data` (UTF-8, with or without a BOM); GrantFileError if it is no CSV at all."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GrantFileError(
            f"The file is not UTF-8 text (byte {exc.start + 1} is not valid); save it as"
            " UTF-8 CSV."
        ) from None
    if "\x00" in text:
        raise GrantFileError("The file holds NUL bytes: it is not a CSV text file.")
    rows: list[GrantRow] = []
    problems: list[RowProblem] = []
    reader = csv.reader(text.splitlines(keepends=True), strict=True)
    line = 1
    first = True
    try:
        for fields in reader:
            start, line = line, reader.line_num + 1
            if not fields or all(not field.strip() for field in fields):
                continue
            cells = [field.strip() for field in fields]
            if first and cells[0].casefold() == "user":
                first = False
                continue  # the optional header line
            first = False
            row, found = _row(start, cells, mode)
            problems.extend(found)
            if row is not None:
                rows.append(row)
            if len(rows) + len(problems) > MAX_ROWS:
                raise GrantFileError(f"The file has more than {MAX_ROWS:,} rows; split it.")
    except csv.Error as exc:
        raise GrantFileError(f"Line {reader.line_num} is not valid CSV ({exc}).") from None
    if not rows and not problems:
        raise GrantFileError("The file has no rows (only a header, blank lines or nothing).")
    unique = _unique(rows, problems)
    return GrantFile(unique, tuple(problems), digest(rows, chat_id=chat_id, mode=mode))


def _row(line: int, cells: list[str], mode: GrantMode) -> tuple[GrantRow | None, list[RowProblem]]:
    problems: list[RowProblem] = []

    def refuse(column: int, text: str) -> None:
        problems.append(RowProblem(line, column, text))

    if len(cells) > len(COLUMNS):
        refuse(len(COLUMNS) + 1, f"a row has at most {len(COLUMNS)} fields ({len(cells)} here).")
    if any(len(cell) > MAX_FIELD for cell in cells[:2]):
        refuse(1 if len(cells[0]) > MAX_FIELD else 2, "the field is far too long.")
        return None, problems
    user, points_text = cells[0], cells[1] if len(cells) > 1 else ""
    reason = cells[2] if len(cells) > 2 else ""
    user_id: int | None = None
    username: str | None = None
    if _USERNAME.match(user):
        username = user[1:]
    elif _USER_ID.match(user) and 0 < int(user) <= _LARGEST_ID:
        user_id = int(user)
    else:
        refuse(1, f"{user[:40]!r} is not a user: write a numeric user id or a @username.")
    points = 0
    if not points_text:
        refuse(2, "the points are missing.")
    elif not _NUMBER.match(points_text) or len(points_text) > 20:
        refuse(2, f"{points_text[:40]!r} is not a whole number of points.")
    else:
        points = int(points_text)
        if abs(points) > MAX_BALANCE:
            refuse(2, f"{points:,} is outside the ledger's range (±{MAX_BALANCE:,}).")
        elif points == 0 and mode == "add":
            refuse(2, "zero points changes nothing; leave the row out.")
    if len(reason) > MAX_REASON:
        refuse(3, f"the reason is {len(reason):,} characters; at most {MAX_REASON} are kept.")
    if problems:
        return None, problems
    return GrantRow(line, user_id, username, points, reason), problems


def _unique(rows: list[GrantRow], problems: list[RowProblem]) -> tuple[GrantRow, ...]:
    """The rows without repeats of a person, each repeat added to `problems`: a person twice
    in one file is a mistake (which row is meant?). This catches what the rows say; the same
    person under an id and a @username is caught once resolved."""
    seen: dict[str, int] = {}
    unique: list[GrantRow] = []
    for row in rows:
        who = row.who.casefold()
        if who in seen:
            problems.append(RowProblem(row.line, 1, f"{row.who} is already in line {seen[who]}."))
        else:
            seen[who] = row.line
            unique.append(row)
    return tuple(unique)


def digest(rows: list[GrantRow], *, chat_id: int, mode: GrantMode) -> str:
    """SHA-256 of what the rows mean: a header, blank lines, a BOM, line ends, quoting or
    spaces around fields do not change it; another chat, mode, person, number or reason does."""
    normalised = [[row.who.casefold(), row.points, row.reason] for row in rows]
    body = json.dumps(
        {"chat": chat_id, "mode": mode, "rows": normalised},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()
