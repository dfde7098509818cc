"""A saga the store cannot record never poisons the engine or the worker (issue 10).

A write that failed for one saga (an unserialisable value, a driver bug) used to be taken
for a handler failure (retried, the compensation marked failed without ever being called);
the lease was released and the error escaped ``Worker.run_once`` on every round, so one
poison saga stopped every worker. Effects are counted at the service (``World.calls``).
"""

from __future__ import annotations

from typing import Any

import pytest

from reversa import (
    Engine,
    FakeClock,
    SagaStatus,
    StepContext,
    StepStatus,
    Store,
    Worker,
)
from tests.core.kit import World, chain_saga, reject, transfer_registry


class Crash(BaseException):
    """The owner dies inside a call (real SIGKILLs: tests/chaos)."""


class _PoisonStore(Store):
    """A store that cannot record one saga (an unserialisable value, a driver bug)."""

    poison = "poison"

    def write_batch(self, items: Any, **kwargs: Any) -> Any:
        if any(live.id == self.poison and live.created for live, *_ in items):
            raise TypeError("Object of type Thing is not JSON serializable")
        return super().write_batch(items, **kwargs)


def test_an_unrecordable_saga_is_not_taken_for_a_handler_failure(
    store: Store, clock: FakeClock
) -> None:
    world = World()
    world.fail["do:credit"] = reject()
    poison = _PoisonStore(store.engine, clock=clock)
    engine = Engine(transfer_registry(world), poison, clock=clock, lease_s=5, heartbeat=False)
    with pytest.raises(Exception, match="cannot be recorded"):
        engine.run(chain_saga(), saga_id="poison")
    engine.close()
    # The plan and the debit's intent were committed together, the debit ran once, then
    # nothing more could be recorded: nothing was retried or called after that, and the
    # debit stays visibly in doubt for recovery.
    assert world.calls == {"rv:poison:debit:action": 1}
    _, steps = store.load("poison")
    assert [s["status"] for s in steps] == [StepStatus.RUNNING.value, StepStatus.PENDING.value,
                                            StepStatus.PENDING.value]
    events = [e["event"] for e in store.rows("audit", saga_id="poison")]
    assert "step_attempt_failed" not in events and "compensation_failed" not in events
    # The lease is kept, not handed straight back for the next round to choke on.
    assert store.load("poison")[0]["lease_owner"] is not None


def test_one_poison_saga_does_not_stop_the_worker(store: Store, clock: FakeClock) -> None:
    world = World()
    world.fail["do:credit"] = reject()
    reg = transfer_registry(world)
    agent = Engine(reg, store, clock=clock, lease_s=5, heartbeat=False)
    for sid in ("poison", "healthy"):
        with pytest.raises(Crash):
            _die(agent, sid, reg)
    clock.advance(10)
    poison = _PoisonStore(store.engine, clock=clock)
    worker = Worker(_worker_registry(world), poison, clock=clock, lease_s=5)
    for _ in range(3):
        worker.run_once()  # never raises, round after round
        clock.advance(10)
    worker.engine.close()
    assert store.load("healthy")[0]["status"] == SagaStatus.COMPENSATED.value
    assert store.load("poison")[0]["status"] == SagaStatus.RUNNING.value  # left for a human
    assert store.verify_audit().ok


def _die(agent: Engine, saga_id: str, reg: Any) -> None:
    def crash(ctx: StepContext) -> Any:
        raise Crash()

    if not reg.has("action", "convert.die"):
        reg.add("action", "convert.die", crash)
    saga = chain_saga()
    saga = saga.model_copy(update={"steps": tuple(
        s.model_copy(update={"action": "convert.die"}) if s.name == "convert" else s
        for s in saga.steps)})
    agent.run(saga, saga_id=saga_id)


def _worker_registry(world: World) -> Any:
    reg = transfer_registry(world)
    reg.add("action", "convert.die", reg.get("action", "convert"))
    return reg
