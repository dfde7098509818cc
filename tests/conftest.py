"""Shared fixtures: every durable backend runs the same tests (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from reversa import FakeClock, Inspector, Store
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
def store(db_url: str, clock: FakeClock, request: pytest.FixtureRequest) -> Iterator[Store]:
    """A store whose leases run on the test's fake clock (production: database time).

    When the test ends, every saga it left in the store is rebuilt from its audit
    log alone and compared with its rows (event-sourced state, AG-384 advanced):
    a commit whose change the log does not carry fails the test that made it.
    Tests that edit rows or entries on purpose are marked ``edits_records``.
    """
    s = Store.open(db_url, clock=clock)
    yield s
    try:
        if request.node.get_closest_marker("edits_records") is None:
            assert_rebuilt_from_log(s)
    finally:
        s.close()


def assert_rebuilt_from_log(store: Store) -> int:
    """Rebuild every saga in ``store`` from its log; assert it equals the rows; return the count."""
    inspector = Inspector(store)
    rows = store.list_sagas(limit=100_000)
    problems = {r["id"]: inspector.replay_differences(r["id"]) for r in rows}
    # A chain that does not verify was tampered with by the test itself (test_audit):
    # its log is not a record any more, so there is nothing to rebuild from. Only
    # sagas that differ are verified (verification is the expensive part).
    problems = {k: v for k, v in problems.items() if v and store.verify_audit(k).ok}
    assert not problems, f"state rebuilt from the log differs from the rows: {problems}"
    return len(rows)
