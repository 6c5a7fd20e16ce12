"""Operator mistakes and hostile files: no command destroys a ledger or someone else's file,
and every refusal (of `run` too) is one sentence with exit code 2 and nothing changed.

Most commands run in this process through `bot.__main__.main` (same parser, same handlers);
what depends on the process itself (stderr, exit code of `run`, a broken pipe, another user)
runs as a real subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.__main__ import main
from plugins.gamification import PointsEngine
from plugins.gamification.domain.errors import ForeignDatabaseError
from plugins.gamification.storage.sqlite import files

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456:TEST-token-that-never-leaves-this-test"
NOBODY = 65534


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def make_ledger(path: Path) -> Path:
    async with await PointsEngine.open(path) as engine:
        await engine.award(-1, 1, 10, key="a")
        await engine.award(-1, 2, 20, key="b")
    return path


@pytest.fixture
async def ledger(tmp_path: Path) -> Path:
    return await make_ledger(tmp_path / "ledger.sqlite3")


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no developer's config.toml
    for name in [k for k in os.environ if k.startswith("BOT_")]:
        monkeypatch.delenv(name)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def bot(
    *args: str, cwd: Path, stdout: object = subprocess.PIPE
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=subprocess_env(),
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )


def one_sentence(err: str, *phrases: str) -> None:
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    for phrase in phrases:
        assert phrase in err, err


def foreign_database(path: Path, *, user_version: int = 0) -> Path:
    """Another application's SQLite file, in rollback-journal mode like most are."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('do not lose me')")
    conn.execute(f"PRAGMA user_version = {user_version}")
    conn.commit()
    conn.close()
    return path


def assert_untouched(foreign: Path, before: str) -> None:
    assert digest(foreign) == before
    assert shape(foreign) == (["notes"], "delete")
    assert not Path(f"{foreign}-wal").exists()


def shape(path: Path) -> tuple[list[str], str]:
    """Tables and journal mode, read without changing anything."""
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master ORDER BY name")]
        return tables, str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


# -- export --out and backup DEST never land on the ledger or a non-regular file -----------


def ledger_targets(ledger: Path) -> dict[str, Path]:
    """Names that all reach the ledger or one of its own files."""
    folder = ledger.parent
    (folder / "link.sqlite3").symlink_to(ledger.name)
    os.link(ledger, folder / "hard.csv")
    (folder / "alias").symlink_to(folder, target_is_directory=True)
    return {
        "itself": ledger,
        "symlink": folder / "link.sqlite3",
        "hard link": folder / "hard.csv",
        "through a linked folder": folder / "alias" / ledger.name,
        "its -wal": ledger.with_name(ledger.name + "-wal"),
        "its -shm": ledger.with_name(ledger.name + "-shm"),
        "its -journal": ledger.with_name(ledger.name + "-journal"),
    }


