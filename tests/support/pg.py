"""A throwaway PostgreSQL server for tests: initdb + pg_ctl on a free loopback port."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def find_bin() -> Path | None:
    """Directory holding initdb and pg_ctl, or None."""
    override = os.environ.get("REVERSA_PG_BIN")
    candidates = [override] if override else []
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    which = shutil.which("pg_ctl")
    if which:
        candidates.append(str(Path(which).parent))
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """A running throwaway server."""

    bindir: Path
    root: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://reversa@127.0.0.1:{self.port}/postgres"

    def url_for(self, dbname: str) -> str:
        return f"postgresql://reversa@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def stop(self) -> None:
        _run(self, [str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m",
                    "immediate", "-w", "stop"], check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _as_postgres() -> list[str]:
    # initdb refuses to run as root: drop to the postgres (or nobody) user.
    if os.geteuid() != 0:
        return []
    user = "postgres"
    try:
        import pwd

        pwd.getpwnam(user)
    except KeyError:
        user = "nobody"
    return ["runuser", "-u", user, "--"]


def _run(server: PgServer | None, cmd: list[str], check: bool = True) -> None:
    subprocess.run(_as_postgres() + cmd, check=check, capture_output=True, timeout=120)


def start() -> PgServer:
    """Start a fresh server in a temporary directory."""
    bindir = find_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found")
    root = Path(tempfile.mkdtemp(prefix="reversa-pg-"))
    os.chmod(root, 0o777)
    if os.geteuid() == 0:
        user = _as_postgres()[2]
        shutil.chown(root, user=user)
    port = free_port()
    data = root / "data"
    _run(None, [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "reversa",
                "--no-sync", "-E", "UTF8"])
    opts = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200 "
            "-c shared_buffers=64MB")
    server = PgServer(bindir, root, port)
    _run(server, [str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l",
                  str(root / "log"), "-w", "-t", "60", "start"])
    return server
