"""SQL lives only in the storage package: everything else goes through LedgerStorage's methods."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from plugins.gamification.storage.protocol import LedgerStorage
from plugins.gamification.storage.sqlite.store import LedgerStore

PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "gamification"
STORAGE = "storage/"
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|PRAGMA|BEGIN)\b", re.IGNORECASE)
# The store's raw statement passthroughs: private to the storage package.
PASSTHROUGHS = frozenset({"fetchall", "execute", "execute_all", "execute_later", "executemany"})
STATEMENT_MODULES = (
    "plugins.gamification.storage.sqlite.sidetables",
    "plugins.gamification.storage.sqlite.queries",
)
SERVICES = "services/"
BACKEND_MODULES = frozenset(
    f"plugins.gamification.storage.sqlite.{name}"
    for name in ("store", "writer", "effects", "sidetables", "queries", "rows", "schema")
)


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the constant nodes that are docstrings (prose may start with "Create")."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def storage_access(path: Path) -> list[str]:
    """Every SQL literal, raw passthrough call and statement import in one module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and SQL.match(node.value)
        ):
            found.append(f"line {node.lineno}: SQL {node.value.strip()[:40]!r}")
        elif isinstance(node, ast.Attribute) and node.attr in PASSTHROUGHS:
            # Called, or handed on uncalled (to a retry wrapper, say).
            found.append(f"line {node.lineno}: raw passthrough .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            STATEMENT_MODULES
        ):
            found.append(f"line {node.lineno}: imports {node.module}")
    return sorted(found, key=lambda text: int(text.split(":")[0].split()[1]))


def plugin_modules() -> list[tuple[str, Path]]:
    modules = []
    for path in sorted(PLUGIN.rglob("*.py")):
        relative = path.relative_to(PLUGIN).as_posix()
        if relative.startswith(STORAGE):
            continue
        modules.append((relative, path))
    return modules


def test_no_sql_outside_the_ledger_package() -> None:
    offenders = {
        relative: found for relative, path in plugin_modules() if (found := storage_access(path))
    }
    assert not offenders, f"SQL or raw store access outside {STORAGE}: {offenders}"


@pytest.mark.parametrize(
    "relative",
    [relative for relative, _ in plugin_modules() if relative.startswith(SERVICES)],
)
def test_a_service_knows_the_storage_protocol_not_a_backend(relative: str) -> None:
    """The application layer names LedgerStorage only: not the SQLite store, its writer or
    its statements (the integrity report is a record of the protocol's)."""
    tree = ast.parse((PLUGIN / relative).read_text(encoding="utf-8"))
    backends = [
        f"line {node.lineno}: {node.module}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "") in BACKEND_MODULES
    ]
    assert not backends, f"{relative} imports the SQLite backend: {backends}"


def test_the_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        '"""Create things, in prose."""\n'
        "from plugins.gamification.storage.sqlite.sidetables import SELECT_FREEZES\n"
        'Q = "select 1"\n'
        "async def f(store):\n"
        '    """Select nothing."""\n'
        '    await store.fetchall("x", ())\n'
        "    retry(store.execute)\n"
    )
    found = storage_access(sample)
    assert [line.split(":")[0] for line in found] == ["line 2", "line 3", "line 6", "line 7"]


def test_the_sqlite_store_implements_every_member_of_the_protocol() -> None:
    """mypy proves the signatures (storage/sqlite/store.py); this proves nothing is left out at run
    time, for a backend written without mypy."""
    members = {
        name for name in dir(LedgerStorage) if not name.startswith("_") and name not in dir(object)
    } | set(LedgerStorage.__annotations__)
    store = LedgerStore(Path("unused.sqlite3"))
    missing = sorted(name for name in members if not hasattr(store, name))
    assert not missing
    assert {"submit", "check", "outbox_pending", "progress", "freeze"} <= members
