"""Shared fixtures: every durable backend runs the same tests (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from reversa import FakeClock, Store
from tests.support import pg

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


if IN_CI:
    # Under CI a missing PostgreSQL fails the run instead of skipping half of it.
    os.environ.setdefault("REVERSA_REQUIRE_POSTGRES", "1")


@pytest.fixture(scope="session")
def pg_server(reversa_pg_server: pg.PgServer) -> pg.PgServer:
    """The session's throwaway PostgreSQL (the plugin's: one server for every test)."""
    return reversa_pg_server


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
