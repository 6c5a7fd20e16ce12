"""The domain never imports aiogram: only the handlers and the plugin wiring may."""

from __future__ import annotations

import ast
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "gamification"
TELEGRAM_SIDE = {"handlers", "plugin.py", "demo.py", "cli.py"}
# The bench's end-to-end part drives the real Dispatcher beside a bare one.
TELEGRAM_FILES = {"bench/app.py", "bench/farming.py"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_domain_modules_do_not_import_aiogram() -> None:
    checked = 0
    for path in PLUGIN.rglob("*.py"):
        relative = path.relative_to(PLUGIN)
        if relative.parts[0] in TELEGRAM_SIDE or relative.as_posix() in TELEGRAM_FILES:
            continue
        checked += 1
        offenders = {m for m in imported_modules(path) if m.split(".")[0] == "aiogram"}
        assert not offenders, f"{relative} imports {offenders}"
        assert not any(
            m.startswith("plugins.gamification.handlers") for m in imported_modules(path)
        )
    assert checked >= 10


def test_every_module_says_what_it_is_for() -> None:
    for path in [*PLUGIN.rglob("*.py"), *(PLUGIN.parents[1] / "bot").rglob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{path} has no module docstring"
