#!/usr/bin/env python3
"""Set up and run the project with nothing but Python 3.11+: `python3 dev.py demo|test|bench`.

Creates ./.venv when missing, installs the project with its dev extras into it (again
whenever pyproject.toml changed), then runs the task inside it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".installed"

TASKS: dict[str, list[list[str]]] = {
    "demo": [["-m", "bot", "demo"]],
    "bench": [["-m", "benchmarks"]],
    "test": [
        ["-m", "ruff", "check", "."],
        ["-m", "ruff", "format", "--check", "."],
        ["-m", "mypy", "bot", "plugins", "benchmarks", "examples"],
        # Spread over every core (pytest-xdist); each test has its own files and databases.
        ["-m", "pytest", "-n", "auto"],
    ],
}


def ensure_venv() -> None:
    if sys.version_info < (3, 11):
        found = ".".join(map(str, sys.version_info[:2]))
        sys.exit(f"Python 3.11 or newer is needed (found {found}).")
    if not PYTHON.exists():
        print(f"Creating {VENV} …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != wanted:
        print("Installing the project and its dev tools …", flush=True)
        pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True, cwd=ROOT)
        STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TASKS:
        print(f"usage: python3 dev.py {{{'|'.join(TASKS)}}} [extra arguments for the last step]")
        return 2
    ensure_venv()
    steps = TASKS[argv[0]]
    for index, step in enumerate(steps):
        extra = argv[1:] if index == len(steps) - 1 else []
        code = subprocess.run([str(PYTHON), *step, *extra], cwd=ROOT).returncode
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
