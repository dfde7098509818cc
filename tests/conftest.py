"""Shared fixtures: every durable backend runs the same tests (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from reversa import FakeClock, Store
from tests.support import pg

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pg.PgServer]:
    """A throwaway PostgreSQL for the session (a failure under CI, a skip elsewhere)."""
    if pg.find_bin() is None:
        message = ("PostgreSQL binaries not found: install the 'postgresql' package "
                   "(scripts/test.sh does under CI)")
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    server = pg.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/reversa.db"
    server: pg.PgServer = request.getfixturevalue("pg_server")
    return server.create_database("t_" + uuid.uuid4().hex[:12])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(db_url: str, clock: FakeClock) -> Iterator[Store]:
    """A store whose leases run on the test's fake clock (production: database time)."""
    s = Store.open(db_url, clock=clock)
    yield s
    s.close()
