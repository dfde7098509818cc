"""A throwaway PostgreSQL server for tests: initdb + pg_ctl on a free loopback port.

Used by the pytest plugin's ``reversa_store`` fixture (the PostgreSQL half) and by
the Jepsen-style tests, which restart the server under load and terminate the
backends of worker connections. Nothing is downloaded: the server binaries come
from the system's PostgreSQL package (``/usr/lib/postgresql/*/bin``, or
``REVERSA_PG_BIN``).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PgServer", "find_bin", "free_port", "start"]


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
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """A running throwaway server (trust authentication, loopback only).

    Attributes:
        bindir: Where initdb and pg_ctl live.
        root: The server's temporary directory (data, socket, log).
        port: Its loopback port.
    """

    bindir: Path
    root: Path
    port: int

    @property
    def url(self) -> str:
        """URL of the ``postgres`` database."""
        return f"postgresql://reversa@127.0.0.1:{self.port}/postgres"

    def url_for(self, dbname: str) -> str:
        """URL of database ``dbname`` on this server."""
        return f"postgresql://reversa@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """(Re)create an empty database and return its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url_for(name)

    def restart(self, *, mode: str = "fast") -> None:
        """Restart the server (``pg_ctl restart``): every connection is dropped."""
        # -l: the new server must not inherit (and hold open) pg_ctl's output pipes.
        _run(self, [str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", mode,
                    "-l", str(self.root / "log"), "-w", "-t", "60", "restart"])

    def shut_down(self) -> None:
        """Stop the server but keep its data: :meth:`start_again` brings it back."""
        _run(self, [str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast",
                    "-w", "stop"])

    def start_again(self) -> None:
        """Start a server :meth:`shut_down` stopped, on the same port with the same data."""
        _run(self, [str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"),
                    "-o", _options(self), "-l", str(self.root / "log"), "-w", "-t", "60",
                    "start"])

    def terminate_backends(self, dbname: str, *, application: str | None = None) -> int:
        """``pg_terminate_backend`` every other connection to ``dbname``; how many."""
        import psycopg

        query = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                 "WHERE datname = %s AND pid <> pg_backend_pid()")
        params: list[str] = [dbname]
        if application is not None:
            query += " AND application_name = %s"
            params.append(application)
        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(query, params).fetchone()
        return int(row[0]) if row else 0

    def stop(self) -> None:
        """Stop the server and remove its directory."""
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


def _reachable_tmp() -> str | None:
    # As root the server runs as another user, who must be able to reach its
    # directory: a private TMPDIR (a test runner's, mode 0700) is not reachable.
    # The system's temporary directory is; the server removes its directory on stop.
    if os.geteuid() != 0:
        return None
    tmp = Path(tempfile.gettempdir()).resolve()
    if all(p.stat().st_mode & 0o001 for p in (tmp, *tmp.parents)):
        return None
    return "/tmp"  # noqa: S108 - world-traversable by definition; mkdtemp makes it unique


def _options(server: PgServer) -> str:
    return (f"-p {server.port} -k {server.root} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c shared_buffers=64MB")


def _run(server: PgServer | None, cmd: list[str], check: bool = True) -> None:
    subprocess.run(_as_postgres() + cmd, check=check, capture_output=True, timeout=120)


def start() -> PgServer:
    """Start a fresh server in a temporary directory.

    Raises:
        FileNotFoundError: No PostgreSQL server binaries on this machine.
    """
    bindir = find_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found; "
                                "install the 'postgresql' package or set REVERSA_PG_BIN")
    root = Path(tempfile.mkdtemp(prefix="reversa-pg-", dir=_reachable_tmp()))
    os.chmod(root, 0o777)  # noqa: S103 - the server runs as another user in this tmp dir
    if os.geteuid() == 0:
        user = _as_postgres()[2]
        shutil.chown(root, user=user)
    port = free_port()
    data = root / "data"
    _run(None, [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "reversa",
                "--no-sync", "-E", "UTF8"])
    server = PgServer(bindir, root, port)
    _run(server, [str(bindir / "pg_ctl"), "-D", str(data), "-o", _options(server), "-l",
                  str(root / "log"), "-w", "-t", "60", "start"])
    return server
