"""A throwaway PostgreSQL cluster for tests that stop the server itself.

Made with `initdb` in a temporary folder, on a free port of its own, and removed afterwards:
the machine's shared server is never stopped or reconfigured. initdb refuses to run as root,
so under root every server command runs as the `postgres` OS user (`runuser`), in a folder
that user owns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PG_BIN = Path(os.environ.get("GAMIFICATION_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVER_USER = "postgres"


def unavailable() -> str:
    """Empty when a throwaway cluster can be made here; otherwise the reason why not."""
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL server binaries at {PG_BIN} (set GAMIFICATION_TEST_PG_BIN)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return "running as root, and there is no 'postgres' user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root, and runuser is missing to run initdb as 'postgres'"
    return ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Cluster:
    """One server in its own folder; `dsn` is its `postgres` database."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="gamif_i_cluster_"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        self.folder.chmod(0o700)

    def _command(self, tool: str, *args: str) -> list[str]:
        command = [str(PG_BIN / tool), *args]
        if os.geteuid() == 0:
            return ["runuser", "-u", SERVER_USER, "--", *command]
        return command

    def init(self) -> None:
        subprocess.run(
            self._command("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                          "--no-sync", "-E", "UTF8"),
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    async def _pg_ctl(self, *args: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            *self._command("pg_ctl", "-D", str(self.data), *args),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(proc.communicate(), 60)
        if proc.returncode != 0:
            raise RuntimeError(f"pg_ctl {args[-1]} failed: {output.decode(errors='replace')}")

    async def start(self) -> None:
        # fsync off: an immediate stop kills the server's processes, not the machine, so the
        # operating system still writes out everything the server wrote; the test is about
        # the server going away, not about power loss.
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c max_connections=30"
        )
        await self._pg_ctl("-l", str(self.folder / "server.log"), "-w", "-t", "60",
                           "-o", options, "start")  # fmt: skip

    async def stop_immediately(self) -> None:
        """`pg_ctl stop -m immediate`: every server process ends at once, as in a crash."""
        await self._pg_ctl("-m", "immediate", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            subprocess.run(
                self._command("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop"),
                capture_output=True, timeout=60,
            )  # fmt: skip
        shutil.rmtree(self.folder, ignore_errors=True)
