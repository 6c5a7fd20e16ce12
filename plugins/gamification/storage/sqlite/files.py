"""The files around a ledger, checked before SQLite touches them: kind, permissions, room."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from plugins.gamification.domain.errors import DiskFullError, ReadOnlyLedgerError, StorageError

# SQLite keeps these beside the database; writing over any of them damages the ledger.
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")
# The WAL index SQLite memory-maps: 32 KiB for the first 4,096 frames of the WAL.
SHM_SIZE = 32 * 1024
# Below this much free space, rebuilding the memory-mapped WAL index can fault (SIGBUS on
# ext4) instead of failing with an error, and no write would get far anyway.
FREE_MARGIN = 1024 * 1024
_HEADER = b"SQLite format 3\x00"


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged process may still write on the file system holding `folder`."""
    if not hasattr(os, "statvfs"):  # not POSIX: nothing to measure, SQLite reports errors
        return 1 << 62
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def kind_of(path: Path) -> str:
    """What a non-regular file is, with its article, for a sentence ("a folder")."""
    mode = path.lstat().st_mode
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    mode = path.stat().st_mode
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def side_files(path: Path) -> list[Path]:
    """The ledger and the files SQLite keeps beside it, under its name and its real name."""
    names = [path, Path(os.path.realpath(path))]
    return [
        name.with_name(name.name + suffix) for name in names for suffix in ("", *SIDE_SUFFIXES)
    ]


def belongs_to(out: Path, ledger: Path) -> bool:
    """Whether writing `out` would write the ledger or one of its -wal, -shm, -journal files.

    Compared by real path (symbolic links anywhere on the way) and, for files that exist, by
    device and inode (hard links, bind mounts).
    """
    real = os.path.realpath(out)
    for own in side_files(ledger):
        if real == os.path.realpath(own):
            return True
        try:
            if os.path.samefile(out, own):
                return True
        except OSError:
            continue
    return False


def fd_belongs_to(fd: int, ledger: Path) -> bool:
    """Whether the open file `fd` (stdout redirected with `>>`) is the ledger or a side file."""
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    for own in side_files(ledger):
        try:
            other = os.stat(own)
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            return True
    return False


def is_wal(path: Path) -> bool:
    """Whether the database header says the file is in WAL mode (needs a -shm to open)."""
    try:
        with path.open("rb") as file:
            header = file.read(20)
    except OSError:
        return False
    return header[:16] == _HEADER and len(header) == 20 and 2 in (header[18], header[19])


def check_ledger_path(path: Path, *, writing: bool) -> None:
    """Like `_check_ledger_path`; a file or folder that cannot even be looked at is a sentence."""
    try:
        _check_ledger_path(Path(path), writing=writing)
    except OSError as exc:
        raise StorageError(f"Cannot look at the ledger {path}: {exc.strerror or exc}.") from exc


def _check_ledger_path(path: Path, *, writing: bool) -> None:
    """Refuse, in one sentence, a ledger path SQLite would fail on obscurely or dangerously.

    `writing`: the caller is about to write (the bot, a checkpoint, a rebuild), so the file
    and the folder SQLite creates its -wal and -shm files in must be writable. Either way a
    WAL database whose memory-mapped index must be built needs a little free space: without
    it SQLite can die with SIGBUS instead of reporting an error.
    """
    if path.is_symlink() and not path.exists():
        raise StorageError(f"{path} is a symbolic link to nothing; point it at the ledger file.")
    if path.exists() and not path.is_file():
        raise StorageError(f"{path} is {kind_of(path)}, not a ledger file.")
    folder = path.parent
    real_folder = Path(os.path.realpath(path)).parent
    if not real_folder.is_dir():
        raise StorageError(f"The folder {folder} for the ledger {path} does not exist.")
    shm = Path(os.path.realpath(path) + "-shm")
    new = not path.exists() or path.stat().st_size == 0
    index_missing = not shm.exists() or shm.stat().st_size < SHM_SIZE
    folder_writable = os.access(real_folder, os.W_OK | os.X_OK)
    if writing:
        if path.exists() and not os.access(path, os.W_OK):
            raise ReadOnlyLedgerError(
                f"The ledger file {path} is read-only; make it writable for this user."
            )
        side_missing = index_missing or not Path(os.path.realpath(path) + "-wal").exists()
        if not folder_writable and (new or side_missing):
            raise ReadOnlyLedgerError(
                f"The folder {folder} holding the ledger is read-only, so SQLite cannot create"
                " the ledger's -wal and -shm files in it; make the folder writable."
            )
    elif is_wal(path) and index_missing and not folder_writable:
        raise ReadOnlyLedgerError(
            f"The folder {folder} holding the ledger is read-only and the ledger's -shm file is"
            " missing, so SQLite cannot open it; make the folder writable."
        )
    if writing or (is_wal(path) and index_missing):
        room = free_bytes(real_folder)
        if room < FREE_MARGIN:
            raise DiskFullError(
                f"The disk holding {path} is full ({room // 1024} KiB free); free some space,"
                " then run the command again."
            )


def read_only_part(path: Path) -> str | None:
    """Which part is read-only, as the subject of a sentence; None if neither looks it."""
    path = Path(path)
    real = Path(os.path.realpath(path))
    if path.exists() and not os.access(path, os.W_OK):
        return f"The ledger file {path}"
    if real.parent.is_dir() and not os.access(real.parent, os.W_OK | os.X_OK):
        return f"The folder {path.parent} holding the ledger"
    return None
