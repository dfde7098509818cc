"""A database outage never kills a worker (issue 10).

A one-second PostgreSQL outage used to end ``reversa worker`` for good: its claim and
watchdog queries ran outside any error handling, so the first refused connection escaped
``run_once`` and ``run_forever``. Here the store refuses every query for a while, exactly
as a database that went away does (the real server restart is in tests/chaos).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy.exc import InterfaceError, OperationalError

from reversa import Engine, FakeClock, SagaStatus, Store, StoreError, Worker
from tests.core.kit import World, chain_saga, reject, transfer_registry


class Outage(Store):
    """Every query fails while ``down`` is set, as against a stopped server."""

    down = False
    refused = 0

    def _refuse(self) -> None:
        if self.down:
            self.refused += 1
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError(
                "connection to server at 127.0.0.1 failed: Connection refused"))

    def stalled(self, default_after_s: float) -> list[dict[str, Any]]:
        self._refuse()
        return super().stalled(default_after_s)

    def claim(self, owner: str, lease_s: float, **kwargs: Any) -> list[tuple[str, int]]:
        self._refuse()
        return super().claim(owner, lease_s, **kwargs)

    def heartbeat(self, leases: Any, lease_s: float) -> list[str]:
        if self.down:
            # What psycopg raises on a connection the server closed under it.
            self.refused += 1
            raise InterfaceError("UPDATE reversa_sagas", {}, Exception(
                "the connection is closed"))
        return super().heartbeat(leases, lease_s)


def _orphan(store: Store, clock: FakeClock, world: World) -> str:
    """A saga whose owner died mid-rollback (its lease lapses)."""

    class Crash(BaseException):
        pass

    world.fail["do:credit"] = reject()
    reg = transfer_registry(world)
    reg.add("compensation", "convert.die", lambda ctx: (_ for _ in ()).throw(Crash()))
    saga = chain_saga()
    saga = saga.model_copy(update={"steps": tuple(
        s.model_copy(update={"compensation": "convert.die"}) if s.name == "convert" else s
        for s in saga.steps)})
    agent = Engine(reg, store, clock=clock, lease_s=5, heartbeat=False)
    with pytest.raises(Crash):
        agent.run(saga, saga_id="orphan")
    return "orphan"


def _worker_registry(world: World) -> Any:
    reg = transfer_registry(world)
    reg.add("compensation", "convert.die", reg.get("compensation", "convert.undo"))
    return reg


def test_run_once_survives_the_database_going_away(store: Store, clock: FakeClock) -> None:
    world = World()
    sid = _orphan(store, clock, world)
    clock.advance(10)
    flaky = Outage(store.engine, clock=clock)
    worker = Worker(_worker_registry(world), flaky, clock=clock, lease_s=5)
    flaky.down = True
    assert worker.run_once() == []  # the outage is logged, not raised
    assert flaky.refused >= 2  # both the watchdog and the claim were refused
    flaky.down = False
    (result,) = worker.run_once()
    worker.engine.close()
    assert result.saga_id == sid and result.status is SagaStatus.COMPENSATED
    assert world.calls["rv:orphan:convert:compensation"] == 1


def test_run_forever_outlives_an_outage(store: Store, clock: FakeClock) -> None:
    world = World()
    sid = _orphan(store, clock, world)
    clock.advance(10)
    flaky = Outage(store.engine, clock=clock)
    flaky.down = True
    worker = Worker(_worker_registry(world), flaky, clock=clock, lease_s=5, poll_s=0.01)
    runner = threading.Thread(target=worker.run_forever, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while flaky.refused < 5:  # several rounds hit the outage...
            assert time.monotonic() < deadline, "the worker stopped polling"
            time.sleep(0.01)
        assert runner.is_alive()  # ...and the worker is still there
        flaky.down = False
        while store.load(sid)[0]["status"] != SagaStatus.COMPENSATED.value:
            assert time.monotonic() < deadline, "the worker never finished the saga"
            time.sleep(0.01)
    finally:
        worker.stop()
        runner.join(10)
    assert not runner.is_alive()
    assert world.calls["rv:orphan:convert:compensation"] == 1


def test_heartbeats_outlive_an_outage(store: Store) -> None:
    flaky = Outage(store.engine, clock=None)
    world = World()
    reg = transfer_registry(world)
    gate = threading.Event()
    reg.add("action", "credit.wait", lambda ctx: gate.wait(10) and world.effect(
        ctx, "do:credit", {"c": 10}))
    saga = chain_saga()
    saga = saga.model_copy(update={"steps": tuple(
        s.model_copy(update={"action": "credit.wait"}) if s.name == "credit" else s
        for s in saga.steps)})
    engine = Engine(reg, flaky, owner="owner", lease_s=0.3)  # beats every 0.1 s
    runner = threading.Thread(target=engine.run, args=(saga,), kwargs={"saga_id": "beating"})
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while not world.calls:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        flaky.down = True
        while flaky.refused < 3:  # the heartbeat thread met the outage three times
            assert time.monotonic() < deadline, "the heartbeat thread died"
            time.sleep(0.01)
        flaky.down = False
        expires = store.load("beating")[0]["lease_expires_at"]
        while store.load("beating")[0]["lease_expires_at"] == expires:
            assert time.monotonic() < deadline, "no heartbeat after the outage"
            time.sleep(0.02)  # the lease is extended again: the thread is alive
    finally:
        gate.set()
        runner.join(10)
        engine.close()
    assert store.load("beating")[0]["status"] == SagaStatus.COMPLETED.value


def test_every_driver_error_in_a_transaction_is_a_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="database error") as caught, store._tx():
        raise InterfaceError("SELECT 1", {}, Exception("the connection is closed"))
    assert caught.value.retryable
