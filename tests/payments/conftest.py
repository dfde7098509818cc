"""Shared fixtures for the payments adapter tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from reversa import FakeClock, Registry, Store
from reversa.demos.payments import PaymentsWorld, build_world, registry


@pytest.fixture
def world() -> PaymentsWorld:
    """A fresh simulated bank (ledger, FX venue, counterparties) on a fake clock."""
    return build_world(clock=FakeClock())


@pytest.fixture
def reg() -> Registry:
    """Every payments operation plus the stories' snapshots and predicates."""
    return registry()


@pytest.fixture
def sqlite_store(tmp_path: Any) -> Iterator[Store]:
    """An SQLite store (for the wide failure-point matrices)."""
    store = Store.open(f"sqlite:///{tmp_path}/payments.db")
    yield store
    store.close()
