"""How each backend is connected: SQLite pragmas and locking, read-only sessions.

SQLite runs in WAL mode with pysqlite's own transaction handling turned off, so
the store decides how each transaction begins: writes take the write lock up
front (``BEGIN IMMEDIATE``: concurrent writers queue instead of deadlocking on
a lock upgrade), reads take none (a deferred ``BEGIN``: a snapshot that neither
waits for nor blocks a writer). Read-only stores are enforced by the database
itself (an SQLite file opened ``mode=ro``, a PostgreSQL session with
``default_transaction_read_only``), so no code path can write through them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL

from ..errors import ConfigError, NotFound

__all__ = ["WRITE", "postgres_engine", "sqlite_engine"]

WRITE = "reversa_write"
"""Execution option marking a connection's transaction as a write (``BEGIN IMMEDIATE``)."""


def sqlite_engine(url: URL, synchronous: str, *, read_only: bool) -> Engine:
    """An SQLite engine: WAL and ``synchronous`` for writers, ``mode=ro`` for readers."""
    if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ConfigError(f"synchronous={synchronous!r}; use OFF, NORMAL, FULL or EXTRA")
    if read_only:
        engine = _sqlite_read_only(url)
    else:
        engine = create_engine(url.render_as_string(hide_password=False),
                               connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from pysqlite, so each transaction begins as
        # _on_begin says (see the module docstring).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if read_only:
            cur.execute("PRAGMA query_only=ON")
        else:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous.upper()}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = bool(conn.get_execution_options().get(WRITE))
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _sqlite_read_only(url: URL) -> Engine:
    path = url.database
    if not path or path == ":memory:":
        raise ConfigError("an in-memory SQLite database holds no records to inspect; give "
                          "the path of a database file with --db or REVERSA_DB")
    if not Path(path).is_file():
        raise NotFound(f"no database file at {path}; check --db / REVERSA_DB (inspecting "
                       "never creates one)")
    # mode=ro: SQLite itself refuses to create or write the file, whatever runs.
    uri = Path(path).resolve().as_uri() + "?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)

    return create_engine(url, creator=connect)


def postgres_engine(url: URL, *, read_only: bool) -> Engine:
    """A pooled psycopg 3 engine; ``read_only`` sessions refuse every write and DDL."""
    if not read_only:
        return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)
    # Every session read-only: the server refuses any write or DDL, whatever runs.
    given = url.query.get("options")
    options = " ".join([*([given] if isinstance(given, str) else given or []),
                        "-c default_transaction_read_only=on"])
    return create_engine(url.difference_update_query(["options"]), pool_pre_ping=True,
                         pool_size=2, max_overflow=4, connect_args={"options": options})
