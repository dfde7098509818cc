"""Test your own saga at every failure point with Reversa's pytest plugin.

Copy this file next to your code and replace the booking service by yours. Run it with
``pytest test_booking_saga.py`` (or ``python test_booking_saga.py``): the plugin, installed
with Reversa, provides the ``reversa_store`` (SQLite and a throwaway PostgreSQL),
``reversa_engine`` and ``failure_point`` fixtures.

Each failure point becomes one test: every action and every compensation, failing
permanently, transiently until the retries run out, in doubt (timed out; answer lost)
and by crashing before or after the call. The assertions count what the SERVICE did,
not what Reversa recorded.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from typing import Any

import pytest

from reversa import (
    FenceGate,
    Probe,
    Registry,
    Retry,
    Saga,
    SagaStatus,
    SnapshotContext,
    StepContext,
)
from reversa.testing import expected_status, run_failure_point


class BookingService:
    """A stand-in for your service. It keeps the effect boundary, as yours must:

    - it applies a booking once per idempotency key (a replay gets the same answer);
    - it refuses a call whose fencing token is older than one it has seen for the saga;
    - ``block`` refuses a key for good unless it was already booked (atomically).
    """

    def __init__(self) -> None:
        self.gate = FenceGate()
        self.booked: dict[str, str] = {}  # idempotency key -> what was booked
        self.cancelled: Counter[str] = Counter()  # booking key -> cancellations applied
        self.calls = 0
        self.lock = threading.Lock()

    def book(self, ctx: StepContext, what: str) -> dict[str, Any]:
        with self.gate.lock, self.lock:
            self.calls += 1
            self.gate.admit(ctx.fence)
            self.gate.check_key(ctx.idempotency_key)
            self.booked.setdefault(ctx.idempotency_key, what)
            return {"booking": what}

    def cancel(self, ctx: StepContext) -> None:
        with self.gate.lock, self.lock:
            self.calls += 1
            self.gate.admit(ctx.fence)
            if ctx.action_key in self.booked and not self.cancelled[ctx.action_key]:
                self.cancelled[ctx.action_key] += 1

    def block(self, ctx: StepContext) -> Probe:
        with self.gate.lock, self.lock:
            self.gate.admit(ctx.fence)
            if ctx.action_key in self.booked:
                return Probe.HAPPENED
            self.gate.tombstone(ctx.action_key, ctx.fence)
            return Probe.NOT_HAPPENED

    def standing(self) -> list[str]:
        """What is booked and not cancelled: the state the saga must restore."""
        with self.lock:
            return sorted(what for key, what in self.booked.items() if not self.cancelled[key])


class Book:
    """One booking at the service: the operation contract (execute, compensate, block)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def execute(self, ctx: StepContext) -> dict[str, Any]:
        return ctx.service("bookings", BookingService).book(ctx, ctx.param("what"))

    def compensate(self, ctx: StepContext) -> None:
        ctx.service("bookings", BookingService).cancel(ctx)

    def block(self, ctx: StepContext) -> Probe:
        return ctx.service("bookings", BookingService).block(ctx)


def build_registry() -> Registry:
    registry = Registry()
    registry.register(Book("book"))

    @registry.snapshot("bookings.standing")
    def standing(ctx: SnapshotContext) -> dict[str, Any]:
        return {"standing": ctx.services["bookings"].standing()}

    return registry


FAST = Retry(max_attempts=2, initial_s=0.0)
SAGA = Saga.chain("trip", [
    build_registry().step(name, "book", params={"what": name}, retry=FAST,
                          compensation_retry=FAST)
    for name in ("flight", "hotel", "car")
], snapshot="bookings.standing")


# -- the plugin's fixtures need your registry and services --------------------------------

@pytest.fixture
def service() -> BookingService:
    return BookingService()


@pytest.fixture
def reversa_registry() -> Registry:
    return build_registry()


@pytest.fixture
def reversa_services(service: BookingService) -> dict[str, Any]:
    return {"bookings": service}


# -- one test per failure point ------------------------------------------------------------

@pytest.mark.failure_points(SAGA)
def test_every_failure_point(reversa_engine: Any, failure_point: Any,
                             service: BookingService) -> None:
    result = run_failure_point(reversa_engine, SAGA, failure_point)
    assert result.status is expected_status(SAGA, failure_point)
    # Counted at the service: nothing cancelled twice, and a saga that was rolled back
    # left nothing booked.
    assert all(n == 1 for n in service.cancelled.values())
    if result.status in (SagaStatus.COMPENSATED, SagaStatus.FAILED):
        assert service.standing() == []
    if result.status is SagaStatus.COMPLETED:
        assert service.standing() == ["car", "flight", "hotel"]


def test_the_happy_path(reversa_engine: Any, service: BookingService) -> None:
    result = reversa_engine.run(SAGA)
    assert result.status is SagaStatus.COMPLETED
    assert service.standing() == ["car", "flight", "hotel"]
    assert service.calls == 3


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q", "-p", "no:cacheprovider"]))
