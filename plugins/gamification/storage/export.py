"""The export format of the ledger, shared by every backend so their exports are byte-identical.

Columns are written as stored (breakdown stays its JSON text), so the hash chain can be
re-verified from an export, whichever backend wrote it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from typing import Any, Literal, TextIO

ExportFormat = Literal["csv", "jsonl"]
EXPORT_COLUMNS = (
    "id", "chat_id", "user_id", "seq", "amount", "balance_after", "kind", "idem_key",
    "request_hash", "actor_id", "reason", "breakdown", "created_at", "reverts_id",
    "prev_hash", "hash",
)  # fmt: skip
FETCH_CHUNK = 5000


class ExportWriter:
    """Writes rows of EXPORT_COLUMNS to `out` as CSV (with a header) or JSON lines."""

    def __init__(self, out: TextIO, fmt: ExportFormat) -> None:
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"unknown export format {fmt!r}")
        self._out = out
        self._csv = csv.writer(out) if fmt == "csv" else None
        if self._csv is not None:
            self._csv.writerow(EXPORT_COLUMNS)
        self.count = 0

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        if self._csv is not None:
            self._csv.writerows(rows)
        else:
            self._out.writelines(
                json.dumps(dict(zip(EXPORT_COLUMNS, row, strict=True)), ensure_ascii=False) + "\n"
                for row in rows
            )
        self.count += len(rows)