@pytest.mark.usefixtures("clean_env")
def test_export_and_backup_never_write_over_the_ledger(
    ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = digest(ledger)
    for name, target in ledger_targets(ledger).items():
        for args in (
            ["export", "--format", "csv", "--db", str(ledger), "--out", str(target)],
            ["backup", str(target), "--db", str(ledger)],
        ):
            code, _, err = cli(capsys, *args)
            assert code == 2, (name, args)
            one_sentence(err, str(target))
            assert digest(ledger) == before, name
    # The side files were never created, the links are still links.
    assert not ledger.with_name(ledger.name + "-wal").exists()
    assert (ledger.parent / "link.sqlite3").is_symlink()
    assert main(["check", "--db", str(ledger), "--no-record"]) == 0
    assert [p.name for p in ledger.parent.iterdir() if ".partial" in p.name] == []


@pytest.mark.usefixtures("clean_env")
def test_export_and_backup_refuse_what_is_not_a_regular_file(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    (tmp_path / "target.csv").write_text("someone's file\n")
    (tmp_path / "link.csv").symlink_to("target.csv")
    (tmp_path / "dangling.csv").symlink_to("nowhere.csv")
    targets = {"fifo": "named pipe", "folder": "folder", "link.csv": "symbolic link"}
    targets["dangling.csv"] = "symbolic link"
    if os.geteuid() == 0:
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        targets["null"] = "character device"
    kinds = {name: stat.S_IFMT((tmp_path / name).lstat().st_mode) for name in targets}
    for name, kind in targets.items():
        for args in (
            ["export", "--format", "jsonl", "--db", str(ledger), "--out", name],
            ["backup", name, "--db", str(ledger)],
        ):
            code, _, err = cli(capsys, *args)
            assert code == 2, (name, args)
            one_sentence(err, name, kind)
            assert stat.S_IFMT((tmp_path / name).lstat().st_mode) == kinds[name]
    assert (tmp_path / "target.csv").read_text() == "someone's file\n"
    assert not (tmp_path / "nowhere.csv").exists()


@pytest.mark.usefixtures("clean_env")
def test_export_replaces_an_existing_regular_file_and_says_so(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "old.csv"
    out.write_text("yesterday's export\n")
    code, _, err = cli(
        capsys, "export", "--format", "csv", "--db", str(ledger), "--out", "old.csv"
    )
    assert (code, err) == (0, "")
    assert out.read_text().startswith("id,chat_id,")
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "an existing regular file, which is replaced" in text
    assert "symbolic links, devices, named pipes and folders are refused" in text


def test_export_appended_to_the_ledger_itself_is_refused(ledger: Path, tmp_path: Path) -> None:
    before = digest(ledger)
    with ledger.open("ab") as stdout:
        result = bot("export", "--format", "csv", "--db", str(ledger), cwd=tmp_path, stdout=stdout)
    assert result.returncode == 2
    one_sentence(result.stderr, "stdout is the ledger")
    assert digest(ledger) == before


# -- demo --db -------------------------------------------------------------------------------


@pytest.mark.usefixtures("clean_env")
def test_demo_refuses_an_existing_ledger_or_any_non_empty_file(
    ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    wal_only = tmp_path / "w.sqlite3"
    wal_only.touch()
    (tmp_path / "w.sqlite3-wal").write_bytes(b"x" * 100)
    (tmp_path / "link.sqlite3").symlink_to(ledger)
    for target in (ledger, tmp_path / "notes.txt", wal_only, tmp_path / "link.sqlite3"):
        before = digest(target)
        code, out, err = cli(capsys, "demo", "--db", str(target))
        assert code == 2, target
        one_sentence(err, f"{target} already exists and is not empty")
        assert out == ""
        assert digest(target) == before
    assert not ledger.with_name(ledger.name + "-wal").exists()
    assert main(["check", "--db", str(ledger), "--no-record"]) == 0


@pytest.mark.usefixtures("clean_env")
def test_demo_fills_an_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    code, out, _ = cli(capsys, "demo", "--db", str(empty))
    assert code == 0
    assert "Ledger integrity: CLEAN" in out
    assert shape(empty)[0][:2] == ["accounts", "admin_actions"]


# -- another application's SQLite file -------------------------------------------------------


@pytest.mark.parametrize("user_version", [0, 3])
@pytest.mark.usefixtures("clean_env")
async def test_a_foreign_database_is_refused_before_anything_is_written(
    tmp_path: Path, user_version: int
) -> None:
    foreign = foreign_database(tmp_path / "app.db", user_version=user_version)
    before = digest(foreign)
    with pytest.raises(ForeignDatabaseError, match="another application's SQLite database"):
        await PointsEngine.open(foreign)
    assert_untouched(foreign, before)


@pytest.mark.usefixtures("clean_env")
def test_every_command_refuses_a_foreign_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = foreign_database(tmp_path / "app.db")
    before = digest(foreign)
    for args in (
        ["check", "--db", str(foreign)],
        ["check", "--db", str(foreign), "--no-record"],
        ["backup", "copy.db", "--db", str(foreign)],
        ["export", "--format", "csv", "--db", str(foreign)],
        ["rebuild-balances", "--db", str(foreign), "--apply"],
        ["demo", "--db", str(foreign)],
    ):
        code, _out, err = cli(capsys, *args)
        assert code == 2, args
        one_sentence(err, str(foreign))
        assert digest(foreign) == before, args
    assert shape(foreign) == (["notes"], "delete")
    assert not (tmp_path / "copy.db").exists()


def run_config(tmp_path: Path, database: Path | str, extra: str = "") -> Path:
    config = tmp_path / "run.toml"
    config.write_text(
        # Nowhere to poll: if a refused start-up went ahead, the test times out instead of
        # reaching Telegram.
        '[bot]\napi_server = "http://127.0.0.1:9"\n'
        f'[storage]\ndatabase = "{database}"\nbusy_timeout_seconds = 0.2\n{extra}'
    )
    return config


def test_run_refuses_a_foreign_database_with_one_sentence(tmp_path: Path) -> None:
    foreign = foreign_database(tmp_path / "app.db")
    before = digest(foreign)
    config = run_config(tmp_path, foreign)
    result = subprocess.run(
        [sys.executable, "-m", "bot", "run", "--config", str(config)],
        cwd=tmp_path,
        env=subprocess_env(BOT_TOKEN=TOKEN),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    assert "another application's SQLite database" in errors[0]
    assert "Traceback" not in result.stderr
    assert digest(foreign) == before
    assert shape(foreign) == (["notes"], "delete")


# -- run: every start-up failure is one sentence and exit 2 ----------------------------------


@contextlib.contextmanager
def held_lock(path: Path) -> Iterator[None]:
    """Another connection holding the write lock (SQLite locks per connection)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


async def broken_ledgers(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """(database, a phrase its refusal must contain) for each damaged start-up."""
    good = await make_ledger(tmp_path / "good.sqlite3")
    (tmp_path / "folder.sqlite3").mkdir()
    (tmp_path / "random.sqlite3").write_bytes(os.urandom(20_000))
    (tmp_path / "cut.sqlite3").write_bytes(good.read_bytes()[:9000])
    newer = tmp_path / "newer.sqlite3"
    shutil.copy(good, newer)
    with contextlib.closing(sqlite3.connect(newer)) as conn:
        conn.execute("PRAGMA user_version = 999")
    return {
        "folder": (tmp_path / "folder.sqlite3", "is a folder, not a ledger file"),
        "random bytes": (tmp_path / "random.sqlite3", "not a usable SQLite database"),
        "truncated": (tmp_path / "cut.sqlite3", "not a usable SQLite database"),
        "newer schema": (newer, "schema version 999, newer than this program's"),
    }


@pytest.mark.usefixtures("clean_env")
async def test_run_turns_each_start_up_failure_into_one_sentence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BOT_TOKEN", TOKEN)
    cases = await broken_ledgers(tmp_path)

    def start(config: Path) -> int:
        # In a thread: `main` runs its own event loop, like `python -m bot run`.
        result: list[int] = []
        thread = threading.Thread(
            target=lambda: result.append(main(["run", "--config", str(config)]))
        )
        thread.start()
        thread.join(timeout=120)
        assert result, "run did not return"
        return result[0]

    for name, (database, phrase) in cases.items():
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            code = await asyncio.to_thread(start, run_config(tmp_path, database))
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert code == 2, name
        assert len(errors) == 1, (name, errors)
        assert phrase in errors[0], name
        assert all(r.exc_info is None for r in caplog.records), name

    locked = await make_ledger(tmp_path / "locked.sqlite3")
    caplog.clear()
    with held_lock(locked), caplog.at_level(logging.ERROR):
        code = await asyncio.to_thread(start, run_config(tmp_path, locked))
    assert code == 2
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        f"The database {locked} is locked by another process; try again when it is released."
    ]

    free = await make_ledger(tmp_path / "free.sqlite3")
    with taken_port() as port:
        caplog.clear()
        config = run_config(tmp_path, free, f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
        with caplog.at_level(logging.ERROR):
            code = await asyncio.to_thread(start, config)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert code == 2
    assert len(errors) == 1
    assert "[metrics] listen" in errors[0]
    assert str(port) in errors[0]


# -- read-only file or folder ----------------------------------------------------------------


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder another user can reach (pytest's own is private to its user)."""
    folder = Path(tempfile.mkdtemp(prefix="ops-safety-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for path in [folder, *folder.rglob("*")]:
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(folder)


def as_other_user(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS` as a user for whom file permissions hold (root ignores them)."""
    other = os.geteuid() == 0
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=subprocess_env(BOT_TOKEN=TOKEN, HOME=str(cwd)),
        capture_output=True,
        text=True,
        timeout=120,
        **({"user": NOBODY, "group": NOBODY, "extra_groups": []} if other else {}),
    )


@pytest.fixture
def other_user_can_run(shared_folder: Path) -> None:
    if os.geteuid() != 0:
        return
    try:
        probe = as_other_user("--help", cwd=shared_folder)
    except PermissionError as exc:  # the interpreter itself lies in a folder closed to them
        pytest.skip(f"user {NOBODY} cannot run this checkout's Python: {exc}")
    if probe.returncode != 0:
        pytest.skip(f"user {NOBODY} cannot run this checkout: {probe.stderr.strip()[-200:]}")


async def read_only_ledgers(folder: Path) -> tuple[Path, Path]:
    """(a read-only ledger file in a writable folder, a ledger in a read-only folder)."""
    owner = NOBODY if os.geteuid() == 0 else os.geteuid()
    (folder / "file").mkdir()
    (folder / "dir").mkdir()
    read_only_file = await make_ledger(folder / "file" / "ro.sqlite3")
    in_read_only_dir = await make_ledger(folder / "dir" / "l.sqlite3")
    os.chown(folder / "file", owner, -1)
    os.chown(in_read_only_dir, owner, -1)
    read_only_file.chmod(0o444)
    (folder / "dir").chmod(0o555)
    return read_only_file, in_read_only_dir


@pytest.mark.usefixtures("other_user_can_run")
async def test_run_refuses_a_read_only_ledger_naming_the_file_or_the_folder(
    shared_folder: Path,
) -> None:
    read_only_file, in_read_only_dir = await read_only_ledgers(shared_folder)
    before = digest(read_only_file), digest(in_read_only_dir)
    for database, phrase in (
        (read_only_file, f"The ledger file {read_only_file} is read-only"),
        (
            in_read_only_dir,
            f"The folder {in_read_only_dir.parent} holding the ledger is read-only",
        ),
    ):
        config = run_config(shared_folder, database)
        config.chmod(0o644)
        result = await asyncio.to_thread(
            as_other_user, "run", "--config", str(config), cwd=shared_folder
        )
        assert result.returncode == 2, result.stderr
        errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
        assert len(errors) == 1, result.stderr
        assert phrase in errors[0], result.stderr
        assert "Traceback" not in result.stderr
    assert (digest(read_only_file), digest(in_read_only_dir)) == before


@pytest.mark.usefixtures("other_user_can_run")
async def test_check_on_a_read_only_ledger_keeps_its_verdict(shared_folder: Path) -> None:
    read_only_file, in_read_only_dir = await read_only_ledgers(shared_folder)
    result = await asyncio.to_thread(
        as_other_user, "check", "--db", str(read_only_file), cwd=shared_folder
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Ledger integrity: CLEAN")
    one_sentence(result.stderr, "checkpoint was not stored", "read-only", "--no-record")
    assert "The database the ledger" not in result.stderr
    quiet = await asyncio.to_thread(
        as_other_user, "check", "--no-record", "--db", str(read_only_file), cwd=shared_folder
    )
    assert (quiet.returncode, quiet.stderr) == (0, "")
    # The folder case: SQLite cannot create the -shm a WAL ledger needs even to be read.
    for args in (
        ["check", "--no-record", "--db", str(in_read_only_dir)],
        ["export", "--format", "csv", "--db", str(in_read_only_dir)],
    ):
        refused = await asyncio.to_thread(as_other_user, *args, cwd=shared_folder)
        assert refused.returncode == 2, args
        one_sentence(refused.stderr, f"The folder {in_read_only_dir.parent}", "read-only")
        assert "nothing was written" not in refused.stderr


@pytest.mark.usefixtures("clean_env")
def test_check_that_cannot_store_its_checkpoint_prints_its_verdict(
    ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with held_lock(ledger):
        code, out, err = cli(capsys, "check", "--db", str(ledger))
    assert code == 0
    assert out.startswith("Ledger integrity: CLEAN")
    one_sentence(err, "The checkpoint was not stored", "locked", "--no-record")
    with sqlite3.connect(ledger) as conn:
        assert conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone() == (0,)


# -- full disk -------------------------------------------------------------------------------


@pytest.mark.usefixtures("clean_env")
async def test_a_full_disk_is_refused_before_sqlite_builds_its_index(
    ledger: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(files, "free_bytes", lambda folder: 4096)
    before = digest(ledger)
    assert_no_index(ledger, before)
    for args in (
        ["check", "--db", str(ledger), "--no-record"],
        ["export", "--format", "csv", "--db", str(ledger)],
        ["rebuild-balances", "--db", str(ledger)],
        ["backup", "copy.sqlite3", "--db", str(ledger)],
    ):
        code, _, err = await asyncio.to_thread(cli, capsys, *args)
        assert code == 2, args
        one_sentence(err, f"The disk holding {ledger} is full (4 KiB free); free some space")
    assert_no_index(ledger, before)
    with pytest.raises(files.DiskFullError):
        await PointsEngine.open(ledger)
    # With room again, the same ledger opens.
    monkeypatch.setattr(files, "free_bytes", lambda folder: 1 << 30)
    code, _, _ = await asyncio.to_thread(cli, capsys, "check", "--db", str(ledger))
    assert code == 0


def assert_no_index(ledger: Path, before: str) -> None:
    """A WAL ledger whose -shm SQLite would have to build (and memory-map) to open it."""
    assert files.is_wal(ledger)
    assert not Path(f"{ledger}-shm").exists()
    assert digest(ledger) == before


@pytest.fixture
def full_ext4(tmp_path: Path) -> Iterator[Path]:
    """A tiny ext4 file system on a loop device, to be filled; skipped where mount is denied."""
    if os.geteuid() != 0 or shutil.which("mkfs.ext4") is None:
        pytest.skip("a loop-mounted ext4 needs root and mkfs.ext4")
    image, mount = tmp_path / "disk.img", tmp_path / "mnt"
    mount.mkdir()
    with image.open("wb") as file:
        file.truncate(8 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "4096", str(image)], check=True)
    mounted = subprocess.run(
        ["mount", "-o", "loop", str(image), str(mount)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a loop device here: {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


async def test_a_really_full_ext4_disk(full_ext4: Path, tmp_path: Path) -> None:
    ledger = await make_ledger(full_ext4 / "ledger.sqlite3")
    with (full_ext4 / "filler").open("wb") as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"\0" * 65536)
            filler.flush()
    assert os.statvfs(full_ext4).f_bavail == 0
    before = digest(ledger)
    for args in (
        ["check", "--db", str(ledger), "--no-record"],
        ["export", "--format", "csv", "--db", str(ledger)],
        ["rebuild-balances", "--db", str(ledger)],
    ):
        result = await asyncio.to_thread(bot, *args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.returncode)  # never SIGBUS (-7)
        one_sentence(result.stderr, "is full", "free some space")
    assert digest(ledger) == before
    (full_ext4 / "filler").unlink()
    result = await asyncio.to_thread(bot, "check", "--db", str(ledger), cwd=tmp_path)
    assert result.returncode == 0, result.stderr


# -- a closed pipe, ids out of range ---------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["check", "--no-record"],
        ["backup", "copy.sqlite3"],
        ["export", "--format", "csv"],
    ],
)
def test_a_reader_that_stopped_early_is_no_error(
    ledger: Path, tmp_path: Path, args: list[str]
) -> None:
    read, write = os.pipe()
    os.close(read)  # like `| head` that has already exited: every write gets EPIPE
    try:
        result = bot(*args, "--db", str(ledger), cwd=tmp_path, stdout=write)
    finally:
        os.close(write)
    assert result.returncode == 141
    assert result.stderr == ""


@pytest.mark.usefixtures("clean_env")
def test_export_refuses_a_chat_id_past_64_bits(
    ledger: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for chat in ("99999999999999999999999", str(2**63), str(-(2**63) - 1)):
        code, out, err = cli(
            capsys, "export", "--format", "csv", "--db", str(ledger), "--chat", chat
        )
        assert (code, out) == (2, "")
        one_sentence(err, f"--chat {chat} is not a chat id")
    code, out, _ = cli(
        capsys, "export", "--format", "csv", "--db", str(ledger), "--chat", str(-(2**63))
    )
    assert code == 0
    assert out.count("\n") == 1
