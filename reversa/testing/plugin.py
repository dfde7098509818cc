"""The pytest plugin shipped with Reversa (loaded automatically through ``pytest11``).

Fixtures:

- ``fake_clock``: a :class:`~reversa.core.clock.FakeClock` (time moves only when told).
- ``reversa_store``: an empty store on each backend: SQLite, and a throwaway
  PostgreSQL the plugin starts itself (skipped when its binaries are missing;
  ``--reversa-backend sqlite`` keeps to SQLite). Leases run on ``fake_clock``.
- ``reversa_engine``: an :class:`~reversa.core.engine.Engine` over ``reversa_store``
  with your ``reversa_registry`` and ``reversa_services`` (define those two
  fixtures in your ``conftest.py``).
- ``failure_point``: with ``@pytest.mark.failure_points(saga)``, the test runs once
  per failure point of ``saga``: every action and every compensation, failing
  permanently, transiently until retries run out, in doubt (timed out; answer
  lost) and by crashing (AG-384 4.8). Pass ``kinds=[...]`` to choose.

A test then reads::

    @pytest.mark.failure_points(SAGA)
    def test_every_failure_point(reversa_engine, failure_point):
        result = run_failure_point(reversa_engine, SAGA, failure_point, input={...})
        assert result.status is expected_status(SAGA, failure_point)
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from ..core.clock import FakeClock
from ..core.engine import Engine
from ..core.registry import Registry
from ..core.store import Store
from . import pg
from ._failure_points import KINDS, failure_points

BACKENDS = ("sqlite", "postgres")


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--reversa-backend``: which backends ``reversa_store`` runs on."""
    parser.addoption(
        "--reversa-backend", action="append", choices=BACKENDS, default=None,
        help="Backend(s) for the reversa_store fixture (repeatable; default: both; "
             "PostgreSQL is skipped when its server binaries are not installed).")


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``failure_points`` marker."""
    config.addinivalue_line(
        "markers", "failure_points(saga, kinds=None): run the test once per failure point "
        "of saga (fixture failure_point); kinds default to every kind in "
        "reversa.testing.KINDS")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise ``failure_point`` from the test's ``failure_points`` marker."""
    if "failure_point" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("failure_points")
    if marker is None or not marker.args:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid} uses the failure_point fixture: mark it "
            "@pytest.mark.failure_points(your_saga) so the plugin knows which saga")
    kinds = marker.kwargs.get("kinds") or KINDS
    metafunc.parametrize("failure_point", failure_points(marker.args[0], kinds=kinds),
                         ids=str)


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that moves only when the test advances it."""
    return FakeClock()


@pytest.fixture(scope="session")
def reversa_pg_server() -> Iterator[pg.PgServer]:
    """A throwaway PostgreSQL server for the session (skipped without its binaries).

    Set ``REVERSA_REQUIRE_POSTGRES=1`` to fail instead of skipping (CI).
    """
    if pg.find_bin() is None:
        message = ("PostgreSQL server binaries not found: install the 'postgresql' package "
                   "or set REVERSA_PG_BIN (or run with --reversa-backend sqlite)")
        if os.environ.get("REVERSA_REQUIRE_POSTGRES", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip(message)
    server = pg.start()
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def reversa_db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database URL on each backend."""
    chosen = request.config.getoption("--reversa-backend") or BACKENDS
    if request.param not in chosen:
        pytest.skip(f"backend {request.param} not selected (--reversa-backend)")
    if request.param == "sqlite":
        # Removed after the test (pytest's tmp_path would keep it around in the
        # user's temporary directory).
        with tempfile.TemporaryDirectory(prefix="reversa-test-") as tmp:
            yield f"sqlite:///{tmp}/reversa.db"
        return
    server: pg.PgServer = request.getfixturevalue("reversa_pg_server")
    yield server.create_database("t_" + uuid.uuid4().hex[:12])


@pytest.fixture
def reversa_store(reversa_db_url: str, fake_clock: FakeClock) -> Iterator[Store]:
    """An empty store whose leases run on ``fake_clock``."""
    store = Store.open(reversa_db_url, clock=fake_clock)
    yield store
    store.close()


@pytest.fixture
def reversa_registry() -> Registry:
    """Your workflow's registry: override this fixture in your conftest.py."""
    raise pytest.UsageError(
        "reversa_engine needs your handlers: define a fixture named reversa_registry in "
        "your conftest.py that returns your reversa.Registry")


@pytest.fixture
def reversa_services() -> Mapping[str, Any]:
    """Services handed to your handlers (override in conftest.py; default: none)."""
    return {}


@pytest.fixture
def reversa_engine(reversa_registry: Registry, reversa_store: Store, fake_clock: FakeClock,
                   reversa_services: Mapping[str, Any]) -> Iterator[Engine]:
    """An engine over ``reversa_store`` with your registry and services, on ``fake_clock``."""
    engine = Engine(reversa_registry, reversa_store, clock=fake_clock,
                    services=reversa_services, heartbeat=False)
    yield engine
    engine.close()
