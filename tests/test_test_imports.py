"""No test module imports another: what tests share lives in tests/support/ (or a conftest)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_imports(path: Path) -> list[str]:
    """The test modules (`test_*`) that `path` imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        if any(name.split(".")[-1].startswith("test_") for name in names if name):
            found.append(f"line {node.lineno}: {names[0]}")
    return found


test_imports.__test__ = False  # type: ignore[attr-defined]


def test_no_test_module_imports_another() -> None:
    offenders = {
        path.relative_to(TESTS).as_posix(): found
        for path in sorted(TESTS.rglob("*.py"))
        if (found := test_imports(path))
    }
    assert not offenders, f"move the shared definitions to tests/support/: {offenders}"


def test_the_scan_finds_both_import_forms(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from tests.bot.test_cli import bot\n"
        "import tests.gamification.test_bad_input\n"
        "from tests.bot import test_cli\n"
        "from tests.support.cli import bot as run\n"
    )
    assert [line.split(":")[0] for line in test_imports(sample)] == [
        "line 1",
        "line 2",
        "line 3",
    ]
